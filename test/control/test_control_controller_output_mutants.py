"""The controller's output path, rule by rule (mutation testing, issue 21): the enable ramp of one group
while another is disabled or already running, the committed prefix the policy's real-time chunking aligns
to (its grid, its length, the plan where a group runs, the rest pose within the limits where it does not),
the published short trajectory (its horizon, its start at the command on a partly measured robot) and a
tick free of floating-point warnings. Short scenarios in simulated time (milliseconds each)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from fastwam_ros.control import Chunk, ChunkController, ControllerConfig
from fastwam_ros.control.synthetic import bimanual_config_dict

STEP = 1 / 30  # the chunks' step period (s)


def _controller(**over):
    cfg = ControllerConfig.from_dict(bimanual_config_dict(arm_joints=2, **over))
    return ChunkController(cfg), cfg


def _pose(cfg, arm):
    """Every arm joint at ``arm`` (rad), every gripper half open."""
    return np.where(["gripper" in n for n in cfg.joint_names], 0.04, arm)


def _still_chunk(cfg, stamp, arm=0.0, h=120):
    return Chunk(stamp_s=stamp, step_period_s=STEP, joint_names=list(cfg.joint_names),
                 positions=np.tile(_pose(cfg, arm), (h, 1)))


def _follow(ctl, t, out):
    """The robot follows: every joint measured at its command of ``out`` (at ``t``)."""
    for g in out.groups.values():
        ctl.update_joint_state(t, g.joint_names, g.positions)


def _s5(x):
    x = np.clip(x, 0.0, 1.0)
    return 10 * x ** 3 - 15 * x ** 4 + 6 * x ** 5


# ------------------------------------------------------------------ the enable ramp, one arm after the other

@pytest.mark.parametrize("horizon", [0.0, 0.1])  # 0: the tick's scalar reference; 0.1: the batched one
@pytest.mark.parametrize("other", ["disabled", "done_ramping"])
def test_an_arm_enabled_alone_ramps_in_whatever_the_arm_before_it_does(other, horizon):
    """The right arm is enabled from a measured pose 0.2 rad off a still plan while the left arm (earlier in
    the group order) is disabled, or has finished its own enable ramp: the right arm's command follows the
    quintic ramp from its measured pose to the plan over enable_ramp_s, not a limited jump."""
    T = 0.5
    ctl, cfg = _controller(enable_ramp_s=T, blend_window_s=0.1, stale_chunk_s=5.0, trajectory_horizon_s=horizon)
    meas = _pose(cfg, -0.2)
    ctl.update_joint_state(0.0, cfg.joint_names, meas)
    assert ctl.submit_chunk(_still_chunk(cfg, 0.0), 0.0).accepted  # arms at 0 for ~4 s
    t_right = 0.0
    if other == "done_ramping":
        ctl.enable(0.0, ["left_arm", "left_gripper"])
        t_right = 0.8  # the left arm's ramp (0.5 s) is over
    n = 0
    for n in range(int(round(t_right / cfg.period_s))):
        _follow(ctl, n * cfg.period_s, ctl.tick(n * cfg.period_s))
    if other == "done_ramping":
        n += 1
        out = ctl.tick(n * cfg.period_s)
        assert out.groups["left_arm"].mode == "running"
        _follow(ctl, n * cfg.period_s, out)
    ctl.enable(n * cfg.period_s, ["right_arm", "right_gripper"])
    t0, ramp_ticks, worst = None, 0, 0.0
    for k in range(n + 1, n + 90):
        t = k * cfg.period_s
        out = ctl.tick(t)
        _follow(ctl, t, out)
        g = out.groups["right_arm"]
        if g.mode == "ramp" and t0 is None:
            t0 = t - cfg.period_s  # the ramp starts one period before its first tick
        if t0 is not None:
            ramp_ticks += g.mode == "ramp"
            want = -0.2 + 0.2 * _s5((t - t0) / T)
            worst = max(worst, float(np.max(np.abs(g.positions - want))))
    assert t0 is not None and ramp_ticks >= 45
    assert worst < 2e-3, worst  # a limited jump to the plan instead is ~0.1 rad off mid-ramp
    assert np.allclose(g.positions, 0.0, atol=1e-9)  # then on the plan


# ------------------------------------------------------------------ no floating-point warnings

@pytest.mark.parametrize("horizon", [0.0, 0.1])
def test_replace_mode_resumes_without_a_ramp_and_without_floating_point_warnings(horizon):
    """``replace`` executes a chunk's first steps, holds, and resumes on the next chunk with no blend-in ramp
    (a zero-length ramp is no ramp: nothing divides by its length). A node ticks at 100 Hz: a floating-point
    warning there would be logged on every tick, so none may be raised (warnings are errors here)."""
    ctl, cfg = _controller(splice_mode="replace", replace_execute_steps=4, enable_ramp_s=0.1,
                           trajectory_horizon_s=horizon)
    ctl.update_joint_state(0.0, cfg.joint_names, _pose(cfg, 0.0))
    ctl.enable(0.0)
    modes = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for k in range(1, 80):
            t = k * cfg.period_s
            if k in (2, 40):  # the second chunk arrives long after the first one's 4 steps ran out
                assert ctl.submit_chunk(_still_chunk(cfg, t, arm=0.1 * (k == 40), h=8), t).accepted
            out = ctl.tick(t)
            _follow(ctl, t, out)
            modes.append((out.groups["left_arm"].mode, out.groups["left_arm"].reason))
            ctl.committed_prefix(t, duration_s=0.3)
    i_hold = modes.index(("hold", "exhausted"))
    assert ("running", None) in modes[i_hold:] and ("ramp", None) not in modes[i_hold:]  # resumed, no ramp


# ------------------------------------------------------------------ the committed prefix

def _moving(slope=0.3, start=0.5, h=120, ticks=30, **over):
    """Enabled, measured at the plan's start, following a chunk whose left arm moves from ``start`` at ``slope``
    rad/s and whose right arm mirrors it (linear: its spline is the line) until past the enable ramp; returns
    (controller, config, now, plan(t))."""
    over.setdefault("enable_ramp_s", 0.1)
    over.setdefault("blend_window_s", 0.05)
    ctl, cfg = _controller(stale_chunk_s=5.0, **over)
    arm = np.array(["gripper" not in n for n in cfg.joint_names])
    side = np.where([n.startswith("left") for n in cfg.joint_names], 1.0, -1.0)

    def plan(t):
        t = np.asarray(t, dtype=float)[..., None]
        return np.where(arm, side * (start + slope * t), 0.04)

    ctl.update_joint_state(0.0, cfg.joint_names, plan(0.0))
    ctl.enable(0.0)
    assert ctl.submit_chunk(Chunk(0.0, STEP, list(cfg.joint_names), plan(STEP * np.arange(h))), 0.0).accepted
    t = 0.0
    for k in range(1, ticks + 1):
        t = k * cfg.period_s
        out = ctl.tick(t)
        _follow(ctl, t, out)
    assert {g.mode for g in out.groups.values()} == {"running"}
    return ctl, cfg, t, plan


def _grid_count(start, end):
    """How many points start + i·STEP lie before ``end`` (s), counted one by one."""
    n = 0
    while start + n * STEP < end - 1e-9:
        n += 1
    return n


@pytest.mark.parametrize("obs_back, dur", [(0.0, None), (0.1, 0.2), (0.0, STEP / 2), (0.0, 0.0), (-0.3, 0.2)])
def test_the_committed_prefix_is_the_plan_on_the_chunk_grid_from_the_observation_to_the_horizon(obs_back, dur):
    """RTC's committed prefix: the newest chunk's step grid from the observation stamp up to (not including)
    ``now + duration`` (default ``rtc_prefix_s``; empty when that end is not after the stamp), the duration
    it covers, and where every group runs, the executing plan at those times (at ``now`` for grid times
    already past), for one point as for many."""
    ctl, cfg, now, plan = _moving()
    obs = now - obs_back
    cp = ctl.committed_prefix(now, obs_stamp_s=obs, duration_s=dur)
    d = cfg.rtc_prefix_s if dur is None else dur
    k = _grid_count(obs, now + d)
    assert (cp.stamp_s, cp.step_period_s, cp.duration_s, cp.num_steps) == (obs, STEP, d, k)
    assert cp.positions.shape == (k, len(cfg.joint_names)) and cp.times_s.shape == (k,)
    np.testing.assert_allclose(cp.times_s, obs + STEP * np.arange(k), rtol=0, atol=1e-12)
    np.testing.assert_allclose(cp.positions, plan(np.maximum(cp.times_s, now)), rtol=0, atol=1e-9)
    if k:
        assert math.isclose(cp.newest_chunk_step[0], obs / STEP, abs_tol=1e-9)  # steps of the chunk stamped 0


def test_where_no_group_runs_the_committed_prefix_is_the_rest_pose_within_the_position_limits():
    """Disabled while each arm moves fast towards a position limit (the left arm up, the right arm down): the
    committed prefix holds, for every point, where the command comes to rest at the hold deceleration,
    never beyond the position range (the plain stopping point lies past it), and the command does stop
    there."""
    ctl, cfg, now, _ = _moving(slope=1.8, start=1.95, h=30, ticks=40)
    out = ctl.tick(now + cfg.period_s)
    now += cfg.period_s
    decel = cfg.hold_decel_fraction * np.array([cfg.limits[n].max_acceleration for n in cfg.joint_names])
    lower = np.array([cfg.limits[n].lower for n in cfg.joint_names])
    upper = np.array([cfg.limits[n].upper for n in cfg.joint_names])
    p = np.concatenate([out.groups[g].positions for g in out.groups])
    v = np.concatenate([out.groups[g].velocities for g in out.groups])
    names = [j for g in out.groups for j in out.groups[g].joint_names]
    order = [names.index(n) for n in cfg.joint_names]
    p, v = p[order], v[order]
    stop = p + v * np.abs(v) / (2 * decel)
    arm = np.array(["gripper" not in n for n in cfg.joint_names])
    assert np.all(stop[arm & (v > 0)] > upper[arm & (v > 0)]) and np.all(stop[arm & (v < 0)] < lower[arm & (v < 0)])
    ctl.disable(now)
    now += cfg.period_s
    cp = ctl.tick(now).committed_prefix
    assert cp.num_steps >= 6 and np.all(cp.positions == cp.positions[0])  # the same rest pose at every point
    assert np.all(cp.positions >= lower) and np.all(cp.positions <= upper)
    for k in range(1, 100):
        out = ctl.tick(now + k * cfg.period_s)
    assert {g.mode for g in out.groups.values()} == {"disabled"}
    final = np.concatenate([out.groups[g].positions for g in out.groups])[order]
    np.testing.assert_allclose(cp.positions[0], final, rtol=0, atol=0.02)


# ------------------------------------------------------------------ the short trajectory

@pytest.mark.parametrize("horizon, points", [(0.005, 1), (0.02, 1), (0.03, 2), (0.1, 5)])
def test_a_holding_trajectory_covers_the_horizon_with_at_least_one_point_and_no_tail(horizon, points):
    """Holding still, the published trajectory is the hold pose at every point period over
    ``trajectory_horizon_s`` (rounded to whole points, at least one), starting one control period after the
    tick, with no braking tail (it is at rest already)."""
    ctl, cfg = _controller(trajectory_horizon_s=horizon, trajectory_point_period_s=0.02)
    ctl.update_joint_state(0.0, cfg.joint_names, _pose(cfg, 0.3))
    for k in range(3):
        out = ctl.tick(k * cfg.period_s)
    for g in out.groups.values():
        tr = g.trajectory
        assert math.isclose(tr.start_stamp_s, 2 * cfg.period_s + cfg.period_s, abs_tol=1e-12)
        np.testing.assert_allclose(tr.time_from_start_s, 0.02 * np.arange(1, points + 1), rtol=0, atol=1e-12)
        assert np.array_equal(tr.positions, np.tile(g.positions, (points, 1)))
        assert np.array_equal(tr.velocities, np.zeros((points, len(g.joint_names))))


def test_on_a_partly_measured_robot_the_trajectory_is_where_the_commands_go():
    """Only the arms have joint states (the grippers publish nothing): each arm's trajectory is the command it
    will send at those times (to the limiter's step size), from where the arm's command is now."""
    ctl, cfg = _controller(stale_chunk_s=5.0, enable_ramp_s=0.1, blend_window_s=0.05, trajectory_horizon_s=0.1)
    arm = np.array(["gripper" not in n for n in cfg.joint_names])
    side = np.where([n.startswith("left") for n in cfg.joint_names], 1.0, -1.0)
    plan = np.where(arm, side * (0.5 + 0.8 * STEP * np.arange(60)[:, None]), 0.04)
    arms = [n for n in cfg.joint_names if "gripper" not in n]
    ctl.update_joint_state(0.0, arms, plan[0, arm])
    ctl.enable(0.0)
    assert ctl.submit_chunk(Chunk(0.0, STEP, list(cfg.joint_names), plan), 0.0).accepted
    commands, trajectories = {}, {}
    for k in range(1, 80):
        out = ctl.tick(k * cfg.period_s)
        assert out.groups["left_gripper"].trajectory is None and out.groups["left_gripper"].positions is None
        commands[k] = {g: out.groups[g].positions for g in ("left_arm", "right_arm")}
        trajectories[k] = {g: out.groups[g].trajectory for g in ("left_arm", "right_arm")}
        ctl.update_joint_state(k * cfg.period_s, arms, np.concatenate(list(commands[k].values())))
    worst = 0.0
    for k in (5, 20, 40, 60):
        for g, tr in trajectories[k].items():
            for t, p in zip(tr.start_stamp_s + tr.time_from_start_s[:5], tr.positions[:5]):
                worst = max(worst, float(np.max(np.abs(p - commands[int(round(t / cfg.period_s))][g]))))
    assert worst < 5e-3, worst  # measured ~1e-3, during the ramp; from 0 instead of the command: ~0.5


def test_the_trajectory_helper_evaluates_the_references_itself_when_not_given_them():
    """``_trajectory``'s ``refs`` only passes on references the tick has already evaluated: called without
    them (for running groups, in and after the ramp) it evaluates the plan itself, to the same trajectory."""
    ctl, cfg = _controller(stale_chunk_s=5.0, enable_ramp_s=0.1, blend_window_s=0.05, trajectory_horizon_s=0.1)
    side = np.where([n.startswith("left") for n in cfg.joint_names], 1.0, -1.0)
    plan = np.where(["gripper" in n for n in cfg.joint_names], 0.04, side * (0.2 + 0.6 * STEP * np.arange(60)[:, None]))
    ctl.update_joint_state(0.0, cfg.joint_names, plan[0])
    ctl.enable(0.0)
    assert ctl.submit_chunk(Chunk(0.0, STEP, list(cfg.joint_names), plan), 0.0).accepted
    for k in range(1, 25):
        t = k * cfg.period_s
        out = ctl.tick(t)
        run = np.zeros(len(cfg.joint_names), dtype=bool)
        for g in out.groups.values():
            run[[cfg.joint_names.index(j) for j in g.joint_names]] = g.mode in ("ramp", "running")
        if k > 2:
            assert run.all()
        again = ctl._trajectory(t, run)
        for name, g in out.groups.items():
            assert again[name].start_stamp_s == g.trajectory.start_stamp_s
            np.testing.assert_allclose(again[name].time_from_start_s, g.trajectory.time_from_start_s, rtol=0, atol=0)
            np.testing.assert_allclose(again[name].positions, g.trajectory.positions, rtol=0, atol=1e-12)
            np.testing.assert_allclose(again[name].velocities, g.trajectory.velocities, rtol=0, atol=1e-12)
        _follow(ctl, t, out)
