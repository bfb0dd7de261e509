"""Decoding of every supported encoding against pixels constructed independently in the test."""

from __future__ import annotations

import array
import struct
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastwam_ros.perception.decode import (
    RAW_ENCODINGS,
    DecodeError,
    ImageDecoder,
    decode_compressed,
    decode_image,
)

H, W = 5, 6  # odd height, even width (YUV 4:2:2 needs an even width)


def known_rgb(h=H, w=W, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def image_msg(rows: list[bytes], w: int, encoding: str, pad: int = 0, bigendian: int = 0, data_kind=bytes):
    """Build an Image-like message from per-row payload bytes, padding each row with ``pad`` junk bytes."""
    step = len(rows[0]) + pad
    blob = b"".join(r + bytes([0xAB]) * pad for r in rows)
    return SimpleNamespace(
        height=len(rows), width=w, encoding=encoding, is_bigendian=bigendian, step=step, data=data_kind(blob)
    )


def rows_of(pixels: np.ndarray) -> list[bytes]:
    """Row payloads of an H×W×C (or H×W) uint8 array, built byte by byte (no numpy reshaping tricks)."""
    out = []
    for y in range(pixels.shape[0]):
        row = bytearray()
        for x in range(pixels.shape[1]):
            px = pixels[y, x]
            row.extend(int(v) for v in np.atleast_1d(px))
        out.append(bytes(row))
    return out


# ---------------------------------------------------------------------------------------------------------------
# colour encodings
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pad", [0, 3, 7])
@pytest.mark.parametrize(
    "encoding,order",
    [("rgb8", (0, 1, 2)), ("bgr8", (2, 1, 0)), ("8UC3", (2, 1, 0)), ("rgba8", (0, 1, 2, 3)), ("bgra8", (2, 1, 0, 3))],
)
def test_colour_encodings_with_row_padding(encoding, order, pad):
    rgb = known_rgb()
    alpha = np.random.default_rng(1).integers(0, 256, (H, W, 1), dtype=np.uint8)
    rgba = np.concatenate([rgb, alpha], axis=2)
    payload = rgba[:, :, list(order)]
    msg = image_msg(rows_of(payload), W, encoding, pad=pad)
    out = decode_image(msg)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    np.testing.assert_array_equal(out, rgb)


def test_8uc4_is_read_as_bgra():
    rgb = known_rgb()
    bgra = np.concatenate([rgb[:, :, ::-1], np.full((H, W, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(decode_image(image_msg(rows_of(bgra), W, "8UC4")), rgb)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
@pytest.mark.parametrize("pad", [0, 5])
def test_mono8(encoding, pad):
    g = known_rgb()[:, :, 0]
    out = decode_image(image_msg(rows_of(g), W, encoding, pad=pad))
    assert out.shape == (H, W, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], g)


@pytest.mark.parametrize("bigendian", [0, 1])
@pytest.mark.parametrize("pad", [0, 1, 4])  # odd padding: unaligned 16-bit rows
@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_mono16_endianness_and_padding(bigendian, pad, encoding):
    vals = np.random.default_rng(2).integers(0, 65536, (H, W)).tolist()
    fmt = ">H" if bigendian else "<H"
    rows = [b"".join(struct.pack(fmt, v) for v in row) for row in vals]
    out = decode_image(image_msg(rows, W, encoding, pad=pad, bigendian=bigendian))
    expected = np.array([[v // 256 for v in row] for row in vals], np.uint8)  # documented: >> 8
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], expected)


def test_mono16_wrong_endianness_flag_changes_the_result():
    """The flag is honoured: the same bytes read with the other byte order give other pixels."""
    rows = [struct.pack(">H", 0x1234) * W] * H
    big = decode_image(image_msg(rows, W, "mono16", bigendian=1))
    little = decode_image(image_msg(rows, W, "mono16", bigendian=0))
    assert big[0, 0, 0] == 0x12 and little[0, 0, 0] == 0x34


# ---------------------------------------------------------------------------------------------------------------
# YUV 4:2:2 (test-side BT.601 video-range formula)
# ---------------------------------------------------------------------------------------------------------------
def rgb_to_yuv601(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    q = lambda a: np.clip(np.rint(a), 0, 255).astype(np.uint8)  # noqa: E731
    return q(y), q(u), q(v)


def pairwise_constant_rgb(seed=3) -> np.ndarray:
    """Horizontally adjacent pixel pairs share one colour, so 4:2:2 chroma subsampling loses nothing."""
    half = known_rgb(H, W // 2, seed)
    return np.repeat(half, 2, axis=1)


def yuv422_rows(rgb: np.ndarray, order: str) -> list[bytes]:
    y, u, v = rgb_to_yuv601(rgb)
    rows = []
    for r in range(rgb.shape[0]):
        row = bytearray()
        for x in range(0, rgb.shape[1], 2):
            uu, vv = int(u[r, x]), int(v[r, x])  # both pixels of the pair have the same chroma
            y0, y1 = int(y[r, x]), int(y[r, x + 1])
            row.extend([uu, y0, vv, y1] if order == "UYVY" else [y0, uu, y1, vv])
        rows.append(bytes(row))
    return rows


@pytest.mark.parametrize("pad", [0, 6])
@pytest.mark.parametrize(
    "encoding,order", [("yuv422", "UYVY"), ("uyvy", "UYVY"), ("yuv422_yuy2", "YUYV"), ("yuyv", "YUYV")]
)
def test_yuv422_byte_orders(encoding, order, pad):
    rgb = pairwise_constant_rgb()
    out = decode_image(image_msg(yuv422_rows(rgb, order), W, encoding, pad=pad))
    # Quantising Y/U/V to integers costs up to ~2 RGB levels; a wrong byte order costs far more.
    assert np.abs(out.astype(int) - rgb.astype(int)).max() <= 3


def test_yuv422_wrong_order_is_detected():
    rgb = pairwise_constant_rgb()
    out = decode_image(image_msg(yuv422_rows(rgb, "YUYV"), W, "yuv422"))  # YUYV bytes labelled UYVY
    assert np.abs(out.astype(int) - rgb.astype(int)).max() > 20


# ---------------------------------------------------------------------------------------------------------------
# Bayer (mosaic of a known image; linear ramps are reproduced exactly by bilinear demosaicing)
# ---------------------------------------------------------------------------------------------------------------
BAYER = {
    "bayer_rggb8": ("R", "G", "G", "B"),
    "bayer_bggr8": ("B", "G", "G", "R"),
    "bayer_gbrg8": ("G", "B", "R", "G"),
    "bayer_grbg8": ("G", "R", "B", "G"),
}


def ramp_rgb(h=16, w=20) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([10 + 6 * x, 20 + 5 * y, 30 + 3 * x + 4 * y], axis=2).astype(np.uint8)


def mosaic(rgb: np.ndarray, pattern: tuple[str, str, str, str]) -> np.ndarray:
    ch = {"R": 0, "G": 1, "B": 2}
    out = np.zeros(rgb.shape[:2], np.uint8)
    for k, (dy, dx) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        out[dy::2, dx::2] = rgb[dy::2, dx::2, ch[pattern[k]]]
    return out


@pytest.mark.parametrize("encoding", sorted(BAYER))
@pytest.mark.parametrize("pad", [0, 3])
def test_bayer_patterns(encoding, pad):
    rgb = ramp_rgb()
    raw = mosaic(rgb, BAYER[encoding])
    out = decode_image(image_msg(rows_of(raw), raw.shape[1], encoding, pad=pad))
    inner = (slice(2, -2), slice(2, -2))
    assert np.abs(out[inner].astype(int) - rgb[inner].astype(int)).max() <= 1
    # every other pattern label gives clearly wrong colours
    for other in BAYER:
        if other != encoding:
            wrong = decode_image(image_msg(rows_of(raw), raw.shape[1], other))
            assert np.abs(wrong[inner].astype(int) - rgb[inner].astype(int)).max() > 10


def test_bayer_random_image_matches_opencv_demosaic():
    """Independent reference for a non-smooth image: OpenCV's demosaic with the code chosen here by hand."""
    raw = np.random.default_rng(4).integers(0, 256, (8, 10), dtype=np.uint8)
    out = decode_image(image_msg(rows_of(raw), 10, "bayer_grbg8", pad=2))
    np.testing.assert_array_equal(out, cv2.cvtColor(raw, cv2.COLOR_BayerGB2RGB))


# ---------------------------------------------------------------------------------------------------------------
# data containers, zero copy
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind",
    [
        bytes,
        bytearray,
        lambda b: memoryview(b),
        lambda b: array.array("B", b),
        lambda b: np.frombuffer(b, np.uint8).copy(),
        lambda b: list(b),
    ],
    ids=["bytes", "bytearray", "memoryview", "array", "ndarray", "list"],
)
def test_data_container_types(kind):
    rgb = known_rgb()
    msg = image_msg(rows_of(rgb[:, :, ::-1]), W, "bgr8", pad=2, data_kind=kind)
    np.testing.assert_array_equal(decode_image(msg), rgb)


def test_rgb8_is_zero_copy_even_with_padding():
    rgb = known_rgb()
    blob = np.frombuffer(b"".join(r + b"\0\0" for r in rows_of(rgb)), np.uint8).copy()
    msg = SimpleNamespace(height=H, width=W, encoding="rgb8", is_bigendian=0, step=W * 3 + 2, data=blob)
    out = decode_image(msg)
    assert np.shares_memory(out, blob)
    np.testing.assert_array_equal(out, rgb)


def test_trailing_extra_bytes_are_ignored():
    rgb = known_rgb()
    msg = image_msg(rows_of(rgb), W, "rgb8")
    msg.data = msg.data + b"\x01\x02"
    np.testing.assert_array_equal(decode_image(msg), rgb)


# ---------------------------------------------------------------------------------------------------------------
# rejections
# ---------------------------------------------------------------------------------------------------------------
def good_msg(**over):
    rgb = known_rgb()
    msg = image_msg(rows_of(rgb), W, "rgb8")
    for k, v in over.items():
        setattr(msg, k, v)
    return msg


@pytest.mark.parametrize(
    "over,reason",
    [
        ({"encoding": "rgb16"}, "unknown_encoding"),
        ({"encoding": "32FC1"}, "unknown_encoding"),
        ({"encoding": None}, "unknown_encoding"),
        ({"data": b"\0" * (H * W * 3 - 1)}, "truncated"),
        ({"step": W * 3 + 1}, "truncated"),  # step larger than the data allows
        ({"height": 0}, "zero_size"),
        ({"width": 0}, "zero_size"),
        ({"data": b""}, "zero_size"),
        ({"step": W * 3 - 1}, "bad_step"),
        ({"height": -2}, "bad_dims"),
        ({"height": 1 << 20}, "bad_dims"),
        ({"encoding": "yuv422", "width": 5, "step": 10}, "bad_dims"),
        ({"data": np.zeros(H * W * 3, np.float32)}, "bad_data"),
        ({"data": [0, 1, 256] * (H * W)}, "bad_data"),
        ({"data": [0.5] * (H * W * 3)}, "bad_data"),
        ({"data": object()}, "bad_data"),
        ({"data": array.array("d", [0.0] * 90)}, "bad_data"),
        ({"height": 2.0}, "bad_message"),
        ({"step": "18"}, "bad_message"),
    ],
)
def test_raw_rejections(over, reason):
    with pytest.raises(DecodeError) as ei:
        decode_image(good_msg(**over))
    assert ei.value.reason == reason


def test_missing_field_is_bad_message():
    msg = good_msg()
    del msg.step
    with pytest.raises(DecodeError) as ei:
        decode_image(msg)
    assert ei.value.reason == "bad_message"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(-2, 9),
    w=st.integers(-2, 9),
    step=st.integers(-1, 40),
    enc=st.sampled_from(sorted(RAW_ENCODINGS) + ["foo", "RGB8", "Mono16"]),
    big=st.integers(0, 1),
    data=st.binary(max_size=300),
)
def test_fuzz_never_crashes(h, w, step, enc, big, data):
    msg = SimpleNamespace(height=h, width=w, encoding=enc, is_bigendian=big, step=step, data=data)
    try:
        out = decode_image(msg)
    except DecodeError as exc:
        assert exc.reason
        return
    assert out.dtype == np.uint8 and out.shape == (h, w, 3)


# ---------------------------------------------------------------------------------------------------------------
# compressed
# ---------------------------------------------------------------------------------------------------------------
def smooth_rgb(h=48, w=64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([4 * x, 5 * y, 2 * x + 2 * y], axis=2).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("fmt", ["png", "rgb8; png compressed bgr8", "bgr8; png compressed bgr8", "PNG", ""])
def test_png_is_lossless(fmt):
    rgb = known_rgb(17, 23)
    ok, enc = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))  # PNG holds true colours
    assert ok
    out = decode_compressed(SimpleNamespace(format=fmt, data=enc.tobytes()))
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("fmt", ["jpeg", "rgb8; jpeg compressed bgr8", "bgr8; jpeg compressed bgr8", ""])
def test_jpeg_matches_an_independent_decoder(fmt):
    import io

    from PIL import Image

    rgb = smooth_rgb()
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=95)
    data = buf.getvalue()
    out = decode_compressed(SimpleNamespace(format=fmt, data=np.frombuffer(data, np.uint8)))
    ref = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert out.shape == rgb.shape
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 3  # libjpeg builds may differ in IDCT rounding
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 2.0  # true colours (R and B not swapped)


def jpeg_bytes() -> bytes:
    ok, enc = cv2.imencode(".jpg", smooth_rgb())
    return enc.tobytes()


def png_bytes() -> bytes:
    ok, enc = cv2.imencode(".png", smooth_rgb())
    return enc.tobytes()


@pytest.mark.parametrize(
    "fmt,data,reason",
    [
        ("jpeg", b"", "zero_size"),
        ("jpeg", b"not a jpeg at all", "bad_compressed"),
        ("png", b"\xff\xd8\xff\xe0 jpeg header but png format", "bad_compressed"),
        ("jpeg", "TRUNC_JPEG", "truncated"),
        ("png", "TRUNC_PNG", "truncated"),
        ("jpeg", "CORRUPT_JPEG", "bad_compressed"),
        ("tiff", "JPEG", "unsupported_format"),
        ("16UC1; compressedDepth png", "PNG", "unsupported_format"),
        ("", b"GIF89a....", "bad_compressed"),
        (5, "JPEG", "bad_message"),
    ],
)
def test_compressed_rejections(fmt, data, reason):
    j, p = jpeg_bytes(), png_bytes()
    corrupt = j[:200] + b"\x00" * (len(j) - 202) + b"\xff\xd9"
    data = {
        "TRUNC_JPEG": j[: len(j) // 2],
        "TRUNC_PNG": p[: len(p) // 2],
        "CORRUPT_JPEG": corrupt,
        "JPEG": j,
        "PNG": p,
    }.get(data, data)
    with pytest.raises(DecodeError) as ei:
        decode_compressed(SimpleNamespace(format=fmt, data=data))
    assert ei.value.reason == reason


# ---------------------------------------------------------------------------------------------------------------
# cv_bridge routing and per-message fallback (bridges injected; the real one is absent here)
# ---------------------------------------------------------------------------------------------------------------
class TableBridge:
    """A stand-in for cv_bridge built independently: channel tables for 8-bit colour encodings only.

    ``fail_on`` makes it raise for chosen encodings, like the real one does on NumPy 2 for big-endian images.
    """

    ORDERS = {"rgb8": [0, 1, 2], "bgr8": [2, 1, 0], "rgba8": [0, 1, 2], "bgra8": [2, 1, 0]}

    def __init__(self, fail_on=(), wrong_shape=False):
        self.fail_on = set(fail_on)
        self.wrong_shape = wrong_shape
        self.calls = []

    def imgmsg_to_cv2(self, msg, desired_encoding="passthrough"):
        self.calls.append(msg.encoding)
        if msg.encoding in self.fail_on or msg.encoding not in self.ORDERS:
            raise AttributeError("'numpy.ndarray' object has no attribute 'newbyteorder'")
        n = 3 if msg.encoding in ("rgb8", "bgr8") else 4
        buf = np.frombuffer(bytes(msg.data), np.uint8)[: msg.step * msg.height].reshape(msg.height, msg.step)
        px = buf[:, : msg.width * n].reshape(msg.height, msg.width, n)[:, :, self.ORDERS[msg.encoding]]
        return px[:, :2] if self.wrong_shape and msg.height > 2 else px.copy()

    def compressed_imgmsg_to_cv2(self, msg, desired_encoding="passthrough"):
        self.calls.append("compressed")
        raise RuntimeError("boom")


def test_auto_mode_uses_a_working_bridge():
    bridge = TableBridge()
    dec = ImageDecoder(use_cv_bridge=None, bridge=bridge)
    assert dec.using_cv_bridge and dec.cv_bridge_status == "active"
    rgb = known_rgb()
    out = dec.decode(image_msg(rows_of(rgb[:, :, ::-1]), W, "bgr8", pad=3))
    np.testing.assert_array_equal(out, rgb)
    assert dec.counts["cv_bridge"] == 1 and dec.counts["numpy"] == 0


def test_bridge_exception_falls_back_per_message():
    bridge = TableBridge(fail_on={"rgba8"})
    dec = ImageDecoder(bridge=bridge)
    rgb = known_rgb()
    rgba = np.concatenate([rgb, np.zeros((H, W, 1), np.uint8)], axis=2)
    np.testing.assert_array_equal(dec.decode(image_msg(rows_of(rgba), W, "rgba8")), rgb)
    assert dec.counts["cv_bridge_fallback"] == 1 and dec.counts["numpy"] == 1
    np.testing.assert_array_equal(dec.decode(image_msg(rows_of(rgb), W, "rgb8")), rgb)  # bridge still used
    assert dec.counts["cv_bridge"] == 1


def test_bridge_bad_output_shape_falls_back():
    dec = ImageDecoder(bridge=TableBridge(wrong_shape=True))
    rgb = known_rgb()
    np.testing.assert_array_equal(dec.decode(image_msg(rows_of(rgb), W, "rgb8")), rgb)
    assert dec.counts["cv_bridge_fallback"] == 1


def test_sixteen_bit_and_8uc3_never_go_to_the_bridge():
    bridge = TableBridge()
    dec = ImageDecoder(bridge=bridge)
    bridge.calls.clear()
    rows = [struct.pack(">H", 0xABCD) * W] * H
    out = dec.decode(image_msg(rows, W, "mono16", bigendian=1))
    assert (out == 0xAB).all()
    rgb = known_rgb()
    np.testing.assert_array_equal(dec.decode(image_msg(rows_of(rgb[:, :, ::-1]), W, "8UC3")), rgb)
    assert bridge.calls == []


def test_compressed_images_never_go_to_the_bridge():
    """cv_bridge decodes compressed images with imdecode (corrupt JPEG data accepted, no pixel budget): ours only."""
    bridge = TableBridge()
    dec = ImageDecoder(bridge=bridge)
    bridge.calls.clear()
    rgb = known_rgb(9, 11)
    ok, enc = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    np.testing.assert_array_equal(dec.decode(SimpleNamespace(format="png", data=enc.tobytes())), rgb)
    assert bridge.calls == [] and dec.counts["cv_bridge_fallback"] == 0


def test_validation_is_ours_even_with_a_bridge():
    dec = ImageDecoder(bridge=TableBridge())
    with pytest.raises(DecodeError) as ei:
        dec.decode(good_msg(data=b"\0" * 10))
    assert ei.value.reason == "truncated"


class BrokenBridge(TableBridge):
    def imgmsg_to_cv2(self, msg, desired_encoding="passthrough"):
        raise ImportError("numpy.core.multiarray failed to import (_ARRAY_API not found)")


def test_bridge_failing_its_probe_is_not_used():
    dec = ImageDecoder(use_cv_bridge=None, bridge=BrokenBridge())
    assert not dec.using_cv_bridge and dec.cv_bridge_status.startswith("broken")
    with pytest.raises(RuntimeError):
        ImageDecoder(use_cv_bridge=True, bridge=BrokenBridge())


def test_bridge_giving_other_pixels_fails_probe():
    class Swapper(TableBridge):
        ORDERS = {**TableBridge.ORDERS, "bgr8": [0, 1, 2]}  # forgets to swap

    assert not ImageDecoder(bridge=Swapper()).using_cv_bridge


def test_disabled_and_required_modes():
    dec = ImageDecoder(use_cv_bridge=False, bridge=TableBridge())
    assert not dec.using_cv_bridge
    try:
        import cv_bridge  # noqa: F401
    except Exception:
        with pytest.raises(ImportError):
            ImageDecoder(use_cv_bridge=True)
        auto = ImageDecoder()
        assert not auto.using_cv_bridge and auto.cv_bridge_status.startswith("unavailable")
