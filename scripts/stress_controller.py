"""Stress the chunk controller with many random (and adversarial) chunk streams in simulated time.

Same generator and checker as the property tests (``fastwam_ros.control.stress``), many more streams:

    python scripts/stress_controller.py --streams 200000 --events 40 --seed 0

Exits 1 and prints the failing seeds if any stream exceeds a position / velocity / acceleration limit.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastwam_ros.control.stress import check_stream, random_stream  # noqa: E402

MODES = ("splice", "ensemble", "replace")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=20000, help="streams per run (split across modes)")
    ap.add_argument("--events", type=int, default=40, help="events per stream")
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--adversarial", type=float, default=0.5, help="probability of a malformed input")
    ap.add_argument("--trajectory-every", type=int, default=20, help="check trajectories on every n-th stream")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    failures: list[dict] = []
    ticks = 0
    for i in range(args.streams):
        seed = args.seed + i
        mode = MODES[i % len(MODES)]
        rec = random_stream(seed, mode=mode, adversarial=args.adversarial, n_events=args.events,
                            with_trajectory=(args.trajectory_every > 0 and i % args.trajectory_every == 0))
        ticks += len(rec["t"])
        problems = check_stream(rec)
        if problems:
            failures.append({"seed": seed, "mode": mode, "problems": problems[:3]})
        if (i + 1) % 5000 == 0:
            print(f"{i + 1} streams, {ticks} ticks, {len(failures)} failing, {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr)
    print(json.dumps({"streams": args.streams, "ticks": ticks, "failures": len(failures),
                      "first_failures": failures[:10], "seconds": round(time.perf_counter() - t0, 1)}, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
