"""Real-time chunking glue: the controller publishes its whole remaining plan, the policy runtime aligns it to
the new chunk's step grid, estimates the delay from measured latency, weights the overlap, and the request
reaches the real (tiny) policy through the worker thread."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from fastwam_ros.runtime.policy_runtime import DelayEstimator, PrefixState, align_plan, rtc_request
from fastwam_ros.runtime.worker import InferenceJob, PolicyWorker


def test_plan_alignment_interpolates_onto_the_chunk_grid_and_marks_unknown_past_steps():
    dt = 0.1
    pos = np.stack([np.arange(5) * 1.0, np.arange(5) * -2.0], axis=1)  # linear in time: easy to check
    pre = PrefixState(stamp_s=10.0, positions=pos, received_s=10.0, step_period_s=dt)  # rows at 10.0 .. 10.4
    positions, known = align_plan(pre, obs_stamp_s=9.85, step_period_s=dt)
    t = 9.85 + dt * np.arange(len(positions))
    assert t[-1] <= 10.4 + 1e-9 < t[-1] + dt  # up to the end of the plan
    np.testing.assert_array_equal(known, t >= 10.0)  # 9.85, 9.95: before the plan's first row
    np.testing.assert_allclose(positions[known, 0], (t[known] - 10.0) / dt)
    np.testing.assert_allclose(positions[known, 1], -2.0 * (t[known] - 10.0) / dt)
    assert len(align_plan(pre, obs_stamp_s=9.85, step_period_s=dt, horizon=3)[0]) == 3
    # an observation newer than the whole plan gets nothing
    assert align_plan(pre, obs_stamp_s=10.5, step_period_s=dt) is None
    # a different chunk step period resamples
    p2, k2 = align_plan(pre, obs_stamp_s=10.0, step_period_s=0.2)
    np.testing.assert_allclose(p2[:, 0], [0.0, 2.0, 4.0])
    assert k2.all()


def test_delay_is_a_latency_percentile_in_steps():
    est = DelayEstimator(percentile=50.0, window=3, margin_s=0.02)
    dt = 0.05
    assert est.delay_steps(dt, fallback_s=0.1) == 3  # no measurement: (0.1 + 0.02) / 0.05 = 2.4 -> 3
    for lat in (0.5, 0.11, 0.12, 0.13):  # the window keeps the last 3: median 0.12
        est.add(lat)
    assert est.samples == 3 and est.latency_s() == pytest.approx(0.12)
    assert est.delay_steps(dt) == 3  # (0.12 + 0.02) / 0.05 = 2.8 -> 3
    est.add(0.2)  # window 0.12, 0.13, 0.2: median 0.13 -> (0.15) / 0.05 = 3 exactly
    assert est.delay_steps(dt) == 3
    est.add(float("nan"))  # ignored
    assert est.samples == 3
    hi = DelayEstimator(percentile=100.0, window=10, margin_s=0.0)
    for lat in (0.1, 0.3, 0.2):
        hi.add(lat)
    assert hi.delay_steps(0.1) == 3


def test_rtc_request_uses_the_soft_schedule_over_the_known_overlap():
    from fastwam_ros.model.network.rtc import rtc_weights

    dt = 0.1
    pre = PrefixState(stamp_s=10.0, positions=np.zeros((10, 2)), received_s=10.0, step_period_s=dt)
    positions, w = rtc_request(pre, obs_stamp_s=9.85, step_period_s=dt, delay_steps=4)
    overlap = len(positions)  # steps 9.85 .. 10.85
    assert overlap == 11
    expected = rtc_weights(overlap, 4, overlap, "soft")
    expected[:2] = 0.0  # 9.85 and 9.95 precede the plan: no data, left free
    np.testing.assert_allclose(w, expected)
    _, w_hard = rtc_request(pre, obs_stamp_s=9.85, step_period_s=dt, delay_steps=4, mask="hard")
    np.testing.assert_array_equal(w_hard, [0, 0, 1, 1] + [0] * 7)


def test_policy_runtime_sends_plan_weights_and_reports_mode():
    """The runtime aligns the executing plan, estimates d from the measured latency and publishes mode and the
    number of hard-constrained steps with the chunk."""
    from types import SimpleNamespace

    from fastwam_ros.model.network.rtc import rtc_weights

    seen = []

    class Recorder:
        def predict(self, frame, instruction, proprio, seed=None, prefix=None, prefix_weight=None,
                    rtc_mode="inpaint", guidance_beta=5.0):
            seen.append((prefix, prefix_weight, rtc_mode))
            w = np.zeros(0) if prefix is None else np.asarray(prefix_weight)
            return SimpleNamespace(actions=np.zeros((8, 2)), timing_s={}, committed_steps=int((w >= 1).sum()),
                                   guided_steps=int((w > 0).sum()), rtc_mode=rtc_mode if len(w) else "off")

    rt, worker, obs = _fake_runtime(Recorder, rtc_mode="guided", rtc_delay_percentile=100.0, rtc_delay_margin_s=0.0)
    cfg = rt.cfg
    try:
        rt.on_committed_prefix(10.0, ["b", "a"], np.zeros((10, 2)), now_s=10.0)
        obs["stamp"] = 10.0
        assert rt.step(10.05)  # no latency measured yet: d from the observation's age, ceil(0.05 / 0.1) = 1
        _wait(lambda: worker.completed == 1)
        (out,) = rt.collect(10.33)  # end-to-end latency 0.33 s -> next d = 4
        prefix, weight, mode = seen[0]
        assert mode == "guided" and len(prefix) == 10
        np.testing.assert_allclose(weight, rtc_weights(10, 1, 10))
        assert (out.chunk.rtc_mode, out.chunk.committed_steps, out.chunk.guided_steps) == ("guided", 1, 10)
        obs["stamp"] = 10.2
        rt.on_committed_prefix(10.3, ["a", "b"], np.zeros((8, 2)), now_s=10.3, chunk_id=None)
        assert not rt.step(10.34) and rt.waiting_for_plan(10.34)  # this plan may predate chunk 0: wait for it
        assert not rt.waiting_for_plan(10.33 + cfg.rtc_plan_wait_s + 1e-6)  # ... at most rtc_plan_wait_s
        rt.on_committed_prefix(10.3, ["a", "b"], np.zeros((8, 2)), now_s=10.34, chunk_id=0)
        assert rt.step(10.35)
        _wait(lambda: worker.completed == 2)
        (out,) = rt.collect(10.6)
        prefix, weight, _ = seen[1]
        assert len(prefix) == 9  # 10.2 .. 11.0
        expected = rtc_weights(9, 4, 9)
        expected[0] = 0.0  # 10.2 precedes the plan's first row (10.3)
        np.testing.assert_allclose(weight, expected)
        assert out.chunk.committed_steps == 3 and rt.last_delay_steps == 4
        rt.cfg.rtc_mode = "off"
        obs["stamp"] = 10.4
        assert rt.step(10.45)
        _wait(lambda: worker.completed == 3)
        (out,) = rt.collect(10.6)
        assert seen[2][0] is None and out.chunk.rtc_mode == "off" and out.chunk.committed_steps == 0
    finally:
        worker.stop()


def _wait(pred, timeout=10.0):
    t0 = time.monotonic()
    while not pred():
        assert time.monotonic() - t0 < timeout
        time.sleep(0.002)


def _fake_runtime(policy_cls, **cfg_kw):
    """A PolicyRuntime over a worker running ``policy_cls`` and a pipeline whose next observation is stamped
    ``obs["stamp"]`` (joints a, b; 0.1 s steps): (runtime, started worker, obs)."""
    from types import SimpleNamespace

    from fastwam_ros.runtime.policy_runtime import PolicyRuntime, PolicyRuntimeConfig

    obs = {"stamp": 0.0}
    pipeline = SimpleNamespace(poll=lambda now: SimpleNamespace(frame=np.zeros((3, 2, 2), np.float32),
                                                                stamp_s=obs["stamp"], proprio=None))
    cfg = PolicyRuntimeConfig(joint_names=["a", "b"], arms={}, step_period_s=0.1, markers=False, **cfg_kw)
    worker = PolicyWorker(policy_cls)
    worker.start(timeout_s=5.0)
    return PolicyRuntime(cfg, pipeline, worker, instruction="x", enabled=True), worker, obs


def test_controller_publishes_the_whole_remaining_plan():
    from fastwam_ros.robot import load_robot
    from fastwam_ros.runtime.chunks import chunk_fields
    from fastwam_ros.runtime.controller_runtime import ControllerRuntime
    from fastwam_ros.runtime.params import load_node_parameters, resolve
    from fastwam_ros.runtime.schemas import CONTROLLER_SCHEMA

    towel = Path(__file__).resolve().parents[2] / "config" / "towel_fold.yaml"
    rt = ControllerRuntime(resolve(CONTROLLER_SCHEMA, load_node_parameters(towel, "controller_node"), strict=True),
                           load_robot("towel_fold_bimanual"))
    names = list(rt.config.joint_names)
    q = np.full(len(names), 0.1)
    t = 10.0
    rt.on_joint_state(t, names, q, t)
    rt.tick(t)
    dt = 1 / 30
    f = chunk_fields(np.full((32, len(names)), 0.1), names, stamp_s=t, chunk_id=3, step_period_s=dt)
    assert rt.on_chunk(t, stamp=f.stamp, chunk_id=3, step_period_s=dt, joint_names=names, num_steps=32,
                       positions=f.positions, velocities=f.velocities) is None
    plans = []
    while t < 10.5:
        t += 0.01
        rt.on_joint_state(t, names, q, t)
        out = rt.tick(t)
        if out.prefix is not None:
            plans.append((t, out.prefix))
    assert len(plans) >= 8  # ~20 Hz
    now, plan = plans[-1]
    chunk_end = 10.0 + 31 * dt
    start = plan.stamp[0] + plan.stamp[1] * 1e-9
    assert start == pytest.approx(now, abs=1e-6)  # starts now ...
    last = start + (plan.num_steps - 1) * plan.step_period_s
    assert last <= chunk_end + plan.step_period_s and last + plan.step_period_s >= chunk_end - 1e-6  # ... to the end
    assert plan.num_steps > int(np.ceil(rt.config.rtc_prefix_s / dt)) + 1  # more than the committed part
    assert plan.rtc_mode == "plan" and plan.guided_steps == plan.num_steps and plan.chunk_id == 3
    assert plan.committed_steps == int(np.ceil(rt.config.rtc_prefix_s / dt - 1e-9))
    np.testing.assert_allclose(plan.positions_array(), 0.1, atol=1e-9)


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


def _prefix_recorder(seen: list):
    """A policy class whose predict records the RTC prefix it was given (None: no guidance) in ``seen``."""
    from types import SimpleNamespace

    class Recorder:
        def predict(self, frame, instruction, proprio, seed=None, prefix=None, prefix_weight=None,
                    rtc_mode="inpaint", guidance_beta=5.0):
            seen.append(prefix)
            return SimpleNamespace(actions=np.zeros((32, 2)), timing_s={}, committed_steps=0, guided_steps=0,
                                   rtc_mode="off")

    return Recorder


def test_an_executing_plan_from_before_a_clock_reset_is_not_used_for_guidance():
    """The controller's plan was received at 10.0 s; the clock then went back (bag loop, simulator reset). Its
    rows (10.0-13.9 s) would overlap the next chunk's steps in the new time base and steer it towards a plan of
    the old one. Back by more than ``clock_jump_threshold_s`` (1 s): a new time base, the plan is dropped with
    the old base's state (one notice); back by less (0.7 s, a late clock): the plan received "later" than now is
    stale (``prefix:stale``). Either way it is not guidance until a plan of the new time base arrives."""
    seen: list = []
    Recorder = _prefix_recorder(seen)

    for back_s, stale, notices in ((1.35, 0, 1), (0.7, 1, 0)):
        seen.clear()
        rt, worker, obs = _fake_runtime(Recorder, rtc_mode="guided", rtc_delay_percentile=100.0,
                                        rtc_delay_margin_s=0.0, clock_jump_threshold_s=1.0)
        try:
            rt.on_committed_prefix(10.0, ["a", "b"], np.zeros((40, 2)), now_s=10.0)
            now = 10.0 - back_s
            obs["stamp"] = now - 0.05
            assert rt.step(now)
            _wait(lambda: worker.completed == 1)  # noqa: B023 - waited on at once
            assert seen == [None], back_s
            assert rt.rejections.as_dict().get("prefix:stale", 0) == stale, back_s
            assert len(rt.pop_notices()) == notices, back_s
            rt.collect(now + 0.15)
            rt.on_committed_prefix(now + 0.65, ["a", "b"], np.zeros((40, 2)), now_s=now + 0.75, chunk_id=0)
            obs["stamp"] = now + 0.75  # a plan of the new time base: guidance again
            assert rt.step(now + 0.8)
            _wait(lambda: worker.completed == 2)  # noqa: B023
            assert seen[1] is not None and len(seen[1]) > 0, back_s
        finally:
            worker.stop()


def test_a_plan_of_the_new_time_base_that_arrives_before_the_policys_first_step_is_kept():
    """The clock went back 3 s and the controller's first plan of the new time base reached the policy before the
    policy's own timer ran in the new base: that plan is guidance for the next replan (it is not dropped with the
    old base's state when the policy's step notices the reset), and the reset is logged once."""
    seen: list = []
    Recorder = _prefix_recorder(seen)

    rt, worker, obs = _fake_runtime(Recorder, rtc_mode="guided", rtc_delay_percentile=100.0, rtc_delay_margin_s=0.0,
                                    clock_jump_threshold_s=1.0)
    try:
        rt.on_committed_prefix(12.0, ["a", "b"], np.zeros((40, 2)), now_s=12.0, chunk_id=0)
        obs["stamp"] = 11.95
        assert rt.step(12.05)
        _wait(lambda: worker.completed == 1)
        rt.collect(12.1)
        assert seen[0] is not None  # the old base's plan guided the old base's replan
        # the clock goes back 3 s; the controller's plan of the new base arrives first ...
        rt.on_committed_prefix(9.0, ["a", "b"], np.full((40, 2), 0.5), now_s=9.0, chunk_id=0)
        obs["stamp"] = 8.95
        assert rt.step(9.05)  # ... then the policy's step: it guides the replan
        _wait(lambda: worker.completed == 2)
        assert seen[1] is not None and len(seen[1]) > 0
        np.testing.assert_array_equal(seen[1], 0.5)
        assert "prefix:stale" not in rt.rejections.as_dict()
        assert len(rt.pop_notices()) == 1
    finally:
        worker.stop()


def test_policy_runtime_starts_over_when_the_clock_goes_back():
    """After a clock reset the trigger submits the new time base's observations at once (their stamps are below
    the last submitted one), a result from before the reset not yet collected is dropped (``chunk:before_reset``:
    it was observed in the old time base), and one line is logged. A late call (less than the threshold back) changes nothing."""
    from types import SimpleNamespace

    class Zeros:
        def predict(self, frame, instruction, proprio, seed=None, prefix=None, prefix_weight=None,
                    rtc_mode="inpaint", guidance_beta=5.0):
            return SimpleNamespace(actions=np.zeros((32, 2)), timing_s={}, committed_steps=0, guided_steps=0,
                                   rtc_mode="off")

    rt, worker, obs = _fake_runtime(Zeros, rtc_mode="off", clock_jump_threshold_s=1.0)
    try:
        obs["stamp"] = 10.0
        assert rt.step(10.05)
        _wait(lambda: worker.completed == 1)
        assert len(rt.collect(10.2)) == 1
        obs["stamp"] = 9.5
        assert not rt.step(9.6) and rt.pop_notices() == []  # 0.6 s back: a late call, the old stamp still holds
        obs["stamp"] = 10.3
        assert rt.step(10.35)
        _wait(lambda: worker.completed == 2)  # finished, not yet collected ...
        obs["stamp"] = 7.0
        assert rt.step(7.05)  # ... when the clock goes back 3.3 s: the new stamp is submitted at once
        _wait(lambda: worker.completed == 3)
        out = rt.collect(7.2)
        assert [o.chunk.stamp for o in out] == [(7, 0)]
        assert rt.rejections.as_dict()["chunk:before_reset"] == 1
        notices = rt.pop_notices()
        assert len(notices) == 1 and "went back 3.300 s" in notices[0] and rt.pop_events() == []
        inference = {d.name: d for d in rt.diagnostics(7.2, active=True)}["inference"]
        assert dict(inference.values)["clock resets (time base changes)"] == "1"
    finally:
        worker.stop()
