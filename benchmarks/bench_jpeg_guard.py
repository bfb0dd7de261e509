#!/usr/bin/env python3
"""The JPEG seam guard (fastwam_ros/perception/jpeg_guard.py) on realistic streams: false refusals, detection of
silently corrupted frames, cost per frame, and why a temporal check was not used.

Good frames (must give 0 false refusals; a picture whose scene edge is drawn exactly as a drift's staircase on
the MCU grid is listed apart as adversarial: it is refused, by design): the simulator's three cameras (480x640) over a scripted fold, the
repo's recording (data/sample_episode: as recorded, and upscaled to 480x640 and re-encoded), the real
``ros2 bag record`` recording if given (``--recording``, e.g. ../shared/recordings/sample_episode) and synthetic
noisy / high-frequency / grid-aligned pictures; JPEG qualities 50-95 (OpenCV 4:2:0 and simplejpeg 4:4:4),
decoded at every DCT scale (1, 1/2, 1/4, 1/8). Printed: frames, false refusals, the highest seam score per
source (the refusal threshold is ``jpeg_guard_agreement``).

Corrupted frames: 1-5 bytes of the entropy-coded data changed (as the fuzz does), decoded strictly at scales 1,
1/2, 1/4; by the mean |error| vs the clean decode: refused by libjpeg, accepted identical / <= 1 level, and in
(1, 10] and > 10 levels how many the guard refuses.

Temporal: the mean |difference| between consecutive frames of each camera (30 Hz): the wrist cameras' fast moves
reach the size of a corruption's error, so a "jump" test alone would refuse real frames.

    python benchmarks/bench_jpeg_guard.py [--flips 6] [--recording DIR] [--json]
        [--cost-only] [--baseline-guard OLD_jpeg_guard.py]   # cost: this guard vs another version, same process
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fastwam_ros.perception.compressed import (  # noqa: E402
    SEAM_AGREEMENT,
    SEAM_STEP_LEVELS,
    _jpeg_frame,
    decode_compressed,
    decode_scale_for,
)
from fastwam_ros.perception.errors import DecodeError  # noqa: E402
from fastwam_ros.perception.jpeg_guard import seam_score  # noqa: E402

QUALITIES = (50, 60, 75, 85, 95)
CAMERA_HW = (480, 640)


# -- pictures ----------------------------------------------------------------------------------------------------
def sim_frames(n_moments: int = 8, hw: tuple[int, int] = CAMERA_HW, seed: int = 1) -> list[list[np.ndarray]]:
    """[moment][camera] simulator images (head, left_wrist, right_wrist) spread over a scripted fold."""
    from fastwam_ros.sim.scripted import make_folder  # noqa: PLC0415 - the simulator is only needed here
    from fastwam_ros.sim.sim import BimanualSim, SimConfig  # noqa: PLC0415

    sim = BimanualSim(SimConfig(camera_hw={c: hw for c in ("head", "left_wrist", "right_wrist")}),
                      mode="kinematic", seed=0)
    sim.reset(seed=seed)
    folder = make_folder(sim.towel, np.random.default_rng(seed))
    out, n_steps = [], int(folder.duration_s * 30)
    for t in range(n_steps):
        if t % max(1, n_steps // n_moments) == n_steps // (2 * n_moments):
            out.append([sim.render(c) for c in sim.cameras])
        sim.step(folder.command(sim.time_s + 1 / 30), 1 / 30)
    return out


def sim_sequences(hw: tuple[int, int] = (120, 160), seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Every 30 Hz frame of each simulator camera over a scripted fold."""
    from fastwam_ros.sim.scripted import make_folder  # noqa: PLC0415
    from fastwam_ros.sim.sim import BimanualSim, SimConfig  # noqa: PLC0415

    sim = BimanualSim(SimConfig(camera_hw={c: hw for c in ("head", "left_wrist", "right_wrist")}),
                      mode="kinematic", seed=seed)
    sim.reset(seed=seed)
    folder = make_folder(sim.towel, np.random.default_rng(seed))
    seqs: dict[str, list[np.ndarray]] = defaultdict(list)
    for _ in range(int(folder.duration_s * 30)):
        for c in sim.cameras:
            seqs[c].append(sim.render(c))
        sim.step(folder.command(sim.time_s + 1 / 30), 1 / 30)
    return dict(seqs)


