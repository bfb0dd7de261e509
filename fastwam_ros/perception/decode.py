"""Decoding of ``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage`` into RGB uint8 H×W×3 arrays.

ROS-free: messages are duck-typed. An ``Image`` needs ``height``, ``width``, ``encoding``, ``is_bigendian``,
``step`` and ``data``; a ``CompressedImage`` needs ``format`` and ``data``. ``data`` may be ``bytes``,
``bytearray``, ``memoryview``, ``array.array('B')`` (what rclpy gives), a uint8 ``np.ndarray`` (what
``rosbags`` gives) or a list of ints.

Supported raw encodings (case-insensitive) and their conversion to RGB:

==================================  ==========================================================================
``rgb8``                            zero-copy view (row padding from ``step`` skipped by striding)
``bgr8``, ``8UC3``                  channel swap. ``8UC3`` carries no colour order; it is read as **BGR**, the
                                    OpenCV convention that drivers writing ``8UC3`` follow (cv_bridge refuses
                                    ``8UC3`` → ``rgb8`` as "not a color format", so we never ask it)
``rgba8``, ``bgra8``, ``8UC4``      alpha dropped (``8UC4`` read as BGRA)
``mono8``, ``8UC1``                 grey replicated to 3 channels
``mono16``, ``16UC1``               reduced to 8 bits by ``value >> 8`` (the high byte; ``is_bigendian``
                                    honoured through dtype ``'>u2'``/``'<u2'``), then replicated. Note: cv_bridge
                                    scales by 255/65535 with rounding instead, so 16-bit images always take the
                                    NumPy path and give the same pixels with or without cv_bridge
``yuv422``, ``uyvy``                byte order **U0 Y0 V0 Y1** (in ROS ``yuv422`` *is* UYVY)
``yuv422_yuy2``, ``yuyv``           byte order **Y0 U0 Y1 V0** (YUYV / YUY2)
``bayer_rggb8`` ``bayer_bggr8``     OpenCV bilinear demosaic; pattern = the colours of the top-left 2×2 block
``bayer_gbrg8`` ``bayer_grbg8``     read row by row (RGGB: row 0 = R G, row 1 = G B)
==================================  ==========================================================================

YUV → RGB uses OpenCV's ``COLOR_YUV2RGB_UYVY`` / ``_YUY2`` (ITU-R BT.601, video range), which is exactly what
cv_bridge calls. Compressed images are decoded with ``cv2.imdecode(IMREAD_COLOR)`` (BGR, true colours) and
swapped to RGB; ``format`` may be a bare ``"jpeg"``/``"png"`` or the image_transport form
``"rgb8; jpeg compressed bgr8"`` (the codec is what matters: the JPEG/PNG stream always holds true colours).
``compressedDepth`` streams are rejected (``unsupported_format``).

Compressed images are checked before any pixel is decoded: the size is read from the JPEG SOF / PNG IHDR header
and anything above the pixel budget (``max_pixels``, PerceptionConfig ``max_image_pixels``) is refused
(``too_many_pixels``: a 420 KB PNG can hold 12000×12000 pixels). JPEG is decoded by libjpeg-turbo through
``simplejpeg`` in strict mode: libjpeg's "Corrupt JPEG data" / "Premature end" warnings -- a stream cut short with
``FF D9`` re-appended, a bad Huffman code, a stray marker -- are errors (``corrupt_jpeg``), where OpenCV's
``imdecode`` only prints them and returns a partly grey or shifted image. A flipped bit that keeps the entropy
coding valid (a changed coefficient, or a Huffman desync that resynchronises) cannot be seen by any decoder:
JPEG carries no checksum (PNG does: libpng checks each chunk's CRC). JPEGs can be decoded at a reduced scale
(DCT scaling, :func:`decode_scale_for`) when the next resize needs fewer pixels.

Malformed input raises :class:`DecodeError` with a reason code; nothing else escapes.
"""

from __future__ import annotations

import array
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .errors import DecodeError

__all__ = [
    "DecodeError",
    "ImageDecoder",
    "DEFAULT_MAX_PIXELS",
    "JPEG_MIN_FRACTION",
    "RAW_ENCODINGS",
    "compressed_size",
    "decode_compressed",
    "decode_image",
    "decode_message",
    "image_planes",
    "is_compressed_message",
    "jpeg_decoder_status",
    "decode_scale_for",
]


