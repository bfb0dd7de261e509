"""The executing plan computed by the tick (``tick(with_prefix=True, prefix_through_plan=True)``, one evaluation of
the plan for the setpoint, the trajectory and the prefix) is the prefix ``committed_prefix`` computes after the
tick, and asking for it changes nothing else the tick returns (issue 14: the tick cost in trajectory mode)."""

from __future__ import annotations

import numpy as np
import pytest

from fastwam_ros.control import Chunk, ChunkController, ControllerConfig
from fastwam_ros.control.synthetic import bimanual_config_dict, chunk_stream


def _flood_chunk(rng: np.random.Generator, names, now: float, n: int) -> Chunk:
    """A chunk every tick, 2..128 steps, jumps the limiter clamps (the benchmark's adversarial stream, without
    the garbage)."""
    h = int(rng.integers(2, 129))
    pos = rng.uniform(-2, 2, size=len(names)) + np.cumsum(rng.normal(0, 0.3, size=(h, len(names))), axis=0)
    return Chunk(stamp_s=now - float(rng.uniform(0.0, 0.2)), step_period_s=1 / 30, joint_names=names,
                 positions=pos, chunk_id=n)


def _pair(mode: str):
    cfg = ControllerConfig.from_dict(bimanual_config_dict(control_rate_hz=100.0, splice_mode=mode,
                                                          replace_execute_steps=8))
    return cfg, ChunkController(cfg), ChunkController(cfg)


def _same_output(a, b) -> None:
    assert a.plan_active == b.plan_active and a.plan_reason == b.plan_reason
    for name, ga in a.groups.items():
        gb = b.groups[name]
        assert (ga.mode, ga.reason) == (gb.mode, gb.reason)
        for x, y in ((ga.positions, gb.positions), (ga.velocities, gb.velocities),
                     (ga.accelerations, gb.accelerations)):
            np.testing.assert_array_equal(x, y)
        assert (ga.trajectory is None) == (gb.trajectory is None)
        if ga.trajectory is not None:
            np.testing.assert_array_equal(ga.trajectory.positions, gb.trajectory.positions)
            np.testing.assert_array_equal(ga.trajectory.velocities, gb.trajectory.velocities)


@pytest.mark.parametrize("mode", ["splice", "ensemble", "replace"])
@pytest.mark.parametrize("stream", ["normal", "flood"])
@pytest.mark.parametrize("with_trajectory", [True, False])
def test_the_tick_computes_the_executing_plan_committed_prefix_would(mode, stream, with_trajectory):
    cfg, ref, fused = _pair(mode)
    names = cfg.joint_names
    grip = tuple(i for i, n in enumerate(names) if "gripper" in n)
    events, truth = chunk_stream(names, 3.0, seed=1, gripper_cols=grip)
    rng = np.random.default_rng(2)
    for c in (ref, fused):
        c.update_joint_state(0.0, names, truth(0.0)[0])
        c.enable(0.0)
    ev, compared, running = 0, 0, 0
    for n in range(300):
        t = (n + 1) * 0.01
        chunks = []
        if stream == "flood":
            chunks.append(_flood_chunk(rng, names, t, n))
        while stream == "normal" and ev < len(events) and events[ev].arrival_s <= t:
            chunks.append(events[ev].chunk)
            ev += 1
        for ch in chunks:
            assert ref.submit_chunk(ch, t).accepted == fused.submit_chunk(ch, t).accepted
        due = n % 5 == 0
        a = ref.tick(t, with_trajectory=with_trajectory, with_prefix=False)
        b = fused.tick(t, with_trajectory=with_trajectory, with_prefix=due, prefix_duration_s=cfg.rtc_prefix_s,
                       prefix_through_plan=True)
        _same_output(a, b)
        if due:
            horizon = max(cfg.rtc_prefix_s, a.metrics.plan_depth_s if a.plan_active else 0.0)
            want = ref.committed_prefix(t, duration_s=horizon)
            got = b.committed_prefix
            assert got is not None and got.num_steps == want.num_steps and got.duration_s == want.duration_s
            np.testing.assert_array_equal(got.times_s, want.times_s)
            np.testing.assert_allclose(got.positions, want.positions, rtol=0, atol=1e-12)
            np.testing.assert_array_equal(got.newest_chunk_step, want.newest_chunk_step)
            compared += 1
            running += a.plan_active and got.num_steps > int(np.ceil(cfg.rtc_prefix_s * 30))
        else:
            assert b.committed_prefix is None
        p = np.concatenate([a.groups[g.name].positions for g in cfg.groups])
        for c in (ref, fused):
            c.update_joint_state(t, names, p)
    assert compared == 60
    if mode != "replace" or stream == "normal":
        assert running > 0  # some prefixes reached past rtc_prefix_s along a running plan


