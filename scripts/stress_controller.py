"""Stress the chunk controller with many random (and adversarial) chunk streams in simulated time.

Same generator and checker as the property tests (``fastwam_ros.control.stress``), many more streams:

    python scripts/stress_controller.py --streams 200000 --events 40 --seed 0
    python scripts/stress_controller.py --chunks 100000      # as many streams as it takes to submit 100,000 chunks
    python scripts/stress_controller.py --chunks 100000 --chunk-share 0.4 --events 100   # a chunk flood, ~4x faster

Every stream is checked (positions, velocities, accelerations against the limits, also by finite differences of
the commanded positions, and the published trajectories on every ``--trajectory-every``-th stream); the figures
printed: streams, chunks submitted (accepted / refused, e.g. malformed), events, ticks, trajectory points checked,
violations, wall time.

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
    ap.add_argument("--chunks", type=int, default=0, help="run until this many chunks were submitted (overrides "
                                                          "--streams)")
    ap.add_argument("--events", type=int, default=40, help="events per stream")
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--adversarial", type=float, default=0.5, help="probability of a malformed input")
    ap.add_argument("--trajectory-every", type=int, default=20, help="check trajectories on every n-th stream")
    ap.add_argument("--chunk-share", type=float, default=None,
                    help="probability that an event is a chunk (default 0.15): higher = a chunk flood, fewer ticks "
                         "per chunk, so more chunks per second of CPU")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    failures: list[dict] = []
    ticks = chunks = accepted = traj_points = gaps = 0
    per_mode = {m: 0 for m in MODES}
    i = 0
    while (chunks < args.chunks) if args.chunks > 0 else (i < args.streams):
        seed = args.seed + i
        mode = MODES[i % len(MODES)]
        rec = random_stream(seed, mode=mode, adversarial=args.adversarial, n_events=args.events,
                            with_trajectory=(args.trajectory_every > 0 and i % args.trajectory_every == 0),
                            chunk_share=args.chunk_share)
        ticks += len(rec["t"])
        chunks += rec["chunks"]
        accepted += rec["chunks_accepted"]
        per_mode[mode] += rec["chunks"]
        traj_points += rec["trajectory_points"]
        gaps += rec["tick_gaps"]
        problems = check_stream(rec)
        if problems:
            failures.append({"seed": seed, "mode": mode, "problems": problems[:3]})
        i += 1
        if i % 5000 == 0:
            print(f"{i} streams, {chunks} chunks, {ticks} ticks, {len(failures)} failing, "
                  f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print(json.dumps({"streams": i, "events": i * args.events, "chunks": chunks, "chunks_accepted": accepted,
                      "chunks_refused": chunks - accepted, "chunks_per_mode": per_mode, "ticks": ticks,
                      "trajectory_points": traj_points, "tick_gaps": gaps, "failures": len(failures), "first_failures": failures[:10],
                      "seconds": round(time.perf_counter() - t0, 1),
                      "command": "python scripts/stress_controller.py " + " ".join(sys.argv[1:] if argv is None
                                                                                   else argv)}, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