@dataclass(frozen=True)
class _Enc:
    bytes_per_pixel: int
    kind: str  # rgb bgr rgba bgra mono8 mono16 uyvy yuyv bayer
    cv_code: int | None = None  # OpenCV conversion to RGB (None: special handling)
    cv_bridge_ok: bool = True  # whether cv_bridge gives the same pixels (and is asked at all)


RAW_ENCODINGS: dict[str, _Enc] = {
    "rgb8": _Enc(3, "rgb"),
    "bgr8": _Enc(3, "bgr", cv2.COLOR_BGR2RGB),
    "8uc3": _Enc(3, "bgr", cv2.COLOR_BGR2RGB, cv_bridge_ok=False),
    "rgba8": _Enc(4, "rgba", cv2.COLOR_RGBA2RGB),
    "bgra8": _Enc(4, "bgra", cv2.COLOR_BGRA2RGB),
    "8uc4": _Enc(4, "bgra", cv2.COLOR_BGRA2RGB, cv_bridge_ok=False),
    "mono8": _Enc(1, "mono8", cv2.COLOR_GRAY2RGB),
    "8uc1": _Enc(1, "mono8", cv2.COLOR_GRAY2RGB, cv_bridge_ok=False),
    "mono16": _Enc(2, "mono16", cv2.COLOR_GRAY2RGB, cv_bridge_ok=False),
    "16uc1": _Enc(2, "mono16", cv2.COLOR_GRAY2RGB, cv_bridge_ok=False),
    "yuv422": _Enc(2, "uyvy", cv2.COLOR_YUV2RGB_UYVY),
    "uyvy": _Enc(2, "uyvy", cv2.COLOR_YUV2RGB_UYVY, cv_bridge_ok=False),
    "yuv422_yuy2": _Enc(2, "yuyv", cv2.COLOR_YUV2RGB_YUY2),
    "yuyv": _Enc(2, "yuyv", cv2.COLOR_YUV2RGB_YUY2, cv_bridge_ok=False),
    # OpenCV names Bayer patterns by the 2nd/3rd pixels of the 2nd row, hence RGGB -> "BG" (as cv_bridge maps).
    "bayer_rggb8": _Enc(1, "bayer", cv2.COLOR_BayerBG2RGB),
    "bayer_bggr8": _Enc(1, "bayer", cv2.COLOR_BayerRG2RGB),
    "bayer_gbrg8": _Enc(1, "bayer", cv2.COLOR_BayerGR2RGB),
    "bayer_grbg8": _Enc(1, "bayer", cv2.COLOR_BayerGB2RGB),
}

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_MAX_DIM = 1 << 16  # 65536 pixels per side: far above any camera, below overflow trouble
DEFAULT_MAX_PIXELS = 4096 * 4096  # compressed images above this (16.8 MP) are refused before decoding
JPEG_MIN_FRACTION = 0.9  # a reduced JPEG decode keeps >= 90 % of the pixels (per side) its resize produces

try:  # libjpeg-turbo with warnings-as-errors and DCT scaling; wheels for Linux/macOS/Windows, x86-64 and ARM
    import simplejpeg as _simplejpeg
except ImportError:  # pragma: no cover - declared in setup.py; OpenCV (not strict) is the fallback
    _simplejpeg = None


def jpeg_decoder_status() -> str:
    """Which JPEG decoder is in use (shown in /diagnostics)."""
    if _simplejpeg is not None:
        return f"simplejpeg {getattr(_simplejpeg, '__version__', '?')} (strict: corrupt data rejected)"
    return "opencv (NOT strict: install simplejpeg to reject corrupt JPEG data)"


