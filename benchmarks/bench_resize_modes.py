#!/usr/bin/env python3
"""How far apart are the RoboTwin preprocessing choices? uint8 levels (0..255) on fixed images.

Compares, per camera image of 480x640 (the RoboTwin camera size the official evaluation resizes from):

* ``deploy_vs_training``: ``resize: deploy`` (straight into the tile) against ``resize: training`` (every camera
  to 240x320 first, then the tile) -- the choice ``resize:`` offers;
* ``deploy_vs_official_eval``: our ``deploy`` tiles against PIL ``Image.BILINEAR`` straight into the tiles (what
  the official ``deploy_policy.py`` feeds the model);
* ``training_vs_official_training``: our ``training`` tiles against torchvision's float pipeline (ToTensor,
  Resize to 240x320, Resize to the tile, no rounding in between; only computed where torch imports).

Images: ``scene`` (smooth shading + edges + sensor noise, seeds 0..2, deterministic) and ``noise`` (uniform,
worst case for any filter difference). Prints mean / max absolute difference over the 384x320x3 tiled frame;
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

from fastwam_ros.perception import PerceptionConfig  # noqa: E402
from fastwam_ros.perception.pipeline import tile_frames  # noqa: E402

H, W = 480, 640
CAMS = ("head", "left_wrist", "right_wrist")
TILES = {"head": (0, 0, 256, 320), "left_wrist": (256, 0, 128, 160), "right_wrist": (256, 160, 128, 160)}


def scene(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W] / W
    img = np.stack([np.sin(6 * x + seed) * 80 + 120, np.cos(4 * y) * 70 + 110, (x + y) * 90 + 30], axis=2)
    for _ in range(12):
        y0, x0 = rng.integers(0, H - 60), rng.integers(0, W - 80)
        img[y0 : y0 + rng.integers(10, 60), x0 : x0 + rng.integers(10, 80)] = rng.integers(0, 256, 3)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


def noise(seed: int) -> np.ndarray:
    return np.random.default_rng(100 + seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


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
    for kind, make in (("scene", scene), ("noise", noise)):
        for seed in range(3):
            images = {n: make(seed * 3 + i) for i, n in enumerate(CAMS)}
            dep, tr = tile_frames(images, deploy), tile_frames(images, training)
            row = {"deploy_vs_training": stats(dep, tr), "deploy_vs_official_eval": stats(dep, official_eval(images))}
            ref = official_training(images)
            if ref is not None:
                row["training_vs_official_training"] = stats(tr, ref)
            results[f"{kind}{seed}"] = row
    if args.json:
        print(json.dumps({"backend": args.backend, "image_hw": [H, W], "results": results}))
        return
    print(f"RoboTwin tiles from {H}x{W} cameras, backend {args.backend}: |difference| in uint8 levels (mean / max)")
    for name, row in results.items():
        print(f"  {name:7s} " + "  ".join(f"{k}: {v['mean_levels']:.3f} / {v['max_levels']:.1f}" for k, v in row.items()))


if __name__ == "__main__":
    main()
