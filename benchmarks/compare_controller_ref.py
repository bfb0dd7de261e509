"""Tick cost of the controller against an earlier commit, both run in one process, interleaved tick by tick on
the same stream (so a loaded, shared machine slows both alike), and their outputs compared every tick.

    python benchmarks/compare_controller_ref.py --ref 50acce1 [--seconds 4] [--modes splice ensemble] [--json]

The reference commit's ``fastwam_ros`` package is exported with ``git archive`` into a temporary directory and
imported under another name. Per splice mode and stream (normal, adversarial: see bench_controller.py), per
variant (tick_bare, node_position, node_trajectory as in bench_controller.py): p50 / p99 ms (thread CPU time) of
each and the ratio new / ref; it exits 1 if a setpoint differs by more than 1e-12.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_controller import _adversarial_chunk  # noqa: E402

import fastwam_ros.control as new  # noqa: E402
from fastwam_ros.control.synthetic import bimanual_config_dict, chunk_stream  # noqa: E402


def load_ref(commit: str, tmp: Path):
    """The ``fastwam_ros.control`` package of ``commit``, imported as ``fastwam_ref.control``."""
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "fastwam_ros"], check=True,
                         capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=tar, check=True)
    (tmp / "fastwam_ros").rename(tmp / "fastwam_ref")
    for f in (tmp / "fastwam_ref").rglob("*.py"):
        f.write_text(re.sub(r"\bfastwam_ros\b", "fastwam_ref", f.read_text()))
    sys.path.insert(0, str(tmp))
    return importlib.import_module("fastwam_ref.control")


def compare(ref, mode: str, stream: str, seconds: float) -> dict:
    def make(pkg):
        cfg = pkg.ControllerConfig.from_dict(bimanual_config_dict(splice_mode=mode, replace_execute_steps=8))
        return cfg, pkg.ChunkController(cfg)

    (cfg, old_ctl), (_, new_ctl) = make(ref), make(new)
    names = cfg.joint_names
    grip = tuple(i for i, n in enumerate(names) if "gripper" in n)
    events, truth = chunk_stream(names, seconds, seed=0, gripper_cols=grip)
    rng = np.random.default_rng(0)
    for c in (old_ctl, new_ctl):
        c.update_joint_state(0.0, names, truth(0.0)[0])
        c.enable(0.0)
    kinds = ("tick_bare", "node_position", "node_trajectory")
    times = {k: {"ref": [], "new": []} for k in kinds}
    max_diff, ev = 0.0, 0
    for n in range(int(seconds * 100)):
        t = (n + 1) * 0.01
        if stream == "adversarial":
            chunks = [(_adversarial_chunk(rng, names, t, n, cfg.max_chunk_steps), t)]
        else:
            chunks = []
            while ev < len(events) and events[ev].arrival_s <= t:
                chunks.append((events[ev].chunk, events[ev].arrival_s))
                ev += 1
        kind = kinds[n % 3]
        prefix = kind != "tick_bare" and (n // 3) % 5 == 0
        pos = {}
        for name, pkg, c in (("ref", ref, old_ctl), ("new", new, new_ctl))[:: 1 if n % 2 else -1]:
            for ch, ta in chunks:
                c.submit_chunk(pkg.Chunk(stamp_s=ch.stamp_s, step_period_s=ch.step_period_s,
                                         joint_names=ch.joint_names, positions=ch.positions,
                                         velocities=ch.velocities, chunk_id=ch.chunk_id), ta)
            fused = "prefix_through_plan" in inspect.signature(c.tick).parameters  # (the tick computes the prefix)
            t0 = time.thread_time()
            if fused:
                out = c.tick(t, with_trajectory=kind == "node_trajectory", with_prefix=prefix,
                             prefix_duration_s=cfg.rtc_prefix_s, prefix_through_plan=True)
            else:
                out = c.tick(t, with_trajectory=kind == "node_trajectory", with_prefix=False)
                if prefix:
                    c.committed_prefix(t, duration_s=max(cfg.rtc_prefix_s,
                                                         out.metrics.plan_depth_s if out.plan_active else 0.0))
            times[kind][name].append(time.thread_time() - t0)
            pos[name] = np.concatenate([out.groups[g.name].positions for g in cfg.groups])
        max_diff = max(max_diff, float(np.max(np.abs(pos["ref"] - pos["new"]))))
        for c in (old_ctl, new_ctl):
            c.update_joint_state(t, names, pos["new"])
    res: dict = {"max_setpoint_difference": max_diff}
    for k, d in times.items():
        r, w = np.asarray(d["ref"]) * 1e3, np.asarray(d["new"]) * 1e3
        res[k] = {"ref_p50_ms": float(np.percentile(r, 50)), "ref_p99_ms": float(np.percentile(r, 99)),
                  "new_p50_ms": float(np.percentile(w, 50)), "new_p99_ms": float(np.percentile(w, 99))}
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", required=True, help="git commit of the reference implementation")
    ap.add_argument("--seconds", type=float, default=4.0, help="simulated seconds per case")
    ap.add_argument("--modes", nargs="+", default=["splice", "ensemble", "replace"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        ref = load_ref(args.ref, Path(tmp))
        out = {f"{m}/{s}": compare(ref, m, s, args.seconds) for s in ("normal", "adversarial") for m in args.modes}
    ok = all(r["max_setpoint_difference"] <= 1e-12 for r in out.values())
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"tick cost, ms (thread CPU), ref {args.ref} vs working tree, interleaved: ref p50/p99 -> new p50/p99")
        for case, r in out.items():
            cols = "  ".join(f"{k} {r[k]['ref_p50_ms']:.2f}/{r[k]['ref_p99_ms']:.2f} -> "
                             f"{r[k]['new_p50_ms']:.2f}/{r[k]['new_p99_ms']:.2f}"
                             for k in ("tick_bare", "node_position", "node_trajectory"))
            print(f"{case:22s} {cols}  (max setpoint difference {r['max_setpoint_difference']:.1e})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
