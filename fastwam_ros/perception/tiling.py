"""Resizing, per-camera transforms, the official tiling layouts, and normalisation to [-1, 1].

Resize filter: bilinear **with antialias** (a triangle filter whose support widens with the downscale factor,
pixel centres at +0.5), i.e. what ``torchvision.transforms.Resize`` does on tensors and what PIL's
``Image.BILINEAR`` does. This is the filter of the official Fast-WAM preprocessing (reference §3.2, §5.1, §5.3).

Backends (all produce uint8 tiles):

* ``"torch"``: ``torch.nn.functional.interpolate(uint8, mode="bilinear", antialias=True)`` — the SIMD uint8
  kernel that torchvision's Resize uses on uint8 tensors (ported from Pillow-SIMD). Fastest on CPU. Where no axis
  shrinks (the upscale after a reduced JPEG decode or box reduction, e.g. 240×320 → 256×320) the antialiased
  filter *is* plain bilinear, and OpenCV's fixed-point ``INTER_LINEAR`` computes it instead (same filter, a
  third of the cost; also within one level of the float reference, tested).
* ``"numpy"``: the same filter computed here in float32 (separable gather of precomputed weights), then rounded.
  No torch needed; a few ms per camera.
* ``"auto"``: ``"torch"`` if torch imports, else ``"numpy"``.

Each backend is within one uint8 level (1/255 of the [0, 1] range) of the float reference
``interpolate(float, antialias=True)``; the two backends can differ by one level on some pixels, so use the same
backend for training and deployment (``auto`` does, where torch is installed on both sides).

Layouts (H × W of the output frame; cameras in configured order):

* ``horizontal``: every camera resized to ``tile_hw`` and placed side by side (LIBERO: 2 × 224×224 → 224×448).
* ``robotwin``: camera 0 resized to ``top_hw`` (256×320) on top of [camera 1 | camera 2] each resized to
  ``bottom_tile_hw`` (128×160) → 384×320.
* ``grid``: ``grid_rows`` × ``grid_cols`` cells of ``tile_hw``, filled row-major; empty cells are black
  (→ -1 after normalisation).

Transforms (applied to the decoded camera image *before* resizing, as LIBERO rotates its renders):
``none``, ``rot90`` (90° counter-clockwise, like ``np.rot90(img, 1)``), ``rot180``, ``rot270`` (90° clockwise),
``flip_h`` (mirror left↔right), ``flip_v`` (mirror top↔bottom).

Fit (how a camera image is brought to its tile, ``FITS``): ``stretch`` resizes straight to the tile size (the
aspect ratio may change; RoboTwin); ``crop`` keeps the aspect ratio — scale s = max(tile_w / w, tile_h / h), resize
to (round(w·s), round(h·s)) with Python's round, then cut the centred tile (top-left offset floor((size − tile) / 2)
per axis) — the official LIBERO evaluation's ``_center_crop_resize`` (a plain resize when the aspect ratios agree).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

__all__ = [
    "FITS",
    "LAYOUTS",
    "TRANSFORMS",
    "TileSlot",
    "TilingSpec",
    "apply_transform",
    "make_tiling_spec",
    "normalize_frame",
    "normalize_planar",
    "resize_aa",
    "resize_backend_available",
    "tile_images",
    "tile_planar",
]

LAYOUTS = ("horizontal", "robotwin", "grid")
TRANSFORMS = ("none", "rot90", "rot180", "rot270", "flip_h", "flip_v")
BACKENDS = ("auto", "torch", "numpy")
FITS = ("stretch", "crop")


# ----------------------------------------------------------------------------------------------------------
# transforms
# ----------------------------------------------------------------------------------------------------------
def apply_transform(img: np.ndarray, transform: str) -> np.ndarray:
    """Rotate/flip an H×W×C image; returns a C-contiguous array (the input itself for ``none``)."""
    if transform in (None, "none"):
        return img
    if transform == "rot90":
        return cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    if transform == "rot180":
        return cv2.rotate(img, cv2.ROTATE_180)
    if transform == "rot270":
        return cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    if transform == "flip_h":
        return cv2.flip(img, 1)
    if transform == "flip_v":
        return cv2.flip(img, 0)
    raise ValueError(f"unknown transform {transform!r}; expected one of {TRANSFORMS}")


def transformed_hw(hw: tuple[int, int], transform: str) -> tuple[int, int]:
    """Size (H, W) of an image of size ``hw`` after ``transform``."""
    return (hw[1], hw[0]) if transform in ("rot90", "rot270") else (hw[0], hw[1])


# ----------------------------------------------------------------------------------------------------------
# antialiased bilinear resize
# ----------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=128)
def _aa_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices [out, K] and weights [out, K] (float32, rows sum to 1) of the antialiased triangle filter."""
    scale = in_size / out_size
    stretch = max(scale, 1.0)  # filter support widens when downscaling
    support = 1.0 * stretch  # bilinear: triangle of half-width 1 (in output pixels)
    rows = []
    for i in range(out_size):
        center = (i + 0.5) * scale  # in input pixel units, pixel j covers [j, j+1)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        j = np.arange(lo, hi)
        w = np.clip(1.0 - np.abs((j + 0.5 - center) / stretch), 0.0, None)
        total = w.sum()
        if total <= 0:  # pragma: no cover - cannot happen for in_size, out_size >= 1
            j, w, total = np.array([min(int(center), in_size - 1)]), np.ones(1), 1.0
        rows.append((j, w / total))
    k = max(len(j) for j, _ in rows)
    idx = np.zeros((out_size, k), np.intp)
    wts = np.zeros((out_size, k), np.float32)
    for i, (j, w) in enumerate(rows):
        idx[i, : len(j)] = j
        idx[i, len(j) :] = j[-1]
        wts[i, : len(j)] = w
    idx.setflags(write=False)
    wts.setflags(write=False)
    return idx, wts


