"""Compressed images at the seams: corrupt JPEG data refused (not decoded grey/shifted), decompression bombs refused
from the header before any pixel is decoded, and JPEG decoded at a reduced DCT scale within a stated tolerance of
full decode + resize."""

from __future__ import annotations

import importlib.util
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from fastwam_ros.perception import ObservationPipeline, PerceptionConfig, preprocess_frames
from fastwam_ros.perception.decode import (
    DecodeError,
    compressed_size,
    decode_compressed,
    decode_message,
    decode_scale_for,
)
from fastwam_ros.perception.tiling import resize_aa

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_perception.py"


def camera_like(seed=0) -> np.ndarray:
    """A 480×640 camera-like picture (smooth shading, hard-edged objects, sensor noise): the benchmark's scene."""
    spec = importlib.util.spec_from_file_location("bench_perception", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench.scene(seed)


def jpeg(img: np.ndarray, quality=90) -> bytes:
    ok, enc = cv2.imencode(".jpg", np.ascontiguousarray(img[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return enc.tobytes()


def msg(data: bytes, fmt="jpeg") -> SimpleNamespace:
    return SimpleNamespace(format=fmt, data=data)


def scan_start(data: bytes) -> int:
    sos = data.find(b"\xff\xda")
    return sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")


CLEAN = jpeg(camera_like())


def test_clean_jpeg_still_decodes_exactly_like_libjpeg():
    out = decode_compressed(msg(CLEAN))
    ref = cv2.cvtColor(cv2.imdecode(np.frombuffer(CLEAN, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert out.shape == (480, 640, 3) and np.abs(out.astype(int) - ref).max() <= 1


def test_frame_cut_in_half_with_eoi_reappended_is_rejected():
    """Issue 14 item 7: OpenCV decodes this with a grey lower half (mean error ~50/255) and only a warning."""
    start = scan_start(CLEAN)
    cut = CLEAN[: (start + len(CLEAN)) // 2] + b"\xff\xd9"
    grey = cv2.imdecode(np.frombuffer(cut, np.uint8), cv2.IMREAD_COLOR)
    assert grey is not None  # what main fed to the model
    with pytest.raises(DecodeError) as ei:
        decode_compressed(msg(cut))
    assert ei.value.reason == "corrupt_jpeg"


@pytest.mark.parametrize("seed", range(6))
def test_flipped_bytes_that_break_the_entropy_coding_are_rejected(seed):
    """Bytes flipped so that libjpeg hits a marker / a bad Huffman code / leftover data: each such stream, which
    OpenCV decodes silently, is refused. (A flip that keeps the coding valid cannot be detected: JPEG carries no
    checksum -- see test/stress/fuzz_perception.py for the rates.)"""
    rng = np.random.default_rng(seed)
    start = scan_start(CLEAN)
    found = 0
    for _ in range(200):
        b = bytearray(CLEAN)
        for p in rng.integers(start, len(CLEAN) - 2, 3):
            b[int(p)] ^= 0xFF
        data = bytes(b)
        if cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is None:
            continue
        try:
            import simplejpeg

            simplejpeg.decode_jpeg(data, strict=True)
            continue  # libjpeg itself sees nothing wrong: not this test's case
        except ValueError:
            pass
        with pytest.raises(DecodeError) as ei:
            decode_compressed(msg(data))
        assert ei.value.reason in ("corrupt_jpeg", "bad_compressed")
        found += 1
        if found == 5:
            break
    assert found >= 1


def test_a_few_flipped_bytes_are_rejected_in_the_pipeline_and_counted():
    cfg = PerceptionConfig.from_dict({"cameras": [{"name": "head", "transport": "compressed"}],
                                      "tile_hw": [128, 160]})
    p = ObservationPipeline(cfg)
    start = scan_start(CLEAN)
    b = bytearray(CLEAN)
    b[start + 100 : start + 104] = b"\xff\x00\xff\xc4"  # a DHT marker inside the entropy-coded data
    assert not p.add_image("head", msg(bytes(b)), stamp_s=1.0)
    assert p.add_image("head", msg(CLEAN), stamp_s=1.1)
    st = p.stats()
    assert sum(v for k, v in st["rejections"].items() if k.startswith("decode:")) == 1
    assert "simplejpeg" in st["jpeg_decoder"]


# ---- decompression bombs ---------------------------------------------------------------------------------------
def png_bomb(h: int, w: int) -> bytes:
    """A valid, small PNG of h×w black RGB pixels (the IDAT compresses ~1000:1)."""
    z = zlib.compressobj(1)
    block = (b"\x00" + b"\x00" * (3 * w)) * 250
    raw = b"".join(z.compress(block) for _ in range(h // 250)) + z.compress(block[: (h % 250) * (3 * w + 1)])
    raw += z.flush()

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(
        b"IDAT", raw) + chunk(b"IEND", b"")


def test_png_bomb_is_refused_from_its_header():
    bomb = png_bomb(6000, 6000)  # 36 MP (108 MB decoded) from a few hundred KB
    assert len(bomb) < 1_000_000
    assert compressed_size(msg(bomb, "png")) == (6000, 6000)
    with pytest.raises(DecodeError) as ei:
        decode_compressed(msg(bomb, "png"), max_pixels=4096 * 4096)
    assert ei.value.reason == "too_many_pixels"
    small = png_bomb(20, 30)
    assert decode_compressed(msg(small, "png"), max_pixels=600).shape == (20, 30, 3)
    with pytest.raises(DecodeError):
        decode_compressed(msg(small, "png"), max_pixels=599)


def test_jpeg_header_size_is_checked_against_the_budget_in_the_pipeline():
    cfg = PerceptionConfig.from_dict({"cameras": [{"name": "a", "transport": "compressed"}], "tile_hw": [8, 8],
                                      "max_image_pixels": 640 * 480 - 1})
    p = ObservationPipeline(cfg)
    assert compressed_size(msg(CLEAN)) == (480, 640)
    assert not p.add_image("a", msg(CLEAN), stamp_s=1.0)
    assert p.stats()["rejections"] == {"decode:too_many_pixels": 1}


def test_png_with_a_damaged_chunk_is_rejected():
    ok, enc = cv2.imencode(".png", camera_like(4)[:96, :128])
    b = bytearray(enc.tobytes())
    idat = b.find(b"IDAT")
    b[idat + 40] ^= 0x55
    with pytest.raises(DecodeError):
        decode_compressed(msg(bytes(b), "png"))


# ---- reduced-scale JPEG decoding -------------------------------------------------------------------------------
def test_decode_scale_is_chosen_per_camera_from_camera_and_tile_sizes():
    assert decode_scale_for((480, 640), (256, 320)) == 2  # 240×320 keeps 94 % of the head tile's rows
    assert decode_scale_for((480, 640), (128, 160)) == 4  # 120×160 for a wrist tile
    assert decode_scale_for((480, 640), (240, 320)) == 2  # the RoboTwin training pre-resize: exact
    assert decode_scale_for((480, 640), (480, 640)) == 1
    assert decode_scale_for((1080, 1920), (128, 160)) == 8
    assert decode_scale_for((120, 160), (256, 320)) == 1  # upscaling: never reduced
    assert decode_scale_for((480, 640), (256, 320), min_fraction=1.0) == 1
    assert decode_scale_for((480, 640), None) == 1
    cfg = PerceptionConfig.from_dict({"cameras": [{"name": n} for n in ("head", "l", "r")], "layout": "robotwin"})
    assert cfg.decode_target_hw("head") == (256, 320) and cfg.decode_target_hw("l") == (128, 160)
    rot = PerceptionConfig.from_dict({"cameras": [{"name": "a", "transform": "rot90"}], "tile_hw": [100, 200]})
    assert rot.decode_target_hw("a") == (200, 100)  # the camera's own orientation


# Documented tolerance of the reduced decode (README "Perception figures"): mean |diff| <= 1.5 uint8 levels and
# PSNR >= 36 dB against full decode + the same resize, per tile.
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("need", [(256, 320), (128, 160)])
def test_reduced_decode_is_within_tolerance_of_full_decode_plus_resize(seed, need):
    data = jpeg(camera_like(seed=seed))
    reduced = decode_compressed(msg(data), need_hw=need)
    assert reduced.shape[:2] == tuple(-(-s // decode_scale_for((480, 640), need)) for s in (480, 640))
    ours = resize_aa(reduced, need).astype(float)
    full = resize_aa(decode_compressed(msg(data)), need).astype(float)
    d = np.abs(ours - full)
    assert d.mean() <= 1.5 and 10 * np.log10(255**2 / np.mean(d**2)) >= 36.0


def test_pipeline_uses_the_reduced_decode_and_can_turn_it_off():
    cams = {"head": jpeg(camera_like(seed=1)), "l": jpeg(camera_like(seed=2)), "r": jpeg(camera_like(seed=3))}
    frames = {}
    for scaled in (True, False):
        cfg = PerceptionConfig.from_dict({"cameras": [{"name": n, "transport": "compressed"} for n in cams],
                                          "layout": "robotwin", "scaled_decode": scaled})
        p = ObservationPipeline(cfg)
        for n, data in cams.items():
            assert p.add_image(n, msg(data), stamp_s=1.0)
        frames[scaled] = p.poll(1.0).frame
        full = preprocess_frames({n: decode_message(msg(d)) for n, d in cams.items()}, cfg)
    np.testing.assert_array_equal(frames[False], full)  # off: bit-identical to full decode + preprocess_frames
    d = np.abs(frames[True] - full) * 127.5  # on: within the tolerance, in uint8 levels
    assert 0 < d.mean() <= 1.5
