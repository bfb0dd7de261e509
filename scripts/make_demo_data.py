#!/usr/bin/env python3
"""Generate scripted "fold the towel in half" demonstrations in the demo simulator.

    python scripts/make_demo_data.py --out outputs/demo_data --episodes 48 --modes mujoco,kinematic

Writes one compressed npz per episode + meta.json (format: fastwam_ros/sim/demo_data.py). Episodes alternate
between the given sim modes so a policy trained on them sees both the MuJoCo renders and the kinematic
fallback's synthetic images. A mode that is not available here (no mujoco / gym-aloha / offscreen GL) is
dropped with a warning. Keep the output out of git (outputs/ is ignored).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastwam_ros.sim import BimanualSim, SimConfig  # noqa: E402
from fastwam_ros.sim.demo_data import write_dataset  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="outputs/demo_data", help="output folder (default: %(default)s)")
    ap.add_argument("--episodes", type=int, default=48, help="number of episodes (default: %(default)s)")
    ap.add_argument("--modes", default="mujoco,kinematic", help="comma-separated sim modes to alternate")
    ap.add_argument("--robot", default="demo_aloha", help="robot file (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true", help="keep episodes already written in --out")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from fastwam_ros.robot import load_robot

    robot = load_robot(args.robot)
    config = SimConfig.from_dict(robot.sim)  # camera sizes, tracking: the robot file's sim section
    args.fps = round(1.0 / robot.chunk_step_period_s, 6)  # control / camera rate of the recorded timeline, Hz
    modes = []
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        try:
            sim = BimanualSim(config, mode=mode)
        except RuntimeError as exc:
            print(f"warning: dropping sim mode {mode!r}: {exc}", file=sys.stderr)
            continue
        if mode == "mujoco" and sim.render_backend == "synthetic":
            print("warning: dropping sim mode 'mujoco': no offscreen rendering here", file=sys.stderr)
        else:
            modes.append(mode)
        sim.close()
    if not modes:
        modes = ["kinematic"]
    print(f"recording {args.episodes} episodes at {args.fps:g} Hz, cameras {config.camera_hw}, modes {modes}")
    t0 = time.perf_counter()
    meta = write_dataset(
        args.out, args.episodes, modes, lambda m: BimanualSim(config, mode=m), fps=args.fps, seed=args.seed,
        resume=args.resume,
    )
    folds = [e["final_fold_fraction"] for e in meta["episodes"]]
    print(
        f"wrote {len(meta['episodes'])} episodes to {args.out} in {time.perf_counter() - t0:.0f} s "
        f"(mean final fold fraction {sum(folds) / len(folds):.2f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
