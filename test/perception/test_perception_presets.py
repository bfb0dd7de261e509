"""The presets' model input against independent re-implementations of the official preprocessing (PIL).

RoboTwin (deploy_policy.py): each camera PIL-bilinear resized straight into its tile (head 320x256 W x H, wrists
160x128), head over [left | right]. LIBERO (eval_libero_single.py + libero_utils.py): both renders rotated
180 degrees (``img[::-1, ::-1]``), PIL-bilinear resized keeping the aspect ratio to cover 224x224 (sizes rounded
with Python's round), centre-cropped, [agent | wrist]. Both then map uint8 x to x * 2/255 - 1.
Documented tolerance (README "Using the released checkpoints"): at most 1 uint8 level per pixel, mean < 0.25.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fastwam_ros.perception import PerceptionConfig, preprocess_frames
from fastwam_ros.perception.pipeline import tile_frames
from fastwam_ros.perception.tiling import fit_to_tile
from fastwam_ros.robot import load_robot

BACKENDS = ["torch", "numpy"]


def preset(name: str, **over) -> PerceptionConfig:
    """The preset robot file's perception config (through the one loader), with some fields overridden."""
    return PerceptionConfig.from_dict({**load_robot(name).perception_dict(), **over})


def scene(h, w, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([np.sin(6 * x + seed) * 80 + 120, np.cos(4 * y) * 70 + 110, (x + y) * 90 + 30], axis=2)
    img[(x * 12).astype(int) % 4 == 0] += 50
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


def noise(h, w, seed) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def pil_resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((w, h), resample=Image.BILINEAR), dtype=np.uint8)


def official_robotwin(head, left, right) -> np.ndarray:
    bottom = np.concatenate([pil_resize(left, 160, 128), pil_resize(right, 160, 128)], axis=1)
    return np.concatenate([pil_resize(head, 320, 256), bottom], axis=0)


def official_libero_camera(img: np.ndarray, w: int = 224, h: int = 224) -> np.ndarray:
    img = np.ascontiguousarray(img[::-1, ::-1])  # the 180-degree rotation of libero_utils.get_libero_image
    sh, sw = img.shape[:2]
    s = max(w / sw, h / sh)
    rw, rh = round(sw * s), round(sh * s)
    big = Image.fromarray(img).resize((rw, rh), resample=Image.BILINEAR)
    left, top = max((rw - w) // 2, 0), max((rh - h) // 2, 0)
    return np.asarray(big.crop((left, top, left + w, top + h)), dtype=np.uint8)


def assert_within_tolerance(got: np.ndarray, ref: np.ndarray) -> None:
    assert got.shape == ref.shape and got.dtype == np.uint8
    d = np.abs(got.astype(np.int16) - ref.astype(np.int16))
    assert d.max() <= 1, f"max {d.max()} levels"
    assert d.mean() < 0.25, f"mean {d.mean():.3f} levels"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("maker", [scene, noise])
def test_robotwin_preset_matches_the_official_eval(backend, maker):
    cfg = preset("robotwin_aloha_agilex", resize_backend=backend)
    assert cfg.resize == "deploy" and cfg.out_hw == (384, 320)
    imgs = {n: maker(480, 640, 10 + i) for i, n in enumerate(cfg.camera_names)}
    ref = official_robotwin(imgs["head"], imgs["left_wrist"], imgs["right_wrist"])
    assert_within_tolerance(tile_frames(imgs, cfg), ref)
    # the normalised model input: official x * 2/255 - 1 (float32 here; the official code does it in bf16)
    np.testing.assert_allclose(preprocess_frames(imgs, cfg), (tile_frames(imgs, cfg).transpose(2, 0, 1)
                                                              * (2.0 / 255.0) - 1.0), atol=1e-6)


def test_robotwin_training_resize_is_a_different_input():
    """`resize: training` (240x320 first, as the training data pipeline did) is what the option switches to;
    it differs from the official eval's input by more than the tolerance (figures: bench_resize_modes.py)."""
    dep, tr = preset("robotwin_aloha_agilex"), preset("robotwin_aloha_agilex", resize="training")
    imgs = {n: scene(480, 640, 20 + i) for i, n in enumerate(dep.camera_names)}
    a, b = tile_frames(imgs, dep).astype(np.int16), tile_frames(imgs, tr).astype(np.int16)
    assert np.abs(a - b).max() > 1
    # without a pre_resize_hw the two modes are the same path
    plain = {"cameras": [{"name": n} for n in ("h", "l", "r")], "layout": "robotwin"}
    imgs = {n: scene(480, 640, i) for i, n in enumerate(("h", "l", "r"))}
    np.testing.assert_array_equal(tile_frames(imgs, PerceptionConfig.from_dict({**plain, "resize": "deploy"})),
                                  tile_frames(imgs, PerceptionConfig.from_dict(plain)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("src_hw", [(256, 256), (480, 640), (300, 200)])
def test_libero_preset_matches_the_official_eval(backend, src_hw):
    """256x256 is LIBERO's render size; the other sizes exercise the aspect-keeping crop (a real camera)."""
    cfg = preset("libero_franka", resize_backend=backend)
    assert cfg.fit == "crop" and cfg.out_hw == (224, 448)
    imgs = {"agentview": scene(*src_hw, 1), "wrist": noise(*src_hw, 2)}
    ref = np.concatenate([official_libero_camera(imgs["agentview"]), official_libero_camera(imgs["wrist"])], axis=1)
    assert_within_tolerance(tile_frames(imgs, cfg), ref)


def test_crop_geometry_by_hand():
    """480x640 into 224x224: s = max(224/640, 224/480) = 0.4667 -> 224 x round(298.67) = 299, x offset 37."""
    img = np.zeros((480, 640, 3), np.uint8)
    img[:, :, 0] = (np.arange(640) * 255 // 639).astype(np.uint8)  # a left-to-right ramp
    full = fit_to_tile(img, (224, 299), "stretch", "numpy")
    np.testing.assert_array_equal(fit_to_tile(img, (224, 224), "crop", "numpy"), full[:, 37:261])
    with pytest.raises(ValueError, match="fit"):
        fit_to_tile(img, (224, 224), "pad")


def test_resize_and_fit_are_validated():
    for key, bad in (("resize", "official"), ("fit", "pad")):
        with pytest.raises(ValueError, match=key):
            PerceptionConfig.from_dict({"cameras": [{"name": "a"}], key: bad})
