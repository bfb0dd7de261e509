"""Tiling geometry and pixel values against references computed independently here
(torch.nn.functional.interpolate(antialias=True) on float tensors, i.e. torchvision's Resize; and PIL bilinear)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from fastwam_ros.perception import PerceptionConfig, preprocess_frames
from fastwam_ros.perception.tiling import apply_transform, make_tiling_spec, resize_aa

ONE_LEVEL = 1.0 / 255.0  # tolerance in [0, 1] units
EPS = 1e-5  # float32 round-off of the reference itself


def noise(h, w, seed) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def scene(h, w, seed) -> np.ndarray:
    """A natural-ish image: smooth gradients plus edges plus some noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(7 * x) * 90 + 120, np.cos(5 * y) * 80 + 120, (x + y) * 100], axis=2)
    base[(x * 10).astype(int) % 3 == 0] += 60
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def ref_resize01(img: np.ndarray, hw) -> np.ndarray:
    """Float reference in [0, 1]: torchvision's Resize on a ToTensor image (bilinear, antialias).
    ``img`` is uint8 [0, 255] or float [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].double()
    if img.dtype == np.uint8:
        t = t / 255.0
    out = F.interpolate(t, size=tuple(hw), mode="bilinear", antialias=True, align_corners=False)
    return out[0].permute(1, 2, 0).numpy()


def pil_resize01(img: np.ndarray, hw) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((hw[1], hw[0]), Image.BILINEAR)).astype(np.float64) / 255.0


BACKENDS = ["torch", "numpy"]
SIZES = [((480, 640), (256, 320)), ((480, 640), (128, 160)), ((256, 256), (224, 224)), ((120, 160), (224, 224)),
         ((97, 131), (64, 50)), ((240, 320), (256, 320))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("src_hw,dst_hw", SIZES)
@pytest.mark.parametrize("maker", [noise, scene])
def test_resize_matches_float_reference_within_one_level(backend, src_hw, dst_hw, maker):
    img = maker(*src_hw, seed=sum(src_hw) + sum(dst_hw))
    got = resize_aa(img, dst_hw, backend).astype(np.float64) / 255.0
    assert got.shape == (*dst_hw, 3)
    assert np.abs(got - ref_resize01(img, dst_hw)).max() <= ONE_LEVEL + EPS


@pytest.mark.parametrize("src_hw,dst_hw", SIZES)
def test_torch_backend_matches_pil_bilinear_within_one_level(src_hw, dst_hw):
    img = noise(*src_hw, seed=7)
    got = resize_aa(img, dst_hw, "torch").astype(np.float64) / 255.0
    assert np.abs(got - pil_resize01(img, dst_hw)).max() <= ONE_LEVEL + EPS


def test_resize_is_not_plain_bilinear():
    """The reference check can fail: a filter without antialiasing is far off on a noisy downscale."""
    import cv2

    img = noise(480, 640, 1)
    plain = cv2.resize(img, (160, 128), interpolation=cv2.INTER_LINEAR).astype(np.float64) / 255.0
    assert np.abs(plain - ref_resize01(img, (128, 160))).max() > 10 * ONE_LEVEL


def test_resize_handles_strided_and_readonly_inputs():
    img = noise(60, 80, 2)
    padded = np.zeros((60, 90, 3), np.uint8)
    padded[:, :80] = img
    view = padded[:, :80]
    view.setflags(write=False)
    for backend in BACKENDS:
        np.testing.assert_array_equal(resize_aa(view, (30, 40), backend), resize_aa(img, (30, 40), backend))
        np.testing.assert_array_equal(
            resize_aa(img[::-1], (30, 40), backend), resize_aa(np.ascontiguousarray(img[::-1]), (30, 40), backend)
        )


@pytest.mark.parametrize(
    "name,ref",
    [
        ("rot90", lambda a: np.rot90(a, 1)),
        ("rot180", lambda a: a[::-1, ::-1]),
        ("rot270", lambda a: np.rot90(a, -1)),
        ("flip_h", lambda a: a[:, ::-1]),
        ("flip_v", lambda a: a[::-1, :]),
        ("none", lambda a: a),
    ],
)
def test_transforms(name, ref):
    img = noise(5, 7, 3)
    np.testing.assert_array_equal(apply_transform(img, name), ref(img))


def place(canvas01, img01, y, x):
    canvas01[y : y + img01.shape[0], x : x + img01.shape[1]] = img01


def to_chw_pm1(canvas01) -> np.ndarray:
    return (canvas01.transpose(2, 0, 1) - 0.5) / 0.5


def cfg(**kw) -> PerceptionConfig:
    return PerceptionConfig.from_dict(kw)


@pytest.mark.parametrize("backend", BACKENDS)
def test_libero_horizontal_layout_with_rot180(backend):
    """LIBERO: two 256x256 renders rotated 180 deg, each resized to 224x224, side by side → 224x448."""
    c = cfg(
        cameras=[{"name": "agent", "transform": "rot180"}, {"name": "wrist", "transform": "rot180"}],
        layout="horizontal",
        tile_hw=[224, 224],
        output_hw=[224, 448],
        resize_backend=backend,
    )
    imgs = {"agent": scene(256, 256, 1), "wrist": noise(256, 256, 2)}
    frame = preprocess_frames(imgs, c)
    assert frame.dtype == np.float32 and frame.shape == (3, 224, 448)
    canvas = np.zeros((224, 448, 3))
    place(canvas, ref_resize01(imgs["agent"][::-1, ::-1], (224, 224)), 0, 0)
    place(canvas, ref_resize01(imgs["wrist"][::-1, ::-1], (224, 224)), 0, 224)
    assert np.abs(frame - to_chw_pm1(canvas)).max() <= 2 * (ONE_LEVEL + EPS)  # [-1, 1] spans twice [0, 1]
    assert frame.min() >= -1.0 and frame.max() <= 1.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_robotwin_layout(backend):
    c = cfg(cameras=[{"name": "head"}, {"name": "left"}, {"name": "right"}], layout="robotwin",
            resize_backend=backend)
    imgs = {"head": scene(480, 640, 3), "left": noise(480, 640, 4), "right": scene(240, 320, 5)}
    frame = preprocess_frames(imgs, c)
    assert frame.shape == (3, 384, 320) and c.out_hw == (384, 320)
    canvas = np.zeros((384, 320, 3))
    place(canvas, ref_resize01(imgs["head"], (256, 320)), 0, 0)
    place(canvas, ref_resize01(imgs["left"], (128, 160)), 256, 0)
    place(canvas, ref_resize01(imgs["right"], (128, 160)), 256, 160)
    assert np.abs(frame - to_chw_pm1(canvas)).max() <= 2 * (ONE_LEVEL + EPS)


def test_robotwin_training_pre_resize():
    """Official RoboTwin training: Resize([240, 320]) first, then the tile size (reference quirk 13), in float.
    We round to uint8 between the stages, so the bound is 1.5 levels (0.5 carried over + 1)."""
    c = cfg(cameras=[{"name": n, "pre_resize_hw": [240, 320]} for n in ("head", "left", "right")],
            layout="robotwin", resize_backend="torch")
    imgs = {n: scene(480, 640, i) for i, n in enumerate(("head", "left", "right"))}
    frame = preprocess_frames(imgs, c)
    head_ref = ref_resize01(ref_resize01(imgs["head"], (240, 320)), (256, 320))
    got = (frame[:, :256, :].transpose(1, 2, 0) + 1) / 2
    assert np.abs(got - head_ref).max() <= 1.5 * ONE_LEVEL + EPS
    direct = ref_resize01(imgs["head"], (256, 320))  # the pre-resize does change the result
    assert np.abs(got - direct).max() > 3 * ONE_LEVEL


def test_grid_layout_with_empty_cell():
    c = cfg(cameras=[{"name": "a"}, {"name": "b"}, {"name": "c"}], layout="grid", grid_rows=2, grid_cols=2,
            tile_hw=[32, 48], resize_backend="torch")
    imgs = {k: noise(64, 96, i) for i, k in enumerate("abc")}
    frame = preprocess_frames(imgs, c)
    assert frame.shape == (3, 64, 96)
    canvas = np.zeros((64, 96, 3))
    for k, (y, x) in zip("abc", [(0, 0), (0, 48), (32, 0)]):
        place(canvas, ref_resize01(imgs[k], (32, 48)), y, x)
    assert np.abs(frame - to_chw_pm1(canvas)).max() <= 2 * (ONE_LEVEL + EPS)
    assert (frame[:, 32:, 48:] == -1.0).all()  # the empty cell is black


def test_grid_shape_derivation():
    assert make_tiling_spec("grid", 5, tile_hw=(10, 20)).out_hw == (20, 60)  # 3 columns, 2 rows
    assert make_tiling_spec("grid", 3, tile_hw=(10, 20), grid_rows=1).out_hw == (10, 60)
    assert make_tiling_spec("grid", 3, tile_hw=(10, 20), grid_cols=1).out_hw == (30, 20)
    with pytest.raises(ValueError):
        make_tiling_spec("grid", 5, grid_rows=2, grid_cols=2)


def test_normalisation_endpoints():
    c = cfg(cameras=[{"name": "a"}], tile_hw=[4, 4])
    white = np.full((4, 4, 3), 255, np.uint8)
    black = np.zeros((4, 4, 3), np.uint8)
    assert (preprocess_frames({"a": white}, c) == 1.0).all()
    assert (preprocess_frames({"a": black}, c) == -1.0).all()
    mid = preprocess_frames({"a": np.full((4, 4, 3), 128, np.uint8)}, c)
    np.testing.assert_allclose(mid, (128 / 255 - 0.5) / 0.5, atol=1e-6)


def test_channel_order_is_rgb_planes():
    c = cfg(cameras=[{"name": "a"}], tile_hw=[2, 2])
    img = np.zeros((2, 2, 3), np.uint8)
    img[..., 0] = 255  # pure red
    f = preprocess_frames({"a": img}, c)
    assert (f[0] == 1).all() and (f[1] == -1).all() and (f[2] == -1).all()


def test_missing_camera_image_is_an_error():
    c = cfg(cameras=[{"name": "a"}, {"name": "b"}], tile_hw=[4, 4])
    with pytest.raises(KeyError):
        preprocess_frames({"a": np.zeros((4, 4, 3), np.uint8)}, c)
