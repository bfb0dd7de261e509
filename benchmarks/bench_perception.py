#!/usr/bin/env python3
"""Observation pipeline latency on one CPU core: decode + sync + tile + normalise for 3 cameras of 640x480.

For each encoding (rgb8, bgr8, jpeg) every iteration feeds three fresh camera messages and a joint state into an
``ObservationPipeline`` (RoboTwin layout → 3×384×320 float32) and polls one observation; the time of that whole
step is recorded (wall clock, and the thread's CPU time, which is what one core spends even when other
processes compete for it). Prints milliseconds per observation (median, p95); ``--json`` prints one JSON object.

    python benchmarks/bench_perception.py --json [--iters 200] [--backend auto|torch|numpy]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastwam_ros.perception import ObservationPipeline, PerceptionConfig  # noqa: E402

H, W = 480, 640
CAMS = ("head", "left_wrist", "right_wrist")
JOINTS = [f"j{i}" for i in range(14)]


def scene(seed: int) -> np.ndarray:
    """A camera-like image (smooth shading, edges, sensor noise) so JPEG sizes are realistic."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W] / W
    img = np.stack([np.sin(6 * x + seed) * 80 + 120, np.cos(4 * y) * 70 + 110, (x + y) * 90 + 30], axis=2)
    for _ in range(12):
        y0, x0 = rng.integers(0, H - 60), rng.integers(0, W - 80)
        img[y0 : y0 + 60, x0 : x0 + 80] = rng.integers(0, 256, 3)
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def make_msg(img: np.ndarray, encoding: str):
    if encoding == "rgb8":
        return SimpleNamespace(height=H, width=W, encoding="rgb8", is_bigendian=0, step=W * 3, data=img.tobytes())
    if encoding == "bgr8":
        data = np.ascontiguousarray(img[:, :, ::-1]).tobytes()
        return SimpleNamespace(height=H, width=W, encoding="bgr8", is_bigendian=0, step=W * 3, data=data)
    if encoding == "jpeg":
        ok, enc = cv2.imencode(".jpg", np.ascontiguousarray(img[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 90])
        return SimpleNamespace(format="rgb8; jpeg compressed bgr8", data=enc.tobytes())
    raise ValueError(encoding)


def run(encoding: str, iters: int, backend: str, warmup: int = 10) -> dict:
    cfg = PerceptionConfig.from_dict({
        "cameras": [{"name": c, "transport": "compressed" if encoding == "jpeg" else "raw"} for c in CAMS],
        "layout": "robotwin",
        "joint_names": JOINTS,
        "resize_backend": backend,
        "use_cv_bridge": False,
    })
    pipe = ObservationPipeline(cfg)
    msgs = {c: make_msg(scene(i), encoding) for i, c in enumerate(CAMS)}
    positions = np.linspace(-1, 1, len(JOINTS))
    times, cpu_times = [], []
    for k in range(warmup + iters):
        t_s = 100.0 + k / 30.0  # simulated 30 Hz ticks
        c0 = time.thread_time()
        t0 = time.perf_counter()
        pipe.add_joint_state(t_s - 0.002, JOINTS, positions)
        for c in CAMS:
            pipe.add_image(c, msgs[c], stamp_s=t_s)
        obs = pipe.poll(t_s + 0.01)
        dt = time.perf_counter() - t0
        dc = time.thread_time() - c0
        if obs is None or obs.frame.shape != (3, 384, 320):
            raise RuntimeError(f"no observation at iteration {k}: {pipe.stats()}")
        if k >= warmup:
            times.append(dt * 1e3)
            cpu_times.append(dc * 1e3)
    a, c = np.asarray(times), np.asarray(cpu_times)
    out = {
        "median_ms": round(float(np.median(a)), 3),  # wall clock
        "p95_ms": round(float(np.percentile(a, 95)), 3),
        "min_ms": round(float(a.min()), 3),
        # CPU time of this thread: the cost on one core, unaffected by other processes competing for the core
        "cpu_median_ms": round(float(np.median(c)), 3),
        "cpu_p95_ms": round(float(np.percentile(c, 95)), 3),
        "iters": iters,
    }
    if encoding == "jpeg":
        out["jpeg_bytes_per_camera"] = int(np.mean([len(m.data) for m in msgs.values()]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--backend", default="auto", choices=["auto", "torch", "numpy"], help="resize backend")
    ap.add_argument("--encodings", default="rgb8,bgr8,jpeg")
    args = ap.parse_args(argv)

    cv2.setNumThreads(1)
    torch_version = None
    try:
        import torch

        torch.set_num_threads(1)
        torch_version = torch.__version__
    except ImportError:
        pass
    results = {e: run(e, args.iters, args.backend) for e in args.encodings.split(",")}
    report = {
        "benchmark": "perception: decode + sync + tile (robotwin 384x320) + normalise, 3 cameras 640x480",
        "threads": 1,
        "resize_backend": args.backend,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "opencv": cv2.__version__,
            "torch": torch_version,
        },
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for enc, r in results.items():
            print(
                f"{enc:5s}  median {r['median_ms']:7.3f} ms   p95 {r['p95_ms']:7.3f} ms   per observation"
                f"   (CPU median {r['cpu_median_ms']:.3f} ms, p95 {r['cpu_p95_ms']:.3f} ms)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
