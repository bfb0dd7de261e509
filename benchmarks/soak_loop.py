"""Soak of the ROS-free closed loop the three nodes run: kinematic BimanualSim → camera images and joint states →
PolicyRuntime (ObservationPipeline + PolicyWorker thread) → ActionChunk fields → ControllerRuntime → trajectory
commands → SimBridge → sim, in real time with the demo parameters (config/towel_fold.yaml + config/demo.yaml).

Policy: ``--policy demo`` (the bundled tiny checkpoint, 1 torch thread, as the demo node) or ``--policy standin``
(a cheap stand-in that ramps from the state: isolates the runtime's own growth from torch's).

Figures: share of group-ticks in mode "running" (the arms follow chunks: the demo shows motion), RSS after
warm-up and at the end (growth %, and per window), per-window p50/p99 of the loop iteration
and of the controller tick (ms), inference p50 per window (s), chunks published/accepted, exceptions (must be 0),
rejections by reason. Latency drift = last window's p50 / first window's p50.

Usage: python benchmarks/soak_loop.py [--seconds 60] [--warmup-s 10] [--windows 6] [--policy demo|standin]
       [--json]     (the issue asks for >= 1 h by hand: --seconds 3600)
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    """Current resident set size (MB) from /proc (Linux); falls back to the peak from getrusage."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class StandIn:
    """A cheap policy: a chunk ramping away from the state (no torch)."""

    horizon = 32

    def predict(self, frame, instruction, proprio, **_kw):  # seed, prefix, rtc_mode, ... (unused)
        q = np.asarray(proprio, np.float64)
        return np.tile(q, (32, 1)) + 0.002 * np.arange(32)[:, None] * np.sin(np.arange(q.size))[None, :]


def _image(rgb: np.ndarray):
    h, w, _ = rgb.shape
    return SimpleNamespace(height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3, data=rgb.tobytes(),
                           header=None)


def build(policy: str):
    from fastwam_ros.perception import ObservationPipeline
    from fastwam_ros.robot import load_robot
    from fastwam_ros.runtime.controller_runtime import ControllerRuntime
    from fastwam_ros.runtime.params import load_node_parameters, resolve
    from fastwam_ros.runtime.policy_runtime import PolicyRuntime, PolicyRuntimeConfig, policy_factory
    from fastwam_ros.runtime.policy_setup import make_worker, with_threads
    from fastwam_ros.runtime.schemas import CONTROLLER_SCHEMA, POLICY_SCHEMA, SIM_SCHEMA
    from fastwam_ros.runtime.sim_runtime import build_sim

    def params(node, schema, **over):
        o = load_node_parameters(REPO / "config" / "towel_fold.yaml", node)
        o.update(load_node_parameters(REPO / "config" / "demo.yaml", node))
        o.update({"robot_file": "demo_aloha", **over})  # as the launch file with demo:=true
        return resolve(schema, o, strict=False)

    pp = params("policy_node", POLICY_SCHEMA, **{"model.checkpoint": str(REPO / "models" / "demo"),
                                                 "model.device": "cpu"})
    cp = params("controller_node", CONTROLLER_SCHEMA)
    robot = load_robot("demo_aloha")
    _robot, sim_cfg, sim, bridge = build_sim(params("sim_node", SIM_SCHEMA))
    factory = with_threads(policy_factory(pp, robot), pp["model.num_threads"]) if policy == "demo" else StandIn
    worker = make_worker(pp, factory)
    worker.start(timeout_s=600.0)
    rt = PolicyRuntime(PolicyRuntimeConfig.from_params(pp, robot, policy), ObservationPipeline(
        robot.perception_config()), worker, instruction=pp["instruction"], enabled=True)
    ctl = ControllerRuntime(cp, robot)
    return sim, bridge, rt, ctl, sim_cfg.camera_rate_hz


