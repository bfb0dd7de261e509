"""Decoding of ``sensor_msgs/CompressedImage`` (JPEG, PNG) into RGB uint8 H×W×3 arrays.

``format`` may be a bare ``"jpeg"``/``"png"`` (or empty: the codec is sniffed from the magic bytes) or the
image_transport form ``"rgb8; jpeg compressed bgr8"`` (the codec is what matters: the JPEG/PNG stream always holds
true colours). ``compressedDepth`` streams are rejected (``unsupported_format``). PNG is decoded with
``cv2.imdecode(IMREAD_COLOR)`` (BGR, swapped to RGB).

Compressed images are checked before any pixel is decoded: the size is read from the JPEG SOF / PNG IHDR header
and anything above the pixel budget (``max_pixels``, PerceptionConfig ``max_image_pixels``) is refused
(``too_many_pixels``: a 420 KB PNG can hold 12000×12000 pixels). JPEG is decoded by libjpeg-turbo through
``simplejpeg`` in strict mode: libjpeg's "Corrupt JPEG data" / "Premature end" warnings -- a stream cut short with
``FF D9`` re-appended, a bad Huffman code, a stray marker -- are errors (``corrupt_jpeg``), where OpenCV's
``imdecode`` only prints them and returns a partly grey or shifted image. A flipped bit that keeps the entropy
coding valid (a changed coefficient, or a Huffman desync that resynchronises) cannot be seen by any decoder:
JPEG carries no checksum (PNG does: libpng checks each chunk's CRC). The common large form of that damage, a DC
drift (every later block shifted), leaves a staircase seam on the MCU grid: with ``seam_agreement`` set
(PerceptionConfig ``jpeg_guard``) the decoded picture is checked for it and refused (``corrupt_jpeg_seam``),
see :mod:`fastwam_ros.perception.jpeg_guard`. JPEGs can be decoded at a reduced scale
(DCT scaling, :func:`decode_scale_for`) when the next resize needs fewer pixels.

Malformed input raises :class:`DecodeError` with a reason code; nothing else escapes.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .buffers import MAX_DIM, as_uint8_buffer, field
from .errors import DecodeError
from .jpeg_guard import seam_score

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "JPEG_MIN_FRACTION",
    "SEAM_AGREEMENT",
    "SEAM_STEP_LEVELS",
    "compressed_size",
    "decode_compressed",
    "decode_scale_for",
    "jpeg_decoder_status",
]

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DEFAULT_MAX_PIXELS = 4096 * 4096  # compressed images above this (16.8 MP) are refused before decoding
SEAM_AGREEMENT = 0.75  # default PerceptionConfig.jpeg_guard_agreement (see jpeg_guard.seam_score)
SEAM_STEP_LEVELS = 8.0  # default PerceptionConfig.jpeg_guard_step_levels, 0..255 levels
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
    fmt = field(msg, "format")
    if not isinstance(fmt, str):
        raise DecodeError("bad_message", f"format must be a string, got {type(fmt).__name__}")
    buf = as_uint8_buffer(field(msg, "data"))
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
    return _jpeg_frame(buf)[:2]


def _jpeg_frame(buf: np.ndarray) -> tuple[int, int, int, int]:
    """(height, width, h_max, v_max) from the JPEG's SOF segment: the size and the largest component sampling
    factors (the MCU is 8*v_max x 8*h_max pixels), reading only the headers."""
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
            ncomp = int(data[i + 9]) if i + 10 <= n else 0
            factors = [int(data[j]) for j in range(i + 11, min(i + 11 + 3 * ncomp, n), 3)]
            h_max = max((f >> 4 for f in factors), default=1)
            v_max = max((f & 15 for f in factors), default=1)
            return h, w, max(1, h_max), max(1, v_max)
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
                      need_hw: tuple[int, int] | None = None, min_fraction: float = JPEG_MIN_FRACTION,
                      seam_agreement: float | None = None, seam_step_levels: float = SEAM_STEP_LEVELS
                      ) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage``-like message (JPEG or PNG) to RGB uint8 [H, W, 3].

    The size is read from the header first: more than ``max_pixels`` pixels (None: no limit) is refused
    (``too_many_pixels``) before any pixel memory is allocated. JPEG is decoded strictly (libjpeg's "corrupt
    data" warnings are errors: ``corrupt_jpeg``) through libjpeg-turbo (simplejpeg); with ``need_hw`` it is
    decoded directly at the reduced scale :func:`decode_scale_for` picks. With ``seam_agreement`` (None: off) a
    decoded JPEG whose DC-drift seam score (:func:`~fastwam_ros.perception.jpeg_guard.seam_score`, steps of at
    least ``seam_step_levels`` levels) reaches it is refused (``corrupt_jpeg_seam``). PNG is decoded by OpenCV
    (libpng checks every chunk's CRC and the zlib checksum) at full size.
    """
    buf, codec = _validated_compressed(msg)
    h, w, *sampling = _jpeg_frame(buf) if codec == "jpeg" else (*_png_size(buf), 1, 1)
    if max_pixels is not None and h * w > max_pixels:
        raise DecodeError("too_many_pixels", f"{codec} header says {h}x{w} = {h * w} pixels > budget {max_pixels}")
    if h > MAX_DIM or w > MAX_DIM:
        raise DecodeError("bad_dims", f"{codec} image size {h}x{w} exceeds {MAX_DIM} per side")
    if codec == "jpeg":
        d = decode_scale_for((h, w), need_hw, min_fraction)
        rgb = _decode_jpeg(buf, (h, w), d)
        if seam_agreement is not None:
            score = seam_score(rgb, d, (sampling[0], sampling[1]), seam_step_levels)
            if score >= seam_agreement:
                raise DecodeError("corrupt_jpeg_seam", f"decoded JPEG has a DC-drift seam on its block grid "
                                  f"(agreement {score:.2f} >= {seam_agreement}): corrupted entropy-coded data")
        return rgb
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