def test_without_through_plan_the_tick_prefix_has_the_asked_duration():
    cfg, ref, fused = _pair("splice")
    names = cfg.joint_names
    for c in (ref, fused):
        c.update_joint_state(0.0, names, np.zeros(len(names)))
        c.enable(0.0)
        c.submit_chunk(Chunk(stamp_s=0.0, step_period_s=1 / 30, joint_names=names,
                             positions=np.linspace(0, 0.5, 32)[:, None] * np.ones(len(names))), 0.0)
    for n in range(1, 60):
        ref.tick(n * 0.01, with_prefix=False)
        fused.tick(n * 0.01, with_prefix=False)
    b = fused.tick(0.6, with_prefix=True, prefix_duration_s=0.1)
    ref.tick(0.6, with_prefix=False)
    want = ref.committed_prefix(0.6, duration_s=0.1)
    assert b.committed_prefix.num_steps == want.num_steps == 3
    np.testing.assert_allclose(b.committed_prefix.positions, want.positions, rtol=0, atol=1e-12)
    default = fused.tick(0.61, with_prefix=True).committed_prefix
    assert default.duration_s == cfg.rtc_prefix_s


@pytest.mark.parametrize("kind", ["ensemble", "chain"])
def test_velocities_at_the_first_rows_only_equal_the_full_evaluation(kind):
    """``eval_pv_many(..., velocity_rows=n)`` (what the tick asks for when it evaluates the prefix with its own
    reference): the same positions at every time and the same velocities at the first n times, for the tick's
    time layout (now, the trajectory's times, then the prefix grid from now again)."""
    from fastwam_ros.control.plan import (
        BlendSource,
        ChunkSpline,
        EnsembleMember,
        EnsembleSource,
        eval_pv_many,
    )

    rng = np.random.default_rng(0)
    splines = [ChunkSpline(0.05 * i, 1 / 30, rng.normal(size=(int(rng.integers(1, 40)), 4))) for i in range(6)]
    if kind == "ensemble":
        src = EnsembleSource([EnsembleMember(s, -0.3 * i, s.t0 + 0.02, s.end_s) for i, s in enumerate(splines)],
                             0.15, 4)
    else:
        src = splines[0]
        for s in splines[1:]:
            src = BlendSource(src, s, s.t0 + 0.02, 0.3)
    for now in (0.1, 0.3, 0.5, 1.2):  # inside the blends, after some, after all
        ts = np.concatenate(([now], now + 0.01 + 0.02 * np.arange(11), now + np.arange(60) / 30))
        P, V = eval_pv_many(src, ts)
        for nv in (0, 1, 12, 40, ts.shape[0], 500):
            Pn, Vn = eval_pv_many(src, ts, velocity_rows=nv)
            np.testing.assert_array_equal(Pn, P)
            np.testing.assert_array_equal(Vn[: min(nv, ts.shape[0])], V[: min(nv, ts.shape[0])])
            assert Vn.shape == V.shape


def test_ensemble_velocities_at_the_first_rows_only_equal_the_full_evaluation():
    from fastwam_ros.control.plan import ChunkSpline, EnsembleMember, EnsembleSource, eval_pv_many

    rng = np.random.default_rng(0)
    splines = [ChunkSpline(0.1 * i, 1 / 30, rng.normal(size=(int(rng.integers(1, 40)), 4))) for i in range(6)]
    src = EnsembleSource([EnsembleMember(s, -0.3 * i, s.t0 + 0.02, s.end_s) for i, s in enumerate(splines)],
                         0.15, 4)
    ts = np.sort(rng.uniform(-0.2, 2.0, 90))
    P, V = eval_pv_many(src, ts)
    for nv in (0, 1, 7, 90, 200):
        Pn, Vn = eval_pv_many(src, ts, velocity_rows=nv)
        np.testing.assert_array_equal(Pn, P)
        k = min(nv, ts.shape[0])
        np.testing.assert_array_equal(Vn[:k], V[:k])
        covered = np.flatnonzero(np.abs(V[k:]).sum(axis=1) > 0)
        if covered.size:  # rows after them are not computed (those no member covers come from eval)
            assert not np.array_equal(Vn[k:], V[k:])