def run(seconds: float = 60.0, warmup_s: float = 10.0, windows: int = 6, policy: str = "standin") -> dict:
    sim, bridge, rt, ctl, cam_rate = build(policy)
    names = list(sim.joint_names)
    dt = 1.0 / float(ctl.config.control_rate_hz)
    t0 = time.monotonic()
    t_warm = t0 + warmup_s
    t_end = t_warm + seconds
    win_s = seconds / max(1, windows)
    win: list[dict] = []
    cur = {"loop": [], "tick": [], "rss": []}
    rss_warm = None
    escaped = accepted = published = 0
    modes: dict[str, int] = {}  # group-ticks per controller mode after warm-up ("running" = following chunks)
    next_t = t0
    while True:
        now = time.monotonic()
        if now >= t_end:
            break
        a = time.perf_counter()
        try:
            sim.step(bridge.command_at(now), dt)
            q = sim.joint_positions()
            rt.on_joint_state(now, names, q, now)
            ctl.on_joint_state(now, names, q, now)
            if bridge.camera_due(now, cam_rate):
                for c in sim.cameras:
                    rt.on_image(c, _image(sim.render(c)), now, now)
            rt.step(now)
            for out in rt.collect(now):
                published += 1
                f = out.chunk
                err = ctl.on_chunk(now, stamp=f.stamp, chunk_id=f.chunk_id, step_period_s=f.step_period_s,
                                   joint_names=f.joint_names, num_steps=f.num_steps, positions=f.positions,
                                   velocities=f.velocities, latency_s=f.latency_s)
                accepted += err is None
            b = time.perf_counter()
            out = ctl.tick(now)
            cur["tick"].append(time.perf_counter() - b)
            if now >= t_warm:
                for m in out.modes.values():
                    modes[m] = modes.get(m, 0) + 1
            for c in out.commands:
                tr = c.trajectory
                if tr is not None:
                    start = tr.stamp[0] + tr.stamp[1] * 1e-9
                    times = [s + n * 1e-9 for s, n in tr.times_from_start]
                    bridge.on_trajectory(c.group, tr.joint_names, start, times, np.asarray(tr.positions), now)
            if out.prefix is not None:
                p = out.prefix
                rt.on_committed_prefix(p.stamp[0] + p.stamp[1] * 1e-9, p.joint_names, p.positions_array(), now,
                                       p.step_period_s)
        except Exception:  # noqa: BLE001 - counted: must stay 0
            escaped += 1
        if now >= t_warm:
            if rss_warm is None:
                gc.collect()
                rss_warm = rss_mb()
                cur = {"loop": [], "tick": [], "rss": []}
                win_start = now
            cur["loop"].append(time.perf_counter() - a)
            if now - win_start >= win_s:
                cur["rss"].append(rss_mb())
                win.append(_summarise(cur, rt))
                cur = {"loop": [], "tick": [], "rss": []}
                win_start = now
        next_t += dt
        time.sleep(max(0.0, next_t - time.monotonic()))
        if next_t < time.monotonic() - 1.0:  # fell far behind: do not try to catch up
            next_t = time.monotonic()
    gc.collect()
    rss_end = rss_mb()
    if cur["loop"]:
        cur["rss"].append(rss_end)
        win.append(_summarise(cur, rt))
    rt.worker.stop(timeout_s=5.0)
    sim.close()
    first, last = (win[0], win[-1]) if win else ({}, {})
    return {
        "policy": policy, "seconds_measured": seconds, "warmup_s": warmup_s,
        "rss_after_warmup_mb": round(rss_warm or 0.0, 1), "rss_end_mb": round(rss_end, 1),
        "rss_growth_pct": round(100.0 * (rss_end - (rss_warm or rss_end)) / max(rss_warm or 1.0, 1e-9), 2),
        "loop_p50_drift": _ratio(last.get("loop_ms_p50"), first.get("loop_ms_p50")),
        "tick_p50_drift": _ratio(last.get("tick_ms_p50"), first.get("tick_ms_p50")),
        "chunks_published": published, "chunks_accepted": accepted, "exceptions": escaped,
        "running_share": round(modes.get("running", 0) / max(1, sum(modes.values())), 3),
        "group_modes": modes,
        "rejections": dict(rt.rejections.as_dict()), "controller_rejections": dict(ctl.rejections.as_dict()),
        "windows": win,
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _pct_ms(xs: list, q: float) -> float | None:
    return round(float(np.percentile(xs, q)) * 1e3, 3) if xs else None


def _summarise(cur: dict, rt) -> dict:
    inf = rt.latency.summary("inference")
    return {"loop_ms_p50": _pct_ms(cur["loop"], 50), "loop_ms_p99": _pct_ms(cur["loop"], 99),
            "tick_ms_p50": _pct_ms(cur["tick"], 50), "tick_ms_p99": _pct_ms(cur["tick"], 99),
            "inference_s_p50": round(inf["p50"], 4) if inf else None,
            "rss_mb": round(cur["rss"][-1], 1) if cur["rss"] else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="measured time after warm-up (s)")
    ap.add_argument("--warmup-s", type=float, default=10.0)
    ap.add_argument("--windows", type=int, default=6)
    ap.add_argument("--policy", choices=("demo", "standin"), default="standin")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    r = run(args.seconds, args.warmup_s, args.windows, args.policy)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        for k, v in r.items():
            if k != "windows":
                print(f"{k:26s} {v}")
        for i, w in enumerate(r["windows"]):
            print(f"window {i}: {w}")
    return 0 if r["exceptions"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
