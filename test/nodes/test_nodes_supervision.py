"""Worker supervision (issue 14 items 3, 4): nothing a model raises kills the worker or escapes a tick, a dead
thread is restarted with bounded back-off, an overrunning replan is an ERROR and a counted timeout, and reset
never blocks on a busy or hung model."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from fastwam_ros.runtime.policy_runtime import PolicyRuntime, PolicyRuntimeConfig
from fastwam_ros.runtime.supervision import SupervisionConfig, WorkerSupervisor
from fastwam_ros.runtime.worker import InferenceJob, PolicyWorker

H, A = 4, 2


class ScriptedPolicy:
    """predict() does what the test queued: return actions, raise an exception, or block on an Event."""

    horizon = H

    def __init__(self):
        self.script: list = []
        self.release = threading.Event()
        self.resets = 0

    def reset(self):
        self.resets += 1

    def predict(self, frame, instruction, proprio, **_kw):  # seed, prefix, rtc_mode, ... (unused)
        what = self.script.pop(0) if self.script else "ok"
        if what == "hang":
            assert self.release.wait(10.0)
            return np.zeros((H, A))
        if isinstance(what, BaseException):
            raise what
        if isinstance(what, np.ndarray):
            return what
        return np.zeros((H, A)) + float(frame.flat[0])


def _job(v=0.0, proprio=None, epoch=None):
    meta = {} if epoch is None else {"epoch": epoch}
    return InferenceJob(np.full((3, 2, 2), v, np.float32), proprio, v, "fold", meta=meta)


def _wait(pred, timeout=5.0):
    t0 = time.monotonic()
    while not pred():
        assert time.monotonic() - t0 < timeout, "condition not reached"
        time.sleep(0.002)


@pytest.fixture
def started():
    model = ScriptedPolicy()
    w = PolicyWorker(lambda: model)
    w.start(timeout_s=5.0)
    yield w, model
    model.release.set()
    w.stop(timeout_s=5.0)


class _Boom(Exception):
    def __str__(self):  # an exception that cannot even be printed
        raise SystemExit("str failed")


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt(), RuntimeError("CUDA out of memory. Tried to "
                                                                                  "allocate 2.00 GiB"),
                                 MemoryError(), GeneratorExit(), _Boom()])
def test_any_exception_in_predict_is_a_counted_error_and_the_thread_survives(started, exc):
    w, model = started
    model.script = [exc]
    w.submit(_job(1.0))
    _wait(lambda: w.errors == 1)
    (r,) = w.pop_results()
    assert not r.ok and type(exc).__name__ in r.error
    assert w.running and not w.crashed and w.error_kinds == {type(exc).__name__: 1}
    w.submit(_job(2.0))  # and it still serves the next job
    _wait(lambda: w.completed == 1)
    assert w.pop_results()[0].actions[0, 0] == 2.0


def _runtime(w, **cfg):
    """A runtime over ``w`` with no observations (the tests hand jobs to the worker directly)."""
    return PolicyRuntime(PolicyRuntimeConfig(joint_names=["a", "b"], arms={}, step_period_s=0.1, **cfg),
                         SimpleNamespace(poll=lambda now: None), w, instruction="fold", enabled=True)


def _hang(w, model, rt):
    """Submit a job that hangs in predict until model.release is set; return once the worker runs it."""
    model.script = ["hang"]
    w.submit(_job(1.0, epoch=rt.epoch))
    _wait(lambda: w.busy and w.jobs_started == 1)


def _kill_thread(w):
    """Fault injection: the thread's loop itself dies (what used to happen on SystemExit)."""
    original = w._infer

    def dying(job):
        w._infer = original
        raise SystemExit("worker loop killed")

    w._infer = dying