def synthetic(h: int = 240, w: int = 320) -> list[np.ndarray]:
    """Noisy, high-frequency and grid-aligned pictures: the hard cases for a block-grid check."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]

    def grey(a):
        return np.repeat(a.astype(np.uint8)[:, :, None], 3, axis=2)

    out = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
           grey(np.clip(128 + rng.normal(0, 12, (h, w)), 0, 255)),
           grey((xx % 2) * 255), grey(((yy // 8) % 2) * 200 + 20),
           grey(127.5 + 127.5 * np.cos((xx ** 2 + yy ** 2) / 80.0))]
    for sq in (8, 16, 5):
        cb = ((yy // sq + xx // sq) % 2 * 255).astype(np.uint8)
        out.append(np.stack([cb, 255 - cb, cb // 2], axis=2))
    out.append(np.kron(rng.integers(0, 256, (h // 16, w // 16, 3)), np.ones((16, 16, 1))).astype(np.uint8))
    edge = np.zeros((h, w, 3), np.uint8)
    edge[:128], edge[128:] = (90, 120, 160), (200, 180, 150)  # a table edge exactly on an MCU row boundary
    out.append(edge)
    text = np.full((h, w, 3), 255, np.uint8)
    for i in range(12):
        cv2.putText(text, "FASTWAM ros 0123 jpeg", (5, 18 + i * 19), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1)
    out.append(text)
    return out


def adversarial_staircase(h: int = 240, w: int = 320) -> np.ndarray:
    """A scene edge drawn exactly as a DC drift's staircase on the 16-px MCU grid with one constant step: the
    guard cannot tell it from corruption (reported apart; a camera image practically never has it)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:128], img[128:] = (90, 120, 160), (200, 180, 150)
    img[112:128, 160:] = (200, 180, 150)
    return img


def recorded_jpegs(bag: Path, every: int = 1) -> dict[str, list[bytes]]:
    """{camera topic: JPEG bytes} of a rosbag2 recording (needs ``rosbags``)."""
    from rosbags.highlevel import AnyReader  # noqa: PLC0415
    from rosbags.typesys import Stores, get_typestore  # noqa: PLC0415

    out: dict[str, list[bytes]] = defaultdict(list)
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as r:
        conns = [c for c in r.connections if c.msgtype == "sensor_msgs/msg/CompressedImage"]
        for i, (c, _, raw) in enumerate(r.messages(connections=conns)):
            if i % every == 0:
                out[c.topic].append(bytes(r.deserialize(raw, c.msgtype).data))
    return dict(out)