@pytest.mark.parametrize("with_trajectory", [True, False])
@pytest.mark.parametrize("mode", ["splice", "ensemble"])
def test_a_tick_evaluates_the_plan_once_for_setpoint_trajectory_and_prefix(monkeypatch, mode, with_trajectory):
    """The point of computing the prefix in the tick: one batched evaluation of the plan per tick (no scalar
    evaluation of the setpoint, no second pass for the trajectory or the prefix), whatever is asked for."""
    cfg, ctl, _ = _pair(mode)
    names = cfg.joint_names
    rng = np.random.default_rng(5)
    ctl.update_joint_state(0.0, names, np.zeros(len(names)))
    ctl.enable(0.0)
    calls = {"many": 0, "scalar": 0}
    many, scalar = ChunkController._reference_many, ChunkController._reference

    def count_many(self, *a, **k):
        calls["many"] += 1
        return many(self, *a, **k)

    def count_scalar(self, *a, **k):
        calls["scalar"] += 1
        return scalar(self, *a, **k)

    monkeypatch.setattr(ChunkController, "_reference_many", count_many)
    monkeypatch.setattr(ChunkController, "_reference", count_scalar)
    checked = 0
    for n in range(200):
        t = (n + 1) * 0.01
        ctl.submit_chunk(_flood_chunk(rng, names, t, n), t)
        calls.update(many=0, scalar=0)
        out = ctl.tick(t, with_trajectory=with_trajectory, with_prefix=True, prefix_through_plan=True)
        if out.plan_active and any(g.mode in ("running", "ramp") for g in out.groups.values()):
            assert calls == {"many": 1, "scalar": 0}, (n, calls)
            assert out.committed_prefix.num_steps > 0
            checked += 1
        ctl.update_joint_state(t, names, np.concatenate([out.groups[g.name].positions for g in cfg.groups]))
    assert checked > 100


@pytest.mark.parametrize("first", ["left", "right"])
def test_the_scalar_and_the_batched_reference_agree_while_groups_ramp_in(first):
    """A position-mode tick without the prefix (4 of 5 control periods of ``ControllerRuntime`` in position mode)
    takes the scalar ``_reference``; with the prefix it takes the batched one. While one side's groups ramp in
    (enabled after the other side, or alone) the two give the same setpoints: the enable ramp applies to the
    ramping groups whatever the groups before them do (not running, or past their own ramp)."""
    cfg = ControllerConfig.from_dict(bimanual_config_dict(control_rate_hz=100.0, enable_ramp_s=0.6))
    scalar, batched = ChunkController(cfg), ChunkController(cfg)  # (a ramp of 1 s would hide a * for a /)
    names = cfg.joint_names
    target = np.linspace(-0.4, 0.4, len(names))
    second = "right" if first == "left" else "left"
    for c in (scalar, batched):
        c.update_joint_state(0.0, names, np.zeros(len(names)))
        c.enable(0.0, [f"{first}_arm", f"{first}_gripper"])
    ramping = 0
    for n in range(1, 400):
        t = n * 0.01
        if n % 10 == 1:
            ch = Chunk(stamp_s=t, step_period_s=1 / 30, joint_names=names,
                       positions=target + 0.05 * np.sin(t + np.arange(32)[:, None] / 30), chunk_id=n)
            for c in (scalar, batched):
                assert c.submit_chunk(ch, t).accepted
        if n == 150:
            for c in (scalar, batched):
                c.enable(t, [f"{second}_arm", f"{second}_gripper"])
        a = scalar.tick(t, with_trajectory=False, with_prefix=False)
        b = batched.tick(t, with_trajectory=False, with_prefix=True)
        ramping += any(g.mode == "ramp" for g in a.groups.values())
        for g in cfg.groups:
            np.testing.assert_allclose(a.groups[g.name].positions, b.groups[g.name].positions, rtol=0, atol=1e-12)
            np.testing.assert_allclose(a.groups[g.name].velocities, b.groups[g.name].velocities, rtol=0,
                                       atol=1e-10)
        p = np.concatenate([a.groups[g.name].positions for g in cfg.groups])
        for c in (scalar, batched):
            c.update_joint_state(t, names, p)
    assert ramping > 50
