#!/usr/bin/env python3
"""How far apart are the preprocessing choices? uint8 levels (0..255) on fixed images.

Compares, per camera image of 480x640 (the RoboTwin camera size the official evaluation resizes from):

* ``deploy_vs_training``: ``resize: deploy`` (straight into the tile) against ``resize: training`` (every camera
  to 240x320 first, then the tile) -- the choice ``resize:`` offers;
* ``deploy_vs_official_eval``: our ``deploy`` tiles against PIL ``Image.BILINEAR`` straight into the tiles (what
  the official ``deploy_policy.py`` feeds the model);
* ``training_vs_official_training``: our ``training`` tiles against torchvision's float pipeline (ToTensor,
  Resize to 240x320, Resize to the tile, no rounding in between; only computed where torch imports).

and for LIBERO (``libero_crop_vs_official_eval``): two 256x256 renders through ``transform: rot180`` +
``fit: crop`` into 224x448 against the official evaluation's flip + PIL aspect-keeping resize + centre crop.

Images: ``scene`` (bench_perception's camera-like image: shading + hard-edged blocks + sensor noise, seeds
0..8, deterministic), ``noise`` (uniform, worst case for any filter difference) and, where matplotlib is
installed, ``photo``: three 384x512 (3:4, like 480x640) crops of its bundled sample photograph
``grace_hopper.jpg`` (a natural image). Prints the mean / max absolute difference over the tiled frame;
``--json`` prints one JSON object.

    python benchmarks/bench_resize_modes.py [--json] [--backend auto|torch|numpy]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_perception import scene  # noqa: E402  (the same camera-like test image as the perception benchmark)

from fastwam_ros.perception import PerceptionConfig  # noqa: E402
from fastwam_ros.perception.pipeline import tile_frames  # noqa: E402

H, W = 480, 640
CAMS = ("head", "left_wrist", "right_wrist")
TILES = {"head": (0, 0, 256, 320), "left_wrist": (256, 0, 128, 160), "right_wrist": (256, 160, 128, 160)}


def noise(seed: int) -> np.ndarray:
    return np.random.default_rng(100 + seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def photo_crops() -> list[np.ndarray] | None:
    try:
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as f:
            img = np.asarray(Image.open(f).convert("RGB"))  # 600 x 512
    except Exception:  # noqa: BLE001 - no matplotlib / no sample data: skip the photo rows
        return None
    return [np.array(img[y : y + 384, :512]) for y in (0, 108, 216)]


def config(resize: str, backend: str) -> PerceptionConfig:
    return PerceptionConfig.from_dict({
        "cameras": [{"name": n, "pre_resize_hw": [240, 320]} for n in CAMS], "layout": "robotwin",
        "top_hw": [256, 320], "bottom_tile_hw": [128, 160], "resize": resize, "resize_backend": backend,
    })


def official_eval(images: dict) -> np.ndarray:
    out = np.zeros((384, 320, 3), np.uint8)
    for n, (y, x, h, w) in TILES.items():
        out[y : y + h, x : x + w] = np.asarray(Image.fromarray(images[n]).resize((w, h), Image.BILINEAR))
    return out


def official_training(images: dict) -> np.ndarray | None:
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    out = np.zeros((384, 320, 3), np.float64)
    for n, (y, x, h, w) in TILES.items():
        t = torch.from_numpy(images[n]).permute(2, 0, 1)[None].double() / 255.0
        for hw in ((240, 320), (h, w)):
            t = F.interpolate(t, size=hw, mode="bilinear", antialias=True, align_corners=False)
        out[y : y + h, x : x + w] = t[0].permute(1, 2, 0).numpy() * 255.0
    return out


def libero(images: dict, backend: str) -> tuple[np.ndarray, np.ndarray]:
    cfg = PerceptionConfig.from_dict({
        "cameras": [{"name": n, "transform": "rot180"} for n in images], "layout": "horizontal",
        "tile_hw": [224, 224], "fit": "crop", "resize_backend": backend,
    })
    ref = []
    for img in images.values():
        img = np.ascontiguousarray(img[::-1, ::-1])
        s = max(224 / img.shape[1], 224 / img.shape[0])
        rw, rh = round(img.shape[1] * s), round(img.shape[0] * s)
        x0, y0 = (rw - 224) // 2, (rh - 224) // 2
        big = Image.fromarray(img).resize((rw, rh), Image.BILINEAR)
        ref.append(np.asarray(big.crop((x0, y0, x0 + 224, y0 + 224))))
    return tile_frames(images, cfg), np.concatenate(ref, axis=1)


def stats(a: np.ndarray, b: np.ndarray) -> dict:
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return {"mean_levels": round(float(d.mean()), 3), "max_levels": round(float(d.max()), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--backend", default="auto", choices=("auto", "torch", "numpy"))
    args = ap.parse_args()
    deploy, training = config("deploy", args.backend), config("training", args.backend)
    results = {}
    photos = photo_crops()
    sets = [(f"{kind}{seed}", [make(seed * 3 + i) for i in range(3)]) for kind, make in (("scene", scene),
                                                                                          ("noise", noise))
            for seed in range(3)]
    if photos is not None:
        sets.append(("photo", photos))
    for name, imgs in sets:
        images = dict(zip(CAMS, imgs))
        dep, tr = tile_frames(images, deploy), tile_frames(images, training)
        row = {"deploy_vs_training": stats(dep, tr), "deploy_vs_official_eval": stats(dep, official_eval(images))}
        ref = official_training(images)
        if ref is not None:
            row["training_vs_official_training"] = stats(tr, ref)
        crops = {n: imgs[i][:256, :256].copy() for i, n in enumerate(("agentview", "wrist"))}
        row["libero_crop_vs_official_eval"] = stats(*libero(crops, args.backend))
        results[name] = row
    if args.json:
        print(json.dumps({"backend": args.backend, "image_hw": [H, W], "results": results}))
        return
    print(f"RoboTwin tiles from {H}x{W} cameras, LIBERO from 256x256, backend {args.backend}: "
          "|difference| in uint8 levels (mean / max)")
    for name, row in results.items():
        print(f"  {name}")
        for k, v in row.items():
            print(f"    {k:32s} {v['mean_levels']:.3f} / {v['max_levels']:.1f}")


if __name__ == "__main__":
    main()