def jpeg(rgb: np.ndarray, quality: int, encoder: str = "opencv") -> bytes:
    if encoder == "simplejpeg":
        import simplejpeg  # noqa: PLC0415

        return simplejpeg.encode_jpeg(np.ascontiguousarray(rgb), quality=quality, colorspace="RGB",
                                      colorsubsampling="444")
    return cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def flips(data: bytes, seed: int):
    """JPEGs with 1-5 bytes of the entropy-coded data changed (as benchmarks/fuzz_perception.py makes them)."""
    r = random.Random(seed)
    sos = data.find(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")
    while True:
        b = bytearray(data)
        for _ in range(r.randint(1, 5)):
            p = r.randint(start, len(b) - 3)
            b[p] = r.choice([b[p] ^ 0xFF, r.randint(0, 255), b[p] ^ (1 << r.randint(0, 7))])
        yield bytes(b)


# -- measurements ---------------------------------------------------------------------------------------------
def _scaled(data: bytes, scale: int) -> tuple[np.ndarray, int, tuple[int, int]]:
    """(strict decode at 1/scale without the guard, the scale used, sampling factors)."""
    h, w, hs, vs = _jpeg_frame(np.frombuffer(data, np.uint8))
    need = None if scale == 1 else (-(-h // scale), -(-w // scale))
    d = decode_scale_for((h, w), need)
    return decode_compressed(SimpleNamespace(format="jpeg", data=data), need_hw=need), d, (hs, vs)


def good_frames(sources: dict[str, list[bytes]], agreement: float, step: float) -> dict:
    out = {}
    for name, jpegs in sources.items():
        scores, refused = [], 0
        for data in jpegs:
            for scale in (1, 2, 4, 8):
                rgb, d, sampling = _scaled(data, scale)
                s = seam_score(rgb, d, sampling, step)
                scores.append(s)
                refused += s >= agreement
        out[name] = {"frames": len(scores), "false_refusals": refused, "max_score": round(max(scores), 3)}
    return out


def corrupted_frames(sources: dict[str, list[bytes]], n_flips: int, agreement: float, step: float) -> dict:
    out = {}
    for name, jpegs in sources.items():
        c = defaultdict(int)
        for i, data in enumerate(jpegs):
            for scale in (1, 2, 4):
                clean, d, sampling = _scaled(data, scale)
                gen = flips(data, seed=1000 * i + scale)
                for _ in range(n_flips):
                    try:
                        out_img, _, _ = _scaled(next(gen), scale)
                    except DecodeError:
                        c["refused_by_libjpeg"] += 1
                        continue
                    err = float(np.abs(out_img.astype(np.float32) - clean).mean())
                    cls = "identical" if err == 0 else "within_1_level" if err <= 1 else \
                        "error_1_to_10" if err <= 10 else "error_over_10"
                    c[f"accepted_{cls}" if cls in ("identical", "within_1_level") else cls] += 1
                    if err > 1:
                        c[f"{cls}_refused_by_guard"] += seam_score(out_img, d, sampling, step) >= agreement
        out[name] = dict(sorted(c.items()))
    return out


def _calibration_us(repeats: int = 200) -> float:
    """Median µs of a fixed small NumPy workload (20,000 float32 multiply-add-sum): the machine's load, so guard
    costs measured at different times can be compared."""
    a = np.random.default_rng(0).random(20_000).astype(np.float32)
    t = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        float((a * 2 + 1).sum())
        t.append(time.perf_counter() - t0)
    return round(float(np.median(t)) * 1e6, 1)


def _load_guard(path: Path):
    """``seam_score`` of another version of jpeg_guard.py (e.g. ``git show REV:fastwam_ros/perception/jpeg_guard.py``)."""
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location("baseline_jpeg_guard", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.seam_score


def cost_us(frames: list[np.ndarray], repeats: int = 200, baseline: Path | None = None) -> dict:
    """Median µs per frame of the strict decode and of the guard: the head camera (480x640 JPEG, q 85) at 1/2
    scale and the two wrist cameras at 1/4, as the robotwin tiles decode them; with ``baseline`` (another
    jpeg_guard.py) that version is timed too, interleaved with this one on the same frames. ``load_calibration_us``
    before and after (see _calibration_us) and the load average say how busy the machine was."""
    import os  # noqa: PLC0415

    other = _load_guard(baseline) if baseline is not None else None
    out: dict = {"load_average_1min": round(os.getloadavg()[0], 1), "load_calibration_us": _calibration_us()}
    for name, rgb_full, scale in zip(("head", "left_wrist", "right_wrist"), frames, (2, 4, 4)):
        data = jpeg(rgb_full, 85)
        rgb, d, sampling = _scaled(data, scale)
        msg = SimpleNamespace(format="jpeg", data=data)
        need = rgb.shape[:2]
        td, tg, tb = [], [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            decode_compressed(msg, need_hw=need)
            t1 = time.perf_counter()
            seam_score(rgb, d, sampling, SEAM_STEP_LEVELS)
            t2 = time.perf_counter()
            td.append(t1 - t0)
            tg.append(t2 - t1)
            if other is not None:
                t3 = time.perf_counter()
                other(rgb, d, sampling, SEAM_STEP_LEVELS)
                tb.append(time.perf_counter() - t3)
        row = {"decode_us": round(float(np.median(td)) * 1e6), "guard_us": round(float(np.median(tg)) * 1e6)}
        if other is not None:
            row["baseline_guard_us"] = round(float(np.median(tb)) * 1e6)
            row["guard_over_baseline"] = round(float(np.median(tg)) / float(np.median(tb)), 3)
        out[f"{name} 1/{d} ({rgb.shape[0]}x{rgb.shape[1]})"] = row
    out["load_calibration_us_after"] = _calibration_us()
    return out


def consecutive_differences(seqs: dict[str, list[np.ndarray]]) -> dict:
    out = {}
    for name, frames in seqs.items():
        d = [float(np.abs(a.astype(np.float32) - b).mean()) for a, b in zip(frames[1:], frames)]
        out[name] = {"pairs": len(d), "p50": round(float(np.percentile(d, 50)), 2),
                     "p99": round(float(np.percentile(d, 99)), 2), "max": round(max(d), 2)}
    return out


def run(n_flips: int = 6, recording: Path | None = None, agreement: float = SEAM_AGREEMENT,
        step: float = SEAM_STEP_LEVELS, baseline: Path | None = None, cost_only: bool = False) -> dict:
    cv2.setNumThreads(1)
    moments = sim_frames()
    if cost_only:
        return {"cost_per_frame": cost_us(moments[0], baseline=baseline)}
    sim_imgs = [img for m in moments for img in m]
    good: dict[str, list[bytes]] = {
        "sim (480x640, 3 cameras x 8 moments)": [jpeg(img, q) for img in sim_imgs for q in QUALITIES]
        + [jpeg(img, q, "simplejpeg") for img in sim_imgs[::3] for q in (50, 95)],
        "synthetic (noise, stripes, checkers, grid edges, text)": [jpeg(img, q, e) for img in synthetic()
                                                                   for q in QUALITIES
                                                                   for e in ("opencv", "simplejpeg")],
    }
    adversarial = {"ADVERSARIAL: a scene edge drawn as a drift staircase on the MCU grid (refused by design)":
                   [jpeg(adversarial_staircase(), q) for q in QUALITIES]}
    bags = {"data/sample_episode": REPO / "data" / "sample_episode"}
    if recording is not None:
        bags["recording " + recording.name] = recording
    seqs = {f"sim {k}": v for k, v in sim_sequences().items()}
    for label, path in bags.items():
        try:
            topics = recorded_jpegs(path)
        except Exception as exc:  # noqa: BLE001 - rosbags missing or no recording: reported, not fatal
            good[f"{label}: unavailable ({type(exc).__name__})"] = []
            continue
        as_recorded = [d for v in topics.values() for d in v]
        good[f"{label} (as recorded)"] = as_recorded
        up = [cv2.resize(cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1], CAMERA_HW[::-1],
                         interpolation=cv2.INTER_CUBIC) for d in as_recorded[::6]]
        good[f"{label} (480x640, re-encoded q50-95)"] = [jpeg(img, q) for img in up for q in QUALITIES]
        for topic, frames in topics.items():
            seqs[f"{label} {topic}"] = [cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR) for d in frames]
    good = {k: v for k, v in good.items() if v or "unavailable" in k}
    corrupt_sources = {"sim (480x640)": [jpeg(img, q) for img in sim_imgs[::2] for q in (50, 75, 95)]}
    for k, v in good.items():
        if "re-encoded" in k:
            corrupt_sources[k.split(" (")[0] + " (480x640)"] = v[::5]
    return {
        "agreement_threshold": agreement,
        "step_levels": step,
        "good_frames": good_frames({k: v for k, v in good.items() if v}, agreement, step)
        | {k: "unavailable" for k, v in good.items() if not v},
        "adversarial_frames": good_frames(adversarial, agreement, step),
        "corrupted_frames": corrupted_frames(corrupt_sources, n_flips, agreement, step),
        "cost_per_frame": cost_us(moments[0], baseline=baseline),
        "consecutive_frame_mean_abs_difference_levels": consecutive_differences(seqs),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flips", type=int, default=6, help="flipped copies per JPEG and scale")
    ap.add_argument("--recording", type=Path, default=None, help="a rosbag2 recording with CompressedImage topics")
    ap.add_argument("--baseline-guard", type=Path, default=None,
                    help="another jpeg_guard.py to time against this one, interleaved (cost_per_frame)")
    ap.add_argument("--cost-only", action="store_true", help="only the cost per frame")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = run(args.flips, args.recording, baseline=args.baseline_guard, cost_only=args.cost_only)
    print(json.dumps(out, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    refusals = sum(v["false_refusals"] for v in out.get("good_frames", {}).values() if isinstance(v, dict))
    return 0 if refusals == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
