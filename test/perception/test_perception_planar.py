"""Raw images go from the message buffer straight into their tile: channel-order encodings are resized as they
arrived (no conversion pass) and reordered on the small planar tile, large ones box-reduced first. The result is
bit-identical to decode + preprocess_frames with scaled_decode off, and within the documented tolerance with it on."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fastwam_ros.perception import ObservationPipeline, PerceptionConfig, decode_message, preprocess_frames

RNG = np.random.default_rng(5)


def smooth(h, w, seed):
    y, x = np.mgrid[0:h, 0:w] / w
    img = np.stack([np.sin(5 * x + seed) * 90 + 120, np.cos(3 * y + seed) * 80 + 110, (x + y) * 70 + 40], axis=2)
    return np.clip(img + np.random.default_rng(seed).normal(0, 3, img.shape), 0, 255).astype(np.uint8)


def raw_msg(rgb: np.ndarray, encoding: str, pad: int = 0):
    h, w, _ = rgb.shape
    px = {"rgb8": rgb, "bgr8": rgb[:, :, ::-1], "8UC3": rgb[:, :, ::-1],
          "rgba8": np.concatenate([rgb, np.full((h, w, 1), 7, np.uint8)], 2),
          "bgra8": np.concatenate([rgb[:, :, ::-1], np.full((h, w, 1), 7, np.uint8)], 2),
          "mono8": rgb[:, :, 1:2]}[encoding]
    rows = np.ascontiguousarray(px).reshape(h, -1)
    data = np.concatenate([rows, np.full((h, pad), 0x5A, np.uint8)], 1).tobytes()
    return SimpleNamespace(height=h, width=w, encoding=encoding, is_bigendian=0, step=rows.shape[1] + pad, data=data)


CAMS = [{"name": "head", "transform": "rot180"}, {"name": "left"}, {"name": "right", "transform": "rot90"}]


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "8UC3", "rgba8", "bgra8", "mono8"])
@pytest.mark.parametrize("scaled", [False, True])
def test_raw_frames_match_decode_then_preprocess(encoding, scaled):
    cfg = PerceptionConfig.from_dict({"cameras": CAMS, "layout": "robotwin", "scaled_decode": scaled,
                                      "use_cv_bridge": False})
    p = ObservationPipeline(cfg)
    images = {"head": smooth(480, 640, 1), "left": smooth(240, 320, 2), "right": smooth(320, 240, 3)}
    msgs = {c: raw_msg(img, encoding, pad=4) for c, img in images.items()}
    for c, m in msgs.items():
        assert p.add_image(c, m, stamp_s=2.0)
    frame = p.poll(2.0).frame
    assert p.decoder.counts["zero_copy"] == 3  # no decode pass: the message buffers themselves were resized
    ref = preprocess_frames({c: decode_message(m) for c, m in msgs.items()}, cfg)
    if not scaled:
        np.testing.assert_array_equal(frame, ref)
    else:  # each camera box-reduced by 2 first (480×640 → 240×320 for 256×320, 240×320 → 120×160 for 128×160)
        d = np.abs(frame - ref) * 127.5
        assert 0 < d.mean() <= 1.5  # the documented tolerance, as for JPEG


def test_grid_layout_with_mono_and_rgba_keeps_empty_cells_black():
    cfg = PerceptionConfig.from_dict({"cameras": [{"name": "a"}, {"name": "b"}, {"name": "c"}], "layout": "grid",
                                      "tile_hw": [20, 24], "grid_rows": 2, "grid_cols": 2, "scaled_decode": False})
    p = ObservationPipeline(cfg)
    imgs = {"a": smooth(40, 48, 1), "b": smooth(20, 24, 2), "c": smooth(30, 30, 3)}
    encs = {"a": "mono8", "b": "rgba8", "c": "bgr8"}
    for _ in range(2):  # the second poll reuses nothing from the first
        for c, img in imgs.items():
            assert p.add_image(c, raw_msg(img, encs[c]), stamp_s=3.0 + _)
        obs = p.poll(3.0 + _)
        ref = preprocess_frames({c: decode_message(raw_msg(img, encs[c])) for c, img in imgs.items()}, cfg)
        np.testing.assert_array_equal(obs.frame, ref)
        assert (obs.frame[:, 20:, 24:] == -1.0).all()
        assert obs.image_rgb.shape == (40, 48, 3)
        np.testing.assert_array_equal(obs.image_rgb, np.round((ref.transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8))


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_fit_crop_and_deploy_resize_through_the_planar_path(encoding):
    """fit: crop (LIBERO) and resize: deploy reach the pipeline's planar path: same as fit_to_tile per camera."""
    from fastwam_ros.perception.tiling import fit_to_tile

    cfg = PerceptionConfig.from_dict({"cameras": [{"name": "a", "pre_resize_hw": [100, 100]}, {"name": "b"}],
                                      "tile_hw": [48, 64], "fit": "crop", "resize": "deploy",
                                      "scaled_decode": False})
    p = ObservationPipeline(cfg)
    imgs = {"a": smooth(90, 200, 1), "b": smooth(120, 70, 2)}
    for c, img in imgs.items():
        assert p.add_image(c, raw_msg(img, encoding), stamp_s=1.0)
    frame = p.poll(1.0).frame
    want = np.concatenate([fit_to_tile(imgs["a"], (48, 64), "crop"), fit_to_tile(imgs["b"], (48, 64), "crop")], 1)
    np.testing.assert_array_equal(frame, (want.transpose(2, 0, 1).astype(np.float32) * np.float32(2 / 255)) - 1)


@pytest.mark.parametrize("layout", ["grid", "robotwin"])
def test_normalized_tiling_equals_tiling_then_normalize(layout):
    """tile_planar(normalize=True) scales each tile while copying it: the same float32 numbers as the uint8 frame
    normalised afterwards, empty grid cells included (-1), for channel-reordered and mono inputs too."""
    from fastwam_ros.perception.tiling import make_tiling_spec, normalize_planar, tile_planar

    spec = make_tiling_spec(layout, 3, tile_hw=(20, 24), grid_rows=2, grid_cols=2)
    imgs = [smooth(48, 64, 1), smooth(30, 40, 2)[:, :, ::-1], smooth(60, 50, 3)[:, :, 1:2]]
    orders = [(0, 1, 2), (2, 1, 0), (0, 0, 0)]
    kw = {"orders": orders, "transforms": ["none", "rot90", "flip_h"]}
    ref = normalize_planar(tile_planar(imgs, spec, **kw))
    got = tile_planar(imgs, spec, normalize=True, **kw)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, ref)
    if layout == "grid":
        assert (got[:, 20:, 24:] == -1.0).all()


def test_normalize_planar_is_the_float32_arithmetic_for_every_layout():
    """The table look-up gives exactly x * float32(2/255) - 1 in float32 (computed here with NumPy), for planar
    input, the planar view of an interleaved frame (what tile_planar returns) and a strided view; every uint8
    value occurs."""
    from fastwam_ros.perception.tiling import normalize_planar

    hwc = RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    hwc.reshape(-1)[:256] = np.arange(256, dtype=np.uint8)
    for planes in (hwc.transpose(2, 0, 1), np.ascontiguousarray(hwc.transpose(2, 0, 1)),
                   hwc[::2, ::-1, ::-1].transpose(2, 0, 1)):
        want = planes.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)
        got = normalize_planar(planes)
        assert got.dtype == np.float32 and got.flags.c_contiguous and got.shape == planes.shape
        np.testing.assert_array_equal(got, want)
    assert normalize_planar(np.array([[[0, 255]]], np.uint8)).tolist() == [[[-1.0, 1.0]]]