# ----------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------
def _as_uint8_buffer(data: Any) -> np.ndarray:
    """A 1-D uint8 array over ``data``, without copying where the buffer protocol allows."""
    try:
        if isinstance(data, np.ndarray):
            if data.dtype == np.uint8:
                arr = data
            elif data.dtype.itemsize == 1 and data.dtype.kind in "iub":
                arr = data.view(np.uint8)
            else:
                raise DecodeError("bad_data", f"data array has dtype {data.dtype}, expected uint8")
            if arr.ndim != 1:
                arr = arr.reshape(-1)
            return arr
        if isinstance(data, (bytes, bytearray)):
            return np.frombuffer(data, dtype=np.uint8)
        if isinstance(data, memoryview):
            return np.frombuffer(data.cast("B") if data.format != "B" else data, dtype=np.uint8)
        if isinstance(data, array.array):
            if data.typecode not in ("B", "b"):
                raise DecodeError("bad_data", f"data array('{data.typecode}') is not a byte array")
            return np.frombuffer(data, dtype=np.uint8)
        if isinstance(data, (list, tuple)):
            if len(data) == 0:
                return np.zeros(0, np.uint8)
            ints = np.asarray(data)
            if ints.ndim != 1 or ints.dtype.kind not in "iu":
                raise DecodeError("bad_data", "data list must hold integers 0..255")
            if ints.min() < 0 or ints.max() > 255:
                raise DecodeError("bad_data", "data list holds values outside 0..255")
            return ints.astype(np.uint8)
    except DecodeError:
        raise
    except (TypeError, ValueError) as exc:
        raise DecodeError("bad_data", f"unusable data buffer: {exc}") from None
    raise DecodeError("bad_data", f"unsupported data type {type(data).__name__}")


def _field(msg: Any, name: str) -> Any:
    try:
        return getattr(msg, name)
    except AttributeError:
        raise DecodeError("bad_message", f"message has no field {name!r}") from None


def _int_field(msg: Any, name: str) -> int:
    value = _field(msg, name)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise DecodeError("bad_message", f"field {name!r} must be an integer, got {type(value).__name__}")
    return int(value)


def lookup_encoding(encoding: Any) -> tuple[str, _Enc]:
    """(canonical lower-case name, spec) for a ROS encoding string; DecodeError('unknown_encoding') if unknown."""
    if not isinstance(encoding, str):
        raise DecodeError("unknown_encoding", f"encoding must be a string, got {type(encoding).__name__}")
    key = encoding.strip().lower()
    spec = RAW_ENCODINGS.get(key)
    if spec is None:
        raise DecodeError("unknown_encoding", f"unsupported image encoding {encoding!r}")
    return key, spec


