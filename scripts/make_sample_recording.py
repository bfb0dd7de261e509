#!/usr/bin/env python3
"""Regenerate the repository's sample recording: one scripted towel fold of the demo robot, recorded in the
project's simulator (kinematic mode: numpy only, synthetic camera images) as a rosbag2 MCAP bag.

    python scripts/make_sample_recording.py                      # -> data/sample_episode/
    python scripts/make_sample_recording.py --out /tmp/ep --seed 3

Topics: see fastwam_ros/sim/rosbag_recording.py. The README's training smoke test trains on it:
``fastwam-train config/train_tiny_sample.yaml``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastwam_ros.sim import BimanualSim, SimConfig  # noqa: E402
from fastwam_ros.sim.rosbag_recording import RecordingSpec, record_episode_bag  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "data" / "sample_episode"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="bag directory to (re)write (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="towel placement / timing seed (default: %(default)s)")
    ap.add_argument("--jpeg-quality", type=int, default=RecordingSpec.jpeg_quality)
    args = ap.parse_args(argv)
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with BimanualSim(SimConfig(), mode="kinematic") as sim:
        summary = record_episode_bag(sim, args.out, RecordingSpec(seed=args.seed, jpeg_quality=args.jpeg_quality))
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"wrote {args.out} ({size / 1e6:.2f} MB, {summary['duration_s']:.2f} s, final fold fraction "
          f"{summary['final_fold_fraction']:.2f})")
    for topic, n in sorted(summary["messages"].items()):
        print(f"  {topic}: {n} messages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