def _resize_numpy(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    h_out, w_out = hw
    x = img.astype(np.float32)
    if x.shape[1] != w_out:
        idx, wts = _aa_weights(x.shape[1], w_out)
        x = np.einsum("hokc,ok->hoc", x[:, idx, :], wts, optimize=False)
    if x.shape[0] != h_out:
        idx, wts = _aa_weights(x.shape[0], h_out)
        x = np.einsum("okwc,ok->owc", x[idx, :, :], wts, optimize=False)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


_TORCH = None


def _torch():
    global _TORCH
    if _TORCH is None:
        try:
            import torch  # noqa: PLC0415 - optional
            import torch.nn.functional as functional  # noqa: PLC0415

            _TORCH = (torch, functional)
        except Exception:  # noqa: BLE001 - any import failure means "not available"
            _TORCH = False
    return _TORCH


def resize_backend_available(backend: str) -> bool:
    if backend in ("numpy", "auto"):
        return True
    if backend == "torch":
        return bool(_torch())
    return False


def _resize_torch(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    torch, functional = _torch()
    if any(s < 0 for s in img.strides):
        img = np.ascontiguousarray(img)
    with warnings.catch_warnings():  # read-only zero-copy views (rgb8 messages) are fine: we never write
        warnings.simplefilter("ignore", UserWarning)
        t = torch.from_numpy(img)
    x = t.permute(2, 0, 1).unsqueeze(0)  # [1, C, H, W], channels-last strides
    y = functional.interpolate(x, size=tuple(hw), mode="bilinear", antialias=True, align_corners=False)
    return y[0].permute(1, 2, 0).numpy()


def _upscale_only(src_hw: tuple[int, int], hw: tuple[int, int]) -> bool:
    """True when no axis shrinks: the antialiased filter is then plain bilinear (its support widens only when
    downscaling), which OpenCV's ``INTER_LINEAR`` computes (half-pixel centres, edge clamped) several times
    faster than torch's antialias kernel on small tiles."""
    return hw[0] >= src_hw[0] and hw[1] >= src_hw[1]


def _resize_linear(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    out = cv2.resize(img, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
    return out[:, :, None] if out.ndim == 2 else out


def resize_aa(img: np.ndarray, hw: tuple[int, int], backend: str = "auto") -> np.ndarray:
    """Antialiased bilinear resize of a uint8 H×W×C image to ``hw`` = (H, W); uint8 output.

    A same-size resize returns the input unchanged (the filter is the identity there).
    """
    if img.ndim != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 HxWxC image, got {img.dtype} {img.shape}")
    hw = (int(hw[0]), int(hw[1]))
    if hw[0] < 1 or hw[1] < 1:
        raise ValueError(f"bad output size {hw}")
    if img.shape[:2] == hw:
        return img
    if backend == "auto":
        backend = "torch" if _torch() else "numpy"
    if backend == "torch":
        if _upscale_only(img.shape[:2], hw):
            return _resize_linear(img, hw)
        if not _torch():
            raise RuntimeError("resize backend 'torch' requested but torch does not import")
        return _resize_torch(img, hw)
    if backend == "numpy":
        return _resize_numpy(img, hw)
    raise ValueError(f"unknown resize backend {backend!r}; expected one of {BACKENDS}")


def crop_geometry(src_hw: tuple[int, int], hw: tuple[int, int]) -> tuple[tuple[int, int], int, int]:
    """``fit: crop``: the covering resize size (H, W) of a ``src_hw`` image for a ``hw`` tile and the top-left
    (y0, x0) of the centred cut (module docstring)."""
    (th, tw), (sh, sw) = hw, src_hw
    s = max(tw / sw, th / sh)
    rh, rw = max(round(sh * s), th), max(round(sw * s), tw)
    return (rh, rw), (rh - th) // 2, (rw - tw) // 2


def fit_to_tile(img: np.ndarray, hw: tuple[int, int], fit: str = "stretch", backend: str = "auto") -> np.ndarray:
    """Resize a uint8 H×W×C image into a tile of ``hw`` = (H, W) per ``fit`` (module docstring); uint8 [H, W, C]."""
    if fit == "stretch":
        return resize_aa(img, hw, backend)
    if fit != "crop":
        raise ValueError(f"unknown fit {fit!r}; expected one of {FITS}")
    (rh, rw), y0, x0 = crop_geometry(img.shape[:2], hw)
    return resize_aa(img, (rh, rw), backend)[y0 : y0 + hw[0], x0 : x0 + hw[1]]


# ----------------------------------------------------------------------------------------------------------
# layouts
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TileSlot:
    """Where camera ``camera_index`` goes in the output frame: top-left (y, x) and size (h, w), pixels."""

    camera_index: int
    y: int
    x: int
    h: int
    w: int


@dataclass(frozen=True)
class TilingSpec:
    layout: str
    out_hw: tuple[int, int]
    slots: tuple[TileSlot, ...]


def make_tiling_spec(
    layout: str,
    n_cameras: int,
    *,
    tile_hw: tuple[int, int] = (224, 224),
    top_hw: tuple[int, int] = (256, 320),
    bottom_tile_hw: tuple[int, int] = (128, 160),
    grid_rows: int | None = None,
    grid_cols: int | None = None,
) -> TilingSpec:
    """The geometry of a layout. Raises ValueError for impossible combinations."""
    if n_cameras < 1:
        raise ValueError("need at least one camera")
    if layout == "horizontal":
        th, tw = tile_hw
        slots = tuple(TileSlot(i, 0, i * tw, th, tw) for i in range(n_cameras))
        return TilingSpec(layout, (th, n_cameras * tw), slots)
    if layout == "robotwin":
        if n_cameras != 3:
            raise ValueError(f"layout 'robotwin' needs exactly 3 cameras (head, left, right), got {n_cameras}")
        (hh, hw_), (bh, bw) = top_hw, bottom_tile_hw
        if 2 * bw != hw_:
            raise ValueError(f"robotwin: 2 x bottom tile width ({bw}) must equal the top width ({hw_})")
        slots = (TileSlot(0, 0, 0, hh, hw_), TileSlot(1, hh, 0, bh, bw), TileSlot(2, hh, bw, bh, bw))
        return TilingSpec(layout, (hh + bh, hw_), slots)
    if layout == "grid":
        rows, cols = grid_rows, grid_cols
        if rows is None and cols is None:
            cols = int(np.ceil(np.sqrt(n_cameras)))
        if rows is None:
            rows = -(-n_cameras // cols)
        if cols is None:
            cols = -(-n_cameras // rows)
        if rows < 1 or cols < 1 or rows * cols < n_cameras:
            raise ValueError(f"grid {rows}x{cols} cannot hold {n_cameras} cameras")
        th, tw = tile_hw
        slots = tuple(TileSlot(i, (i // cols) * th, (i % cols) * tw, th, tw) for i in range(n_cameras))
        return TilingSpec(layout, (rows * th, cols * tw), slots)
    raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")


_SCALE = np.float32(2.0 / 255.0)
RGB = (0, 1, 2)  # channel order: output channel k comes from input channel order[k]
# x * (2/255) - 1 in float32 for every uint8 x: a gather through it gives exactly the numbers of the arithmetic
_NORM_LUT = np.arange(256, dtype=np.float32) * _SCALE - np.float32(1.0)
_NORM_LUT.setflags(write=False)
# (channel order, channels) -> the OpenCV conversion to RGB doing that reorder in one SIMD pass (None: as is)
_REORDER = {(RGB, 3): None, ((2, 1, 0), 3): cv2.COLOR_BGR2RGB, (RGB, 4): cv2.COLOR_RGBA2RGB,
            ((2, 1, 0), 4): cv2.COLOR_BGRA2RGB, ((0, 0, 0), 1): cv2.COLOR_GRAY2RGB}


def _cv_into(dst: np.ndarray, result: np.ndarray) -> None:
    """OpenCV writes into a ``dst=`` view it accepts and returns it; should it allocate instead, copy."""
    if result is not dst:
        dst[...] = result.reshape(dst.shape)


def _place(tile: np.ndarray, order: tuple[int, int, int], dst: np.ndarray) -> None:
    """Copy an H×W×C uint8 tile into the H×W×3 RGB view ``dst``, output channel k ← tile channel order[k]."""
    code = _REORDER.get((order, tile.shape[2]), -1)
    if code is None:
        dst[...] = tile
    elif code != -1:
        _cv_into(dst, cv2.cvtColor(tile if tile.shape[2] > 1 else tile[:, :, 0], code, dst=dst))
    else:
        for k in range(3):
            dst[:, :, k] = tile[:, :, order[k]]


def _resize_into(img: np.ndarray, hw: tuple[int, int], backend: str, order: tuple[int, int, int],
                 dst: np.ndarray) -> None:
    """Antialiased resize of a uint8 H×W×C image to ``hw``, written as RGB into the H×W×3 view ``dst``
    (``backend`` already resolved: ``torch`` or ``numpy``)."""
    if backend == "torch" and img.shape[:2] != hw and _upscale_only(img.shape[:2], hw):
        if img.shape[2] == 3 and order == RGB:  # OpenCV's bilinear straight into the tile's slice of the frame
            _cv_into(dst, cv2.resize(img, (hw[1], hw[0]), dst=dst, interpolation=cv2.INTER_LINEAR))
            return
        tile = _resize_linear(img, hw)
    else:
        tile = resize_aa(img, hw, backend)
    _place(tile, order, dst)


def tile_planar(
    images: list[np.ndarray],
    spec: TilingSpec,
    *,
    transforms: list[str] | None = None,
    pre_resize_hw: list[tuple[int, int] | None] | None = None,
    backend: str = "auto",
    orders: list[tuple[int, int, int]] | None = None,
    reduce: list[int] | None = None,
    fit: str = "stretch",
    out: np.ndarray | None = None,
    normalize: bool = False,
) -> np.ndarray:
    """Transform, resize and place uint8 images into one planar uint8 [3, H, W] frame per ``spec``; with
    ``normalize`` a float32 [3, H, W] frame in [-1, 1] instead, the same numbers as :func:`normalize_planar` of the
    uint8 frame.

    The tiles are written into one interleaved uint8 H×W×3 frame (OpenCV resizes straight into each tile's slice
    of it), so the uint8 result is the planar *view* ``frame.transpose(2, 0, 1)`` of that C-contiguous frame (its
    ``.transpose(1, 2, 0)`` is the RGB image, no copy); ``normalize`` then maps it to planar float32 in one
    pass (:func:`normalize_planar`). With ``out`` (uint8 or float32 [3, H, W]) the result is copied there.

    ``reduce[i]`` (1, 2, 4 or 8; default 1) first shrinks camera i by that integer factor with an exact box filter
    (2×2 averages, OpenCV ``INTER_AREA``, halving while both sides are even): the raw-image counterpart of a
    JPEG's DCT-scaled decode, chosen by :func:`~fastwam_ros.perception.decode.decode_scale_for`.

    Each image is H×W×C (C = 1, 3 or 4); ``orders[i]`` (default RGB) says which of its channels feed the output's
    R, G and B, so BGR, BGRA and mono images are resized *as they arrived* and their channels reordered on the
    small tile (channel reorder and replication commute exactly with a per-channel resize). ``pre_resize_hw[i]``
    (optional) resizes camera i to that size first (the official RoboTwin training path resizes to 240×320 before
    the tile size; reference §3.2 and quirk 13). ``fit``: see :func:`fit_to_tile`.
    """
    if fit not in FITS:
        raise ValueError(f"unknown fit {fit!r}; expected one of {FITS}")
    if len(images) != len(spec.slots):
        raise ValueError(f"layout {spec.layout!r} expects {len(spec.slots)} images, got {len(images)}")
    if backend == "auto":
        backend = "torch" if _torch() else "numpy"
    # every cell of robotwin/horizontal is a tile; the grid's empty cells stay black (-1 after normalisation)
    frame = (np.zeros if spec.layout == "grid" else np.empty)((*spec.out_hw, 3), np.uint8)
    for slot in spec.slots:
        i = slot.camera_index
        img = images[i]
        order = RGB if orders is None else tuple(orders[i])
        if (not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3
                or img.shape[2] not in (1, 3, 4) or max(order) >= img.shape[2]):
            raise ValueError(f"camera {i}: expected uint8 HxWx3 RGB, got "
                             f"{getattr(img, 'dtype', type(img).__name__)} {getattr(img, 'shape', '')}")
        d = 1 if reduce is None else int(reduce[i])
        while d > 1 and img.shape[0] % 2 == 0 and img.shape[1] % 2 == 0:
            img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
            img = img[:, :, None] if img.ndim == 2 else img
            d //= 2
        if transforms is not None and transforms[i] not in (None, "none"):
            img = apply_transform(img, transforms[i])
            if img.ndim == 2:  # OpenCV drops a single channel axis
                img = img[:, :, None]
        if pre_resize_hw is not None and pre_resize_hw[i] is not None:
            img = resize_aa(img, pre_resize_hw[i], backend)
        dst = frame[slot.y : slot.y + slot.h, slot.x : slot.x + slot.w]
        if fit == "crop":
            _place(fit_to_tile(img, (slot.h, slot.w), "crop", backend), order, dst)
        else:
            _resize_into(img, dst.shape[:2], backend, order, dst)
    planes = frame.transpose(2, 0, 1)
    result = normalize_planar(planes) if normalize else planes
    if out is None:
        return result
    out[...] = result
    return out


def tile_images(
    images: list[np.ndarray],
    spec: TilingSpec,
    *,
    transforms: list[str] | None = None,
    pre_resize_hw: list[tuple[int, int] | None] | None = None,
    backend: str = "auto",
    fit: str = "stretch",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Transform, resize and place RGB uint8 images into one uint8 [H, W, 3] frame per ``spec`` (the interleaved
    form of :func:`tile_planar`; written into ``out`` when given). ``pre_resize_hw[i]`` (optional) resizes camera
    i to that size first (the official RoboTwin training path resizes to 240×320 before the tile size; reference
    §3.2 and quirk 13). ``fit``: see :func:`fit_to_tile`."""
    for i, img in enumerate(images):
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"camera {i}: expected uint8 HxWx3 RGB, got "
                             f"{getattr(img, 'dtype', type(img).__name__)} {getattr(img, 'shape', '')}")
    planar = tile_planar(images, spec, transforms=transforms, pre_resize_hw=pre_resize_hw, backend=backend, fit=fit)
    if out is None:
        return np.ascontiguousarray(planar.transpose(1, 2, 0))
    out[...] = planar.transpose(1, 2, 0)
    return out


def normalize_planar(planes: np.ndarray) -> np.ndarray:
    """uint8 [3, H, W] → float32 [3, H, W] in [-1, 1], ``x * (2/255) − 1`` in float32 (the same numbers as
    (x/255 − 0.5)/0.5 up to float32 rounding), C-contiguous. One table look-up per plane (``cv2.LUT`` through
    the 256 precomputed float32 values, bit-identical to the arithmetic); a planar view of an interleaved H×W×3
    frame (what :func:`tile_planar` returns) is first split into its planes by OpenCV."""
    if planes.ndim != 3 or planes.dtype != np.uint8:
        raise ValueError(f"expected uint8 [C, H, W], got {planes.dtype} {planes.shape}")
    c, h, w = planes.shape
    out = np.empty((c, h, w), np.float32)
    hwc = planes.transpose(1, 2, 0)
    if hwc.flags.c_contiguous and 1 < c <= 4:  # split into contiguous planes (OpenCV fills a planar buffer)
        split = np.empty((c, h, w), np.uint8)
        got = cv2.split(hwc, list(split))  # new array objects over ``split``'s memory (no copy)
        if got[0].__array_interface__["data"][0] != split.__array_interface__["data"][0]:  # pragma: no cover
            split = np.stack(got)  # OpenCV allocated instead
    else:
        split = np.ascontiguousarray(planes)
    flat = out.reshape(c * h, w)
    _cv_into(flat, cv2.LUT(split.reshape(c * h, w), _NORM_LUT, dst=flat))
    return out


def normalize_frame(frame: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] → float32 [3, H, W] in [-1, 1] (x/255 − 0.5)/0.5, C-contiguous."""
    return normalize_planar(frame.transpose(2, 0, 1))