def is_compressed_message(msg: Any) -> bool:
    """True for a CompressedImage-like message (has ``format``, no ``encoding``)."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


# ----------------------------------------------------------------------------------------------------------
# raw images
# ----------------------------------------------------------------------------------------------------------
def _raw_rows(msg: Any) -> tuple[np.ndarray, np.ndarray, int, int, int, str, _Enc]:
    """Validate an Image message; return (flat buffer, row view [h, w*bpp], h, w, step, key, spec)."""
    key, spec = lookup_encoding(_field(msg, "encoding"))
    h = _int_field(msg, "height")
    w = _int_field(msg, "width")
    step = _int_field(msg, "step")
    if h < 0 or w < 0:
        raise DecodeError("bad_dims", f"negative size {h}x{w}")
    if h == 0 or w == 0:
        raise DecodeError("zero_size", f"image is {h}x{w}")
    if h > _MAX_DIM or w > _MAX_DIM:
        raise DecodeError("bad_dims", f"image size {h}x{w} exceeds {_MAX_DIM} per side")
    row_bytes = w * spec.bytes_per_pixel
    if step < row_bytes:
        raise DecodeError("bad_step", f"step {step} < width {w} x {spec.bytes_per_pixel} bytes per pixel")
    if spec.kind in ("uyvy", "yuyv") and w % 2:
        raise DecodeError("bad_dims", f"{key} needs an even width, got {w}")
    buf = _as_uint8_buffer(_field(msg, "data"))
    need = step * h
    if buf.size == 0:
        raise DecodeError("zero_size", "image data is empty")
    if buf.size < need:
        raise DecodeError("truncated", f"data has {buf.size} bytes, step x height = {need}")
    if not buf.flags.c_contiguous:
        buf = np.ascontiguousarray(buf)
    rows = buf[:need].reshape(h, step)[:, :row_bytes]
    return buf, rows, h, w, step, key, spec


# encodings that are only a channel order: resized as they are, reordered on the small tile (tiling.tile_planar)
_CHANNEL_ORDER = {"rgb": (0, 1, 2), "bgr": (2, 1, 0), "rgba": (0, 1, 2), "bgra": (2, 1, 0), "mono8": (0, 0, 0)}


def image_planes(msg: Any) -> tuple[np.ndarray, tuple[int, int, int]] | None:
    """Zero-copy view H×W×C of an Image whose encoding is only a channel order (rgb8, bgr8, rgba8, bgra8,
    mono8 and their 8UC aliases) and that order (output R, G, B ← channels), or None for encodings that need a
    conversion (YUV, Bayer, 16-bit). Validates like :func:`decode_image`."""
    _, rows, h, w, _, _, spec = _raw_rows(msg)
    order = _CHANNEL_ORDER.get(spec.kind)
    if order is None:
        return None
    return rows.reshape(h, w, spec.bytes_per_pixel), order


def decode_image(msg: Any) -> np.ndarray:
    """Decode a ``sensor_msgs/Image``-like message to RGB uint8 [H, W, 3] with NumPy/OpenCV only.

    ``rgb8`` returns a read-only zero-copy view into ``msg.data`` (do not keep it beyond the message's life
    if the producer reuses buffers; rclpy and rosbags do not). Every other encoding returns a new array.
    Raises :class:`DecodeError` on malformed input.
    """
    buf, rows, h, w, step, key, spec = _raw_rows(msg)
    if spec.kind == "rgb":
        return rows.reshape(h, w, 3)
    if spec.kind == "mono16":
        bigendian = _field(msg, "is_bigendian")
        dtype = np.dtype(">u2" if bigendian else "<u2")
        words = np.ndarray(shape=(h, w), dtype=dtype, buffer=buf, offset=0, strides=(step, 2))
        gray = (words >> 8).astype(np.uint8)
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    if spec.kind in ("bgr", "rgba", "bgra"):
        src = rows.reshape(h, w, spec.bytes_per_pixel)
    elif spec.kind in ("uyvy", "yuyv"):
        src = rows.reshape(h, w, 2)
    else:  # mono8, bayer
        src = rows
    try:  # OpenCV takes the padded (row-strided) view directly
        return cv2.cvtColor(src, spec.cv_code)
    except cv2.error:
        pass
    try:
        return cv2.cvtColor(np.ascontiguousarray(src), spec.cv_code)
    except cv2.error as exc:
        raise DecodeError("bad_dims", f"OpenCV cannot convert a {h}x{w} {key} image: {exc}") from None


# ----------------------------------------------------------------------------------------------------------
# compressed images
# ----------------------------------------------------------------------------------------------------------
def _codec_of(fmt: str, head: bytes) -> str:
    """'jpeg' or 'png' from the format string (image_transport form or bare), else from the magic bytes."""
    f = fmt.lower()
    if "compresseddepth" in f:
        raise DecodeError("unsupported_format", f"compressedDepth streams are not colour images: {fmt!r}")
    if "jpeg" in f or "jpg" in f:
        return "jpeg"
    if "png" in f:
        return "png"
    if f.strip() == "":
        if head.startswith(_JPEG_MAGIC):
            return "jpeg"
        if head.startswith(_PNG_MAGIC):
            return "png"
        raise DecodeError("bad_compressed", "empty format and data is neither JPEG nor PNG")
    raise DecodeError("unsupported_format", f"compressed format {fmt!r} is neither jpeg nor png")


def _validated_compressed(msg: Any) -> tuple[np.ndarray, str]:
    """(contiguous uint8 buffer, codec) of a CompressedImage-like message; DecodeError if malformed."""
    fmt = _field(msg, "format")
    if not isinstance(fmt, str):
        raise DecodeError("bad_message", f"format must be a string, got {type(fmt).__name__}")
    buf = _as_uint8_buffer(_field(msg, "data"))
    if buf.size == 0:
        raise DecodeError("zero_size", "compressed data is empty")
    head = bytes(buf[:8])
    codec = _codec_of(fmt, head)
    if codec == "jpeg":
        if not head.startswith(_JPEG_MAGIC):
            raise DecodeError("bad_compressed", "format says jpeg but data has no JPEG SOI marker")
        # libjpeg decodes a cut stream with a grey bottom and only a warning: require the EOI marker.
        if b"\xff\xd9" not in bytes(buf[-64:]):
            raise DecodeError("truncated", "JPEG stream has no EOI marker (cut short)")
    else:
        if not head.startswith(_PNG_MAGIC):
            raise DecodeError("bad_compressed", "format says png but data has no PNG signature")
        if b"IEND" not in bytes(buf[-64:]):
            raise DecodeError("truncated", "PNG stream has no IEND chunk (cut short)")
    if not buf.flags.c_contiguous:
        buf = np.ascontiguousarray(buf)
    return buf, codec


# JPEG start-of-frame markers (the ones holding the image size): SOF0..SOF15 except DHT, JPG and DAC.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(buf: np.ndarray) -> tuple[int, int]:
    """(height, width) from the JPEG's SOF segment, reading only the headers (no pixel is decoded)."""
    data = memoryview(buf)  # walk the marker segments from SOI (ints on indexing)
    n, i = len(data), 2
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise DecodeError("bad_compressed", f"JPEG header: expected a marker at byte {i}")
        marker = int(data[i + 1])
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        if marker in (0xD9, 0xDA):
            break  # EOI or start of scan before any frame header
        length = (int(data[i + 2]) << 8) | int(data[i + 3])
        if length < 2:
            raise DecodeError("bad_compressed", "JPEG header: bad segment length")
        if marker in _SOF_MARKERS:
            if i + 9 > n or length < 8:
                break
            h = (int(data[i + 5]) << 8) | int(data[i + 6])
            w = (int(data[i + 7]) << 8) | int(data[i + 8])
            if h == 0 or w == 0:
                raise DecodeError("bad_dims", f"JPEG header says {h}x{w}")
            return h, w
        i += 2 + length
    raise DecodeError("bad_compressed", "JPEG has no frame header (SOF) before its image data")