def test_dead_worker_is_restarted_with_backoff_and_step_never_raises(started):
    w, model = started
    rt = _runtime(w, worker_restart_backoff_s=0.5, max_worker_restarts=2)
    _kill_thread(w)
    w.submit(_job(1.0))
    _wait(lambda: w.crashed)
    assert not w.running and "worker loop killed" in w.last_crash
    # the tick keeps running: no exception, the diagnostic says what is going on
    assert rt.step(10.0) is False
    d = {s.name: s for s in rt.diagnostics(10.0, active=True)}["inference"]
    assert d.level == 2 and "not running" in d.message
    assert rt.step(10.4) is False and w.restarts == 0  # back-off 0.5 s not over yet
    rt.step(10.6)
    assert w.restarts == 1 and rt.pop_events() and w.running
    w.submit(_job(5.0))
    _wait(lambda: w.completed == 1)  # serves jobs again on the same (already loaded) model
    assert w.pop_results()[0].actions[0, 0] == 5.0


def test_restarts_are_bounded_then_error():
    model = ScriptedPolicy()
    w = PolicyWorker(lambda: model)
    w.start(timeout_s=5.0)
    sup = WorkerSupervisor(w, SupervisionConfig(inference_timeout_s=0.0, max_restarts=2, restart_backoff_s=0.1))
    t = 0.0
    try:
        for _attempt in range(3):
            _kill_thread(w)
            w.submit(_job(1.0))
            _wait(lambda: w.crashed)
            for _ in range(20):  # back-off doubles: 0.1, 0.2, then give up
                t += 0.05
                sup.poll(t)
                if w.running or sup.gave_up:
                    break
        assert w.restarts == 2 and sup.gave_up and not w.running
    finally:
        w.stop(timeout_s=2.0)


def test_hung_inference_times_out_with_error_and_reset_does_not_block(started):
    w, model = started
    rt = _runtime(w, inference_timeout_s=2.0)
    _hang(w, model, rt)
    rt.step(100.0)  # the tick on which the job is first seen running
    rt.step(101.0)
    d = {s.name: s for s in rt.diagnostics(101.0, active=True)}["inference"]
    assert d.level < 2 and rt.supervisor.timeouts == 0
    rt.step(102.5)
    d = {s.name: s for s in rt.diagnostics(102.5, active=True)}["inference"]
    assert d.level == 2 and "inference_timeout_s" in d.message and rt.supervisor.timeouts == 1
    rt.step(103.0)
    assert rt.supervisor.timeouts == 1  # counted once per overrunning job
    t0 = time.perf_counter()
    rt.reset()  # used to block until the worker was free (3.5 s during a hang)
    assert time.perf_counter() - t0 < 0.1
    model.release.set()
    _wait(lambda: model.resets == 1)  # the queued model reset ran once the hang ended
    _wait(lambda: w.completed == 1)
    assert rt.collect(104.0) == []  # the late result is dropped
    assert rt.rejections.as_dict() == {"chunk:before_reset": 1}
    d = {s.name: s for s in rt.diagnostics(104.0, active=True)}["inference"]
    assert d.level < 2


def test_results_of_jobs_submitted_before_reset_are_dropped(started):
    w, model = started
    rt = _runtime(w)
    _hang(w, model, rt)
    rt.reset()
    model.release.set()
    _wait(lambda: model.resets == 1)
    assert rt.collect(1.0) == [] and rt.rejections.as_dict() == {"chunk:before_reset": 1}


def test_timeout_result_dropped_when_it_arrives(started):
    w, model = started
    rt = _runtime(w, inference_timeout_s=1.0)
    _hang(w, model, rt)
    rt.step(0.0)
    rt.step(1.5)
    model.release.set()
    _wait(lambda: w.completed == 1)
    assert rt.collect(2.0) == [] and rt.rejections.as_dict() == {"chunk:timed_out": 1}


def test_reset_while_the_worker_is_dead_is_kept_for_the_restarted_thread(started):
    w, model = started
    rt = _runtime(w, worker_restart_backoff_s=0.0)
    _kill_thread(w)
    w.submit(_job(1.0))
    _wait(lambda: w.crashed)
    rt.reset()  # used to raise WorkerError("worker is not running") out of the service
    assert model.resets == 0
    rt.step(1.0)
    assert w.restarts == 1
    _wait(lambda: model.resets == 1)
