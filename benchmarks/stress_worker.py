"""Worker fault injection: a stand-in policy that raises, hangs and returns garbage, driven through the same
PolicyRuntime the policy node ticks (issue 14 items 3, 4, 6).

Faults, cycled in a seeded random order: Exception, SystemExit, KeyboardInterrupt, GeneratorExit, a CUDA-OOM-like
RuntimeError, MemoryError, an exception whose __str__ raises, a hang (longer than inference_timeout_s), NaN / inf /
1e300 outputs, wrong horizon, wrong action dim, a 1-D output, a first step far from the state, and a death of the
worker thread itself (the loop is killed; the supervisor restarts it). Between faults the policy answers normally.

Figures: ticks, exceptions escaping a tick (must be 0), chunks published, worker errors by kind, restarts,
timeouts, rejections by reason, tick and reset() wall time (p50/p99/max ms: nothing blocks the executor).

Usage: python benchmarks/stress_worker.py [--seconds 5] [--json] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastwam_ros.runtime.policy_runtime import PolicyRuntime, PolicyRuntimeConfig  # noqa: E402
from fastwam_ros.runtime.worker import PolicyWorker  # noqa: E402

H, A = 16, 4
FAULTS = ("exception", "system_exit", "keyboard_interrupt", "generator_exit", "cuda_oom", "memory_error",
          "unprintable", "hang", "nan", "inf", "huge", "wrong_horizon", "wrong_dim", "one_d", "first_step_jump",
          "kill_thread")


class _Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("__str__ failed")


class FaultyPolicy:
    horizon = H

    def __init__(self, hang_s: float):
        self.next_fault: str | None = None
        self.hang_s = hang_s
        self.calls = 0

    def predict(self, frame, instruction, proprio, **_kw):  # seed, prefix, rtc_mode, ... (unused)
        self.calls += 1
        fault, self.next_fault = self.next_fault, None
        q = np.asarray(proprio, dtype=np.float64)
        good = np.tile(q, (H, 1)) + 0.001 * np.arange(H)[:, None]
        raising = {"exception": ValueError("injected"), "system_exit": SystemExit(1),
                   "keyboard_interrupt": KeyboardInterrupt(), "generator_exit": GeneratorExit(),
                   "cuda_oom": RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB"),
                   "memory_error": MemoryError(), "unprintable": _Unprintable()}
        if fault in raising:
            raise raising[fault]
        if fault == "hang":
            time.sleep(self.hang_s)
            return good
        return {"nan": np.full((H, A), np.nan), "inf": np.full((H, A), np.inf), "huge": np.full((H, A), 1e300),
                "wrong_horizon": np.zeros((5000, A)), "wrong_dim": np.zeros((H, A + 1)), "one_d": np.zeros(H),
                "first_step_jump": good + 3.0}.get(fault, good)


def _kill_thread(worker: PolicyWorker) -> None:
    original = worker._infer

    def dying(job):
        worker._infer = original
        raise SystemExit("worker loop killed (injected)")

    worker._infer = dying


def _pct(xs, q):
    return float(np.percentile(xs, q)) * 1e3 if len(xs) else 0.0


def run(seconds: float = 5.0, seed: int = 0, tick_s: float = 0.005, fault_every: int = 3,
        hang_s: float = 0.3, timeout_s: float = 0.15) -> dict:
    rng = np.random.default_rng(seed)
    policy = FaultyPolicy(hang_s)
    worker = PolicyWorker(lambda: policy, warmup=False)
    worker.start(timeout_s=10.0)
    q = np.linspace(-0.3, 0.3, A)
    pipeline = SimpleNamespace(poll=lambda now: SimpleNamespace(frame=np.zeros((3, 4, 4), np.float32), stamp_s=now,
                                                                proprio=q.astype(np.float32)))
    cfg = PolicyRuntimeConfig(joint_names=[f"j{i}" for i in range(A)], arms={}, step_period_s=0.05,
                              inference_timeout_s=timeout_s, max_worker_restarts=1000, worker_restart_backoff_s=0.01,
                              max_first_step_distance=0.5, markers=False)
    rt = PolicyRuntime(cfg, pipeline, worker, instruction="fold", enabled=True)
    tick_ms, reset_ms, escaped, injected = [], [], 0, {f: 0 for f in FAULTS}
    published = ticks = 0
    seen_calls = 0
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        now = time.monotonic()
        if policy.calls != seen_calls and policy.next_fault is None:
            seen_calls = policy.calls
            if seen_calls % fault_every == 0:
                f = FAULTS[int(rng.integers(len(FAULTS)))]
                injected[f] += 1
                if f == "kill_thread":
                    _kill_thread(worker)
                else:
                    policy.next_fault = f
        t0 = time.perf_counter()
        try:
            rt.step(now)
            published += len(rt.collect(now))
            rt.diagnostics(now, active=True)
            rt.pop_events()
        except BaseException:  # noqa: BLE001 - counted: must stay 0
            escaped += 1
        tick_ms.append(time.perf_counter() - t0)
        ticks += 1
        if ticks % 400 == 0:
            t0 = time.perf_counter()
            rt.reset()
            reset_ms.append(time.perf_counter() - t0)
        time.sleep(tick_s)
    settle = time.monotonic() + 2.0  # a kill injected just before the end: let the supervisor restart it
    while not worker.running and time.monotonic() < settle:
        rt.step(time.monotonic())
        time.sleep(tick_s)
    rejections = dict(rt.rejections.as_dict())
    out = {
        "seconds": seconds, "ticks": ticks, "exceptions_escaping_a_tick": escaped, "chunks_published": published,
        "predict_calls": policy.calls, "faults_injected": injected, "worker_errors": dict(worker.error_kinds),
        "worker_restarts": worker.restarts, "worker_crashes": worker.crashes,
        "inference_timeouts": rt.supervisor.timeouts, "implausible_refused": rt.implausible,
        "rejections_since_last_reset": rejections, "worker_running_at_end": worker.running,
        "tick_ms_p50": _pct(tick_ms, 50), "tick_ms_p99": _pct(tick_ms, 99), "tick_ms_max": _pct(tick_ms, 100),
        "reset_ms_max": _pct(reset_ms, 100), "resets": len(reset_ms),
    }
    threading.Thread(target=worker.stop, kwargs={"timeout_s": 2.0}, daemon=True).start()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    r = run(args.seconds, args.seed)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        for k, v in r.items():
            print(f"{k:32s} {v}")
    return 0 if r["exceptions_escaping_a_tick"] == 0 and r["worker_running_at_end"] else 1


if __name__ == "__main__":
    sys.exit(main())