def _png_size(buf: np.ndarray) -> tuple[int, int]:
    """(height, width) from the PNG's IHDR chunk (always the first chunk)."""
    if buf.size < 33 or bytes(buf[12:16]) != b"IHDR":
        raise DecodeError("bad_compressed", "PNG does not start with an IHDR chunk")
    w = int.from_bytes(bytes(buf[16:20]), "big")
    h = int.from_bytes(bytes(buf[20:24]), "big")
    if h == 0 or w == 0 or h >= 1 << 31 or w >= 1 << 31:
        raise DecodeError("bad_dims", f"PNG header says {h}x{w}")
    return h, w


def compressed_size(msg: Any) -> tuple[int, int]:
    """(height, width) in pixels of a CompressedImage, read from its header without decoding; DecodeError if the
    message is malformed."""
    buf, codec = _validated_compressed(msg)
    return _jpeg_size(buf) if codec == "jpeg" else _png_size(buf)


def decode_scale_for(src_hw: tuple[int, int], need_hw: tuple[int, int] | None,
                     min_fraction: float = JPEG_MIN_FRACTION) -> int:
    """THE per-camera choice of decode scale: the largest ``d`` in (8, 4, 2, 1) such that an image reduced by
    ``d`` (``ceil(src / d)`` pixels per side) keeps at least ``min_fraction`` of the ``need_hw`` = (H, W) pixels
    the next resize produces, per side. ``need_hw`` None → 1 (full resolution).

    Used for JPEG (decoded at ``1/d`` by libjpeg-turbo's DCT scaling) and raw images (reduced by ``d`` with an
    exact box filter before the antialiased resize, see :func:`~fastwam_ros.perception.tiling.tile_planar`).
    With the default 0.9, a 480×640 camera is reduced by 2 (240×320) for a 256×320 tile and by 4 (120×160) for a
    128×160 tile; both are then resized to the tile with the usual antialiased bilinear filter.
    """
    if need_hw is None:
        return 1
    h, w = src_hw
    for d in (8, 4, 2):
        if -(-h // d) >= min_fraction * need_hw[0] and -(-w // d) >= min_fraction * need_hw[1]:
            return d
    return 1


def decode_compressed(msg: Any, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                      need_hw: tuple[int, int] | None = None, min_fraction: float = JPEG_MIN_FRACTION) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage``-like message (JPEG or PNG) to RGB uint8 [H, W, 3].

    The size is read from the header first: more than ``max_pixels`` pixels (None: no limit) is refused
    (``too_many_pixels``) before any pixel memory is allocated. JPEG is decoded strictly (libjpeg's "corrupt
    data" warnings are errors: ``corrupt_jpeg``) through libjpeg-turbo (simplejpeg); with ``need_hw`` it is
    decoded directly at the reduced scale :func:`decode_scale_for` picks. PNG is decoded by OpenCV (libpng checks
    every chunk's CRC and the zlib checksum) at full size.
    """
    buf, codec = _validated_compressed(msg)
    h, w = _jpeg_size(buf) if codec == "jpeg" else _png_size(buf)
    if max_pixels is not None and h * w > max_pixels:
        raise DecodeError("too_many_pixels", f"{codec} header says {h}x{w} = {h * w} pixels > budget {max_pixels}")
    if h > _MAX_DIM or w > _MAX_DIM:
        raise DecodeError("bad_dims", f"{codec} image size {h}x{w} exceeds {_MAX_DIM} per side")
    if codec == "jpeg":
        return _decode_jpeg(buf, (h, w), decode_scale_for((h, w), need_hw, min_fraction))
    try:
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise DecodeError("bad_compressed", f"OpenCV could not decode the {codec} stream: {exc}") from None
    if bgr is None or bgr.size == 0:
        raise DecodeError("bad_compressed", f"corrupt or truncated {codec} stream")
    if bgr.shape[:2] != (h, w):
        raise DecodeError("bad_compressed", f"{codec} decoded to {bgr.shape[:2]}, header said {(h, w)}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


_CV2_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                8: cv2.IMREAD_REDUCED_COLOR_8}


def _decode_jpeg(buf: np.ndarray, hw: tuple[int, int], d: int) -> np.ndarray:
    want = (-(-hw[0] // d), -(-hw[1] // d))
    if _simplejpeg is not None:
        try:
            rgb = _simplejpeg.decode_jpeg(buf, colorspace="RGB", min_height=want[0], min_width=want[1],
                                          min_factor=d, strict=True)
        except ValueError as exc:
            text = str(exc)
            reason = "corrupt_jpeg" if ("orrupt" in text or "remature" in text) else "bad_compressed"
            raise DecodeError(reason, f"libjpeg: {text}") from None
    else:  # not strict: libjpeg's corruption warnings are only printed (see jpeg_decoder_status)
        try:
            bgr = cv2.imdecode(buf, _CV2_REDUCED[d])
        except cv2.error as exc:
            raise DecodeError("bad_compressed", f"OpenCV could not decode the jpeg stream: {exc}") from None
        if bgr is None or bgr.size == 0:
            raise DecodeError("bad_compressed", "corrupt or truncated jpeg stream")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if rgb.ndim != 3 or rgb.shape[:2] != want:
        raise DecodeError("bad_compressed", f"jpeg decoded to {rgb.shape}, expected {want} at 1/{d}")
    return rgb


def decode_message(msg: Any) -> np.ndarray:
    """Decode either message kind with the NumPy/OpenCV path."""
    return decode_compressed(msg) if is_compressed_message(msg) else decode_image(msg)


# ----------------------------------------------------------------------------------------------------------
# cv_bridge-aware decoder
# ----------------------------------------------------------------------------------------------------------
class _ProbeImage:
    """A tiny bgr8 Image-like message used to check that a cv_bridge really works."""

    def __init__(self):
        self.height, self.width, self.encoding, self.is_bigendian = 2, 3, "bgr8", 0
        self.step = 3 * 3 + 2  # padded rows
        row0 = bytes([10, 20, 30, 40, 50, 60, 70, 80, 90, 0, 0])
        row1 = bytes([1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0])
        self.data = row0 + row1


def _load_cv_bridge() -> Any:
    from cv_bridge import CvBridge  # noqa: PLC0415 - optional dependency, guarded by the caller

    return CvBridge()


class ImageDecoder:
    """Decodes Image/CompressedImage messages, through cv_bridge when it imports *and* works.

    ``use_cv_bridge``: ``None`` (auto: use it if importing it and a probe conversion succeed with pixels identical
    to the NumPy path), ``True`` (require it; ImportError/RuntimeError if unusable), ``False`` (never).
    ``bridge``: an already constructed CvBridge-like object (``imgmsg_to_cv2``, ``compressed_imgmsg_to_cv2``),
    used instead of importing one (still probed in auto mode).

    Any exception raised by cv_bridge for one message, or an output of the wrong shape/dtype, falls back to the
    NumPy/OpenCV path for that message (counted in ``counts['cv_bridge_fallback']``). Encodings where cv_bridge
    would give different pixels or refuses (``mono16``/``16UC1``, ``8UC*``, ``uyvy``/``yuyv`` aliases) always take
    the NumPy path. Validation (step, size, encoding) is always ours, so rejection reasons do not depend on
    cv_bridge. Thread-safe counters.
    """

    def __init__(self, use_cv_bridge: bool | None = None, bridge: Any = None,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS):
        self.max_pixels = max_pixels
        self.jpeg_decoder = jpeg_decoder_status()
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._bridge = None
        self.cv_bridge_status = "disabled"
        if use_cv_bridge is False:
            return
        try:
            candidate = bridge if bridge is not None else _load_cv_bridge()
        except Exception as exc:  # ImportError, or the NumPy-2 ABI crash surfacing as AttributeError/ImportError
            self.cv_bridge_status = f"unavailable: {type(exc).__name__}: {exc}"
            if use_cv_bridge:
                raise ImportError(f"cv_bridge requested but unusable: {exc}") from exc
            return
        ok, why = self._probe(candidate)
        if not ok:
            self.cv_bridge_status = f"broken: {why}"
            if use_cv_bridge:
                raise RuntimeError(f"cv_bridge requested but its probe failed: {why}")
            return
        self._bridge = candidate
        self.cv_bridge_status = "active"

    @property
    def using_cv_bridge(self) -> bool:
        return self._bridge is not None

    @staticmethod
    def _probe(bridge: Any) -> tuple[bool, str]:
        msg = _ProbeImage()
        try:
            got = np.asarray(bridge.imgmsg_to_cv2(msg, "rgb8"))
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        want = decode_image(msg)
        if got.shape != want.shape or got.dtype != want.dtype or not np.array_equal(got, want):
            return False, "probe conversion gave different pixels from the NumPy path"
        return True, ""

    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def decode(self, msg: Any, need_hw: tuple[int, int] | None = None) -> np.ndarray:
        """RGB uint8 [H, W, 3] for an Image or CompressedImage message; DecodeError on malformed input.
        ``need_hw``: the size the image is resized to next (a JPEG may then be decoded at a reduced scale)."""
        if is_compressed_message(msg):
            return self.decode_compressed(msg, need_hw)
        return self.decode_image(msg)

    def decode_planes(self, msg: Any, need_hw: tuple[int, int] | None = None
                      ) -> tuple[np.ndarray, tuple[int, int, int]]:
        """(uint8 H×W×C pixels, channel order) for :func:`~fastwam_ros.perception.tiling.tile_planar`: a
        zero-copy view of the message buffer for encodings that are only a channel order (no decode pass at
        all), else the decoded RGB image. DecodeError on malformed input."""
        if not is_compressed_message(msg):
            planes = image_planes(msg)
            if planes is not None:
                self._count("zero_copy")
                return planes
        return self.decode(msg, need_hw), (0, 1, 2)

    def decode_image(self, msg: Any) -> np.ndarray:
        if self._bridge is not None:
            _, _, h, w, _, _, spec = _raw_rows(msg)  # our validation first: same reasons with or without
            if spec.cv_bridge_ok:
                out = self._try_bridge(lambda: self._bridge.imgmsg_to_cv2(msg, "rgb8"), (h, w))
                if out is not None:
                    return out
        self._count("numpy")
        return decode_image(msg)

    def decode_compressed(self, msg: Any, need_hw: tuple[int, int] | None = None) -> np.ndarray:
        """Always our decoder (never cv_bridge, whose ``imdecode`` accepts corrupt JPEG data and has no pixel
        budget): strict JPEG, header-checked size, reduced-scale JPEG decoding for ``need_hw``."""
        self._count("numpy")
        return decode_compressed(msg, max_pixels=self.max_pixels, need_hw=need_hw)

    def _try_bridge(self, call, hw: tuple[int, int] | None) -> np.ndarray | None:
        try:
            out = np.asarray(call())
        except Exception:
            self._count("cv_bridge_fallback")
            return None
        if out.dtype != np.uint8 or out.ndim != 3 or out.shape[2] != 3 or (hw is not None and out.shape[:2] != hw):
            self._count("cv_bridge_fallback")
            return None
        self._count("cv_bridge")
        return out
