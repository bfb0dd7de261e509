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
cv_bridge calls. Compressed images: :mod:`fastwam_ros.perception.compressed` (strict JPEG, pixel budget from
the header, DCT-scaled decoding); its functions are re-exported here. Malformed input raises
:class:`DecodeError` with a reason code; nothing else escapes.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .buffers import MAX_DIM, as_uint8_buffer, field, int_field
from .compressed import (
    DEFAULT_MAX_PIXELS,
    JPEG_MIN_FRACTION,
    SEAM_STEP_LEVELS,
    compressed_size,
    decode_compressed,
    decode_scale_for,
    jpeg_decoder_status,
)
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
    key, spec = lookup_encoding(field(msg, "encoding"))
    h = int_field(msg, "height")
    w = int_field(msg, "width")
    step = int_field(msg, "step")
    if h < 0 or w < 0:
        raise DecodeError("bad_dims", f"negative size {h}x{w}")
    if h == 0 or w == 0:
        raise DecodeError("zero_size", f"image is {h}x{w}")
    if h > MAX_DIM or w > MAX_DIM:
        raise DecodeError("bad_dims", f"image size {h}x{w} exceeds {MAX_DIM} per side")
    row_bytes = w * spec.bytes_per_pixel
    if step < row_bytes:
        raise DecodeError("bad_step", f"step {step} < width {w} x {spec.bytes_per_pixel} bytes per pixel")
    if spec.kind in ("uyvy", "yuyv") and w % 2:
        raise DecodeError("bad_dims", f"{key} needs an even width, got {w}")
    buf = as_uint8_buffer(field(msg, "data"))
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
        bigendian = field(msg, "is_bigendian")
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
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, seam_agreement: float | None = None,
                 seam_step_levels: float = SEAM_STEP_LEVELS):
        self.max_pixels = max_pixels
        self.seam_agreement = seam_agreement  # None: the JPEG seam guard is off (see compressed.decode_compressed)
        self.seam_step_levels = seam_step_levels
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
        budget): strict JPEG, header-checked size, reduced-scale JPEG decoding for ``need_hw``, the DC-drift seam
        guard when ``seam_agreement`` is set."""
        self._count("numpy")
        return decode_compressed(msg, max_pixels=self.max_pixels, need_hw=need_hw,
                                 seam_agreement=self.seam_agreement, seam_step_levels=self.seam_step_levels)

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
