"""The stress scripts run in seconds in CI (longer by hand): fault injection never lets an exception out of a
tick and the worker is up at the end; the closed-loop soak runs without an exception and reports its figures."""

from __future__ import annotations

from conftest import load_script


def _load(name):
    return load_script(f"benchmarks/{name}.py")


def test_worker_fault_injection_short():
    r = _load("stress_worker").run(seconds=2.0, seed=1, fault_every=2)
    assert r["exceptions_escaping_a_tick"] == 0 and r["worker_running_at_end"]
    assert sum(r["faults_injected"].values()) > 0 and r["predict_calls"] > 5
    assert r["reset_ms_max"] < 100.0  # reset never waits for the model


def test_closed_loop_soak_short():
    r = _load("soak_loop").run(seconds=2.0, warmup_s=1.0, windows=2, policy="standin")
    assert r["exceptions"] == 0 and r["chunks_published"] > 0 and r["chunks_accepted"] > 0
    assert r["rss_after_warmup_mb"] > 0 and r["windows"]
