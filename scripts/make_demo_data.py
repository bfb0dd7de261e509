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
    ap.add_argument("--seed", type=int, default=1,
                    help="episode seeds are 1000*seed + i (default %(default)s: disjoint from fastwam-eval's 0..999)")
    ap.add_argument("--perturb", type=float, default=0.0,
                    help="DART perturbation of the executed arm commands, rad (episodes cycle 0, 1/2, 1 x this)")
    ap.add_argument("--resume", action="store_true", help="keep episodes already written in --out")
    ap.add_argument("--jobs", type=int, default=1,
                    help="record in this many processes: job j records episodes/jobs episodes with seed --seed + j "
                         "into --out/part_j, then they are merged into --out (default: %(default)s)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from fastwam_ros.robot import load_robot

    if args.jobs > 1:
        return run_jobs(args, argv or sys.argv[1:])
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
        resume=args.resume, perturb_rad=args.perturb,
    )
    folds = [e["final_fold_fraction"] for e in meta["episodes"]]
    print(
        f"wrote {len(meta['episodes'])} episodes to {args.out} in {time.perf_counter() - t0:.0f} s "
        f"(mean final fold fraction {sum(folds) / len(folds):.2f})"
    )
    return 0


def run_jobs(args: argparse.Namespace, argv: list[str]) -> int:
    """--jobs N: N recording processes (seeds --seed .. --seed + N - 1), then one merged dataset in --out."""
    import shutil
    import subprocess

    from fastwam_ros.sim.demo_data import merge_datasets

    out = Path(args.out)
    per_job = -(-args.episodes // args.jobs)
    base = []
    skip = False
    for a in argv:  # the caller's options minus the ones each job gets its own value of
        if skip:
            skip = False
            continue
        if a in ("--jobs", "--out", "--seed", "--episodes"):
            skip = True
            continue
        if not a.startswith(("--jobs=", "--out=", "--seed=", "--episodes=")):
            base.append(a)
    t0 = time.perf_counter()
    procs = []
    for j in range(args.jobs):
        part = out / f"part_{j}"
        cmd = [sys.executable, __file__, *base, "--out", str(part), "--seed", str(args.seed + j),
               "--episodes", str(min(per_job, args.episodes - j * per_job))]
        procs.append(subprocess.Popen(cmd))
    if any(p.wait() for p in procs):
        print("a recording job failed", file=sys.stderr)
        return 1
    parts = [out / f"part_{j}" for j in range(args.jobs)]
    meta = merge_datasets(parts, out, move=True)
    for part in parts:
        shutil.rmtree(part)
    print(f"merged {len(meta['episodes'])} episodes into {out} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
