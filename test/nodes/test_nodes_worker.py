"""The policy worker: one thread owns the model, newest observation wins, errors never kill it."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from fastwam_ros.runtime.worker import InferenceJob, PolicyWorker, WorkerError


class GatedPolicy:
    """A deterministic stand-in model: predict blocks until released, then returns
    actions derived from the inputs. Records which thread ran each method."""

    def __init__(self, horizon=4, dim=3):
        self.h, self.a = horizon, dim
        self.gate = threading.Semaphore(0)
        self.threads = set()
        self.instructions = []
        self.warmed = False
        self.resets = 0
        self.fail_next = False
        self.seen_stamps = []

    def set_instruction(self, text):
        self.threads.add(threading.get_ident())
        self.instructions.append(text)

    def warmup(self):
        self.threads.add(threading.get_ident())
        self.warmed = True

    def reset(self):
        self.threads.add(threading.get_ident())
        self.resets += 1

    def predict(self, frame, instruction, proprio, seed=None, prefix=None, prefix_weight=None,
                rtc_mode="inpaint", guidance_beta=5.0):
        self.threads.add(threading.get_ident())
        assert self.gate.acquire(timeout=5.0)
        self.seen_stamps.append(float(frame.flat[0]))
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("CUDA out of memory (simulated)")
        base = float(frame.flat[0]) + (0.0 if seed is None else seed)
        return np.full((self.h, self.a), base)


def _job(value, instruction="fold", seed=None):
    return InferenceJob(frame=np.full((3, 2, 2), value, np.float32), proprio=None, stamp_s=value,
                        instruction=instruction, seed=seed)


def _wait(pred, timeout=5.0):
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("condition not reached")
        time.sleep(0.002)


@pytest.fixture
def worker():
    model = GatedPolicy()
    w = PolicyWorker(lambda: model, instruction="fold the towel")
    w.start(timeout_s=5.0)
    yield w, model
    for _ in range(10):
        model.gate.release()
    assert w.stop(timeout_s=5.0)


def test_model_lives_on_one_thread_and_is_prepared(worker):
    w, model = worker
    assert model.warmed and model.instructions == ["fold the towel"]
    w.submit(_job(1.0, instruction="fold the towel"))
    model.gate.release()
    _wait(lambda: w.completed == 1)
    w.reset()
    assert len(model.threads) == 1 and threading.get_ident() not in model.threads
    assert model.resets == 1


def test_newest_observation_wins(worker):
    w, model = worker
    w.submit(_job(1.0, "fold the towel"))
    _wait(lambda: w.busy and w._pending is None)  # job 1 is running
    assert w.submit(_job(2.0, "fold the towel")) is False
    assert w.submit(_job(3.0, "fold the towel")) is True  # replaces 2
    for _ in range(2):
        model.gate.release()
    _wait(lambda: w.completed == 2)
    res = w.pop_results()
    assert [r.job.stamp_s for r in res] == [1.0, 3.0]
    assert [r.chunk_id for r in res] == [0, 1]
    assert w.superseded == 1 and model.seen_stamps == [1.0, 3.0]
    assert res[0].actions.shape == (4, 3) and "inference" in res[0].timing_s and "queue" in res[0].timing_s
    assert not w.busy


def test_errors_are_captured_and_thread_survives(worker):
    w, model = worker
    model.fail_next = True
    w.submit(_job(1.0, "fold the towel"))
    model.gate.release()
    _wait(lambda: w.errors == 1)
    (r,) = w.pop_results()
    assert not r.ok and "out of memory" in r.error and r.actions is None
    w.submit(_job(5.0, "fold the towel", seed=2))
    model.gate.release()
    _wait(lambda: w.completed == 1)
    (r,) = w.pop_results()
    assert r.ok and r.actions[0, 0] == 7.0 and r.chunk_id == 0
    assert "out of memory" in w.last_error


def test_instruction_change_runs_on_worker(worker):
    w, model = worker
    w.submit(_job(1.0, instruction="unfold it"))
    model.gate.release()
    _wait(lambda: w.completed == 1)
    assert model.instructions[-1] == "unfold it" and w.current_instruction == "unfold it"
    assert "instruction" in w.pop_results()[0].timing_s
    w.set_instruction("fold again")
    assert model.instructions[-1] == "fold again"


def test_bad_model_output_is_an_error_not_a_crash():
    class NaNPolicy:
        def predict(self, frame, instruction, proprio, seed=None, prefix=None, prefix_weight=None,
                rtc_mode="inpaint", guidance_beta=5.0):
            return np.array([[np.nan, 1.0]])

    w = PolicyWorker(NaNPolicy)
    w.start(timeout_s=5.0)
    w.submit(_job(1.0))
    _wait(lambda: w.errors == 1)
    assert "non-finite" in w.pop_results()[0].error
    assert w.running
    w.stop()


def test_load_failure_is_reported_by_start():
    def boom():
        raise FileNotFoundError("checkpoint.pt not found")

    w = PolicyWorker(boom)
    with pytest.raises(WorkerError, match="checkpoint.pt not found"):
        w.start(timeout_s=5.0)
    assert not w.running
    with pytest.raises(WorkerError):
        w.submit(_job(1.0))


def test_command_exceptions_reach_the_caller(worker):
    w, _ = worker

    def bad(_policy):
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        w.call(bad)
    assert w.call(lambda p: 42) == 42


def test_prefix_reaches_the_policy_and_it_reports_what_it_honoured():
    class RTCPolicy:
        def __init__(self):
            self.prefixes = []

        def predict(self, frame, instruction, proprio, *, seed=None, prefix=None, prefix_weight=None,
                rtc_mode="inpaint", guidance_beta=5.0):
            self.prefixes.append(prefix)
            return SimpleNamespace(actions=np.zeros((4, 2)), committed_steps=0 if prefix is None else len(prefix))

    m = RTCPolicy()
    w = PolicyWorker(lambda: m)
    w.start(timeout_s=5.0)
    j = _job(1.0)
    j.prefix = np.ones((2, 2))
    w.submit(j)
    _wait(lambda: w.completed == 1)
    (r,) = w.pop_results()
    assert r.committed_steps == 2 and m.prefixes[0].shape == (2, 2)
    w.stop()
