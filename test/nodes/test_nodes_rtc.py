"""Real-time chunking glue: the controller's committed prefix is aligned to the new chunk's step grid and
reaches the real (tiny) policy through the worker thread."""

from __future__ import annotations

import time

import numpy as np
import pytest

from fastwam_ros.runtime.policy_runtime import PrefixState, align_prefix
from fastwam_ros.runtime.worker import InferenceJob, PolicyWorker


def test_alignment_interpolates_onto_the_chunk_grid_and_frees_past_steps():
    dt = 0.1
    pos = np.stack([np.arange(5) * 1.0, np.arange(5) * -2.0], axis=1)  # linear in time: easy to check
    pre = PrefixState(stamp_s=10.0, positions=pos, received_s=10.0, step_period_s=dt)  # rows at 10.0 .. 10.4
    positions, weights = align_prefix(pre, obs_stamp_s=9.85, step_period_s=dt)
    t = 9.85 + dt * np.arange(len(positions))
    assert t[-1] <= 10.4 + 1e-9 < t[-1] + dt  # up to the end of the committed window
    inside = t >= 10.0
    np.testing.assert_array_equal(weights, inside.astype(float))  # 9.85, 9.95 already executed: free
    np.testing.assert_allclose(positions[inside, 0], (t[inside] - 10.0) / dt)
    np.testing.assert_allclose(positions[inside, 1], -2.0 * (t[inside] - 10.0) / dt)
    # an observation newer than the whole committed window gets no prefix
    assert align_prefix(pre, obs_stamp_s=10.5, step_period_s=dt) is None
    # a different chunk step period resamples
    p2, w2 = align_prefix(pre, obs_stamp_s=10.0, step_period_s=0.2)
    np.testing.assert_allclose(p2[:, 0], [0.0, 2.0, 4.0])
    np.testing.assert_array_equal(w2, 1.0)


@pytest.mark.parametrize("weights", [None, "half"])
def test_worker_passes_the_prefix_to_the_real_policy(weights):
    from fastwam_ros.model.config import load_config
    from fastwam_ros.model.inference.policy import FastWAMPolicy

    cfg = load_config("tiny")
    cfg.flow.num_inference_steps = 2
    worker = PolicyWorker(lambda: FastWAMPolicy.from_config(cfg, seed=0), instruction="fold the towel", warmup=False)
    worker.start(timeout_s=60.0)
    try:
        g = np.random.default_rng(0)
        frame = g.uniform(-1, 1, (3, cfg.policy.image_height, cfg.policy.image_width)).astype(np.float32)
        proprio = g.normal(size=cfg.proprio_dim)
        prefix = g.normal(size=(6, cfg.action_dim))
        w = None if weights is None else np.array([0, 0, 1, 1, 1, 1.0])
        worker.submit(InferenceJob(frame, proprio, 1.0, "fold the towel", prefix=prefix, prefix_weight=w,
                                   submitted_perf_s=time.perf_counter()))
        deadline = time.monotonic() + 60.0
        results = []
        while not results and time.monotonic() < deadline:
            results = worker.pop_results()
            time.sleep(0.01)
        assert results and results[0].ok, results and results[0].error
        r = results[0]
        assert r.committed_steps == (6 if w is None else 4)
        enforced = slice(0, 6) if w is None else slice(2, 6)
        np.testing.assert_allclose(r.actions[enforced], prefix[enforced], atol=1e-4)
    finally:
        worker.stop(timeout_s=10.0)
