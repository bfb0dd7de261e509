"""Chunk intake and state changes of the controller, rule by rule (mutation testing, issue 21): the text of
each rejection the operator reads, the inclusive/exclusive edges of the stamp and step-period checks, the seam
and acceptance counters the diagnostics publish, replace mode's single-step plan, the gripper post-processing of
chunk velocities, where an e-stopped command comes to rest, and the ensemble weights at wall-clock stamps.
Short scenarios in simulated time (milliseconds each)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastwam_ros.control import Chunk, ChunkController, ControllerConfig
from fastwam_ros.control.plan import ChunkSpline
from fastwam_ros.control.synthetic import bimanual_config_dict

DT = 1 / 30
ARM_AMAX, GRIP_AMAX = 8.0, 2.0  # bimanual_config_dict's max_acceleration (rad/s², m/s²)


def make(groups=None, **over):
    over.setdefault("trajectory_horizon_s", 0.0)
    d = bimanual_config_dict(arm_joints=2, **over)
    if groups is not None:
        groups(d["groups"])
    cfg = ControllerConfig.from_dict(d)
    return ChunkController(cfg), cfg


def is_arm(cfg):
    return np.array(["gripper" not in n for n in cfg.joint_names])


def home(cfg, arm=0.0, grip=0.04):
    return np.where(is_arm(cfg), arm, grip)


def chunk(cfg, stamp, h=32, value=None, dt=DT, **kw):
    pos = np.tile(home(cfg), (h, 1)) if value is None else np.asarray(value, dtype=float)
    return Chunk(stamp_s=stamp, step_period_s=dt, joint_names=list(cfg.joint_names), positions=pos, **kw)


def started(t=0.0, groups=None, meas=None, **over):
    ctl, cfg = make(groups, **over)
    ctl.update_joint_state(t, cfg.joint_names, home(cfg) if meas is None else meas)
    ctl.enable(t)
    ctl.tick(t)
    return ctl, cfg


def _case(kind, cfg):
    """(chunk, now_s, reason, detail) for one rejection; the detail is the text of the rule's message."""
    names = list(cfg.joint_names)
    if kind == "bad_time":
        return chunk(cfg, 0.9), float("nan"), "bad_time", "now_s=nan is not a finite number"
    if kind == "bad_type":
        return {"stamp_s": 0.9}, 1.0, "bad_type", "expected Chunk, got dict"
    if kind == "bad_stamp":
        return chunk(cfg, math.inf), 1.0, "bad_stamp", "stamp_s=inf is not a finite number"
    if kind == "bad_step_period":
        return chunk(cfg, 0.9, dt=0.0), 1.0, "bad_step_period", "step_period_s=0.0 not in (0, 1.0]"
    if kind == "too_long":
        return chunk(cfg, 0.9, h=129), 1.0, "too_long", "129 steps > max_chunk_steps=128"
    if kind == "velocity_shape":
        c = chunk(cfg, 0.9, velocities=np.zeros((31, len(names))))
        return c, 1.0, "bad_shape", "velocities shape (31, 6) != positions shape (32, 6)"
    if kind == "unknown_joint":  # the first five unknown names, in the chunk's order
        extra = [f"x{k}" for k in range(7)]
        c = Chunk(0.9, DT, extra, np.zeros((32, 7)))
        return c, 1.0, "unknown_joint", "unknown joints ['x0', 'x1', 'x2', 'x3', 'x4']"
    if kind == "missing_joint":  # the first five missing names, in the robot's joint order
        c = Chunk(0.9, DT, [], np.zeros((32, 0)))
        return c, 1.0, "missing_joint", f"missing joints {names[:5]}"
    if kind == "stale_chunk":
        return chunk(cfg, 0.25), 2.0, "stale_chunk", "observation is 1.750 s old (stale_chunk_s=1.5)"
    if kind == "expired":  # one step at 0.99 s; the hand-off is now + margin = 1.02 s
        return chunk(cfg, 0.99, h=1), 1.0, "expired", "chunk ends at 0.990000, before the hand-off 1.020000"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["bad_time", "bad_type", "bad_stamp", "bad_step_period", "too_long",
                                  "velocity_shape", "unknown_joint", "missing_joint", "stale_chunk", "expired"])
def test_each_rejection_reason_is_counted_once_with_its_operator_text(kind):
    """The runtime logs ``chunk N rejected: <reason> (<detail>)``: the detail names the offending value."""
    ctl, cfg = started()
    c, now, reason, detail = _case(kind, cfg)
    r = ctl.submit_chunk(c, now)
    assert (r.accepted, r.reason, r.detail, r.handoff_s) == (False, reason, detail, None)
    assert ctl.metrics.rejections[reason] == 1 and sum(ctl.metrics.rejections.values()) == 1
    assert ctl.metrics.chunks_accepted == 0


def test_non_numeric_positions_are_a_counted_bad_shape_naming_the_error():
    ctl, cfg = started()
    c = Chunk(0.9, DT, list(cfg.joint_names), [["a"] * 6] * 32)
    r = ctl.submit_chunk(c, 1.0)
    assert (r.accepted, r.reason) == (False, "bad_shape")
    assert r.detail.startswith("positions/velocities/joint_names not numeric arrays (") and "'a'" in r.detail
    assert ctl.metrics.rejections["bad_shape"] == 1


def test_a_stamp_equal_to_the_newest_accepted_is_refused_as_non_increasing():
    ctl, cfg = started()
    assert ctl.submit_chunk(chunk(cfg, 0.5), 1.0).accepted
    r = ctl.submit_chunk(chunk(cfg, 0.5), 1.0)
    assert (r.accepted, r.reason, r.detail) == (False, "non_increasing_stamp",
                                                "stamp 0.500000 <= newest accepted 0.500000")
    assert ctl.metrics.rejections["non_increasing_stamp"] == 1 and ctl.metrics.chunks_accepted == 1


def test_step_period_and_future_stamp_limits_are_inclusive():
    """A step period exactly max_step_period_s and a stamp exactly max_future_s ahead are accepted."""
    ctl, cfg = started(max_step_period_s=0.05, max_future_s=0.25)
    r = ctl.submit_chunk(chunk(cfg, 0.9, dt=0.05), 1.0)
    assert r.accepted and r.reason is None
    r = ctl.submit_chunk(chunk(cfg, 1.25), 1.0)  # 1.0 + 0.25: not further ahead than the limit
    assert r.accepted and r.handoff_s == 1.25
    assert ctl.metrics.chunks_accepted == 2 and sum(ctl.metrics.rejections.values()) == 0


def test_the_plan_is_usable_while_the_newest_chunk_is_exactly_stale_chunk_s_old():
    ctl, cfg = started(stale_chunk_s=0.5)
    assert ctl.submit_chunk(chunk(cfg, 0.0), 0.0).accepted
    out = ctl.tick(0.5)  # 0.5 - 0.0 == stale_chunk_s: not older than the limit
    assert (out.plan_active, out.plan_reason) == (True, None)
    out = ctl.tick(0.51)
    assert (out.plan_active, out.plan_reason) == (False, "stale_chunk")


def test_replace_mode_executes_a_single_step_for_one_step_period():
    """replace_execute_steps = 1: the one step is followed for one step period after the hand-off, then the
    plan is exhausted (not exhausted at the hand-off itself)."""
    ctl, cfg = started(splice_mode="replace", replace_execute_steps=1)
    r = ctl.submit_chunk(chunk(cfg, 0.0), 0.0)
    assert r.accepted and r.handoff_s == pytest.approx(0.02)
    assert ctl.tick(0.03).plan_reason is None
    assert ctl.tick(0.02 + DT - 0.001).plan_reason is None
    assert ctl.tick(0.02 + DT + 0.001).plan_reason == "exhausted"


def _ramp(cfg, stamp, start, slope, h=32):
    """A chunk whose arm joints move linearly from ``start`` at ``slope`` rad/s (velocities given)."""
    arm = is_arm(cfg)
    k = np.arange(h)[:, None]
    pos = np.where(arm, start + slope * k * DT, 0.04)
    vel = np.where(arm, slope, 0.0) * np.ones((h, 1))
    return chunk(cfg, stamp, value=pos, velocities=vel)


def test_replace_mode_counts_a_seam_against_the_current_command_from_the_second_chunk_on():
    """In replace mode every chunk after the first starts after a wait: the seam is the step from the current
    command (at rest at home) to the chunk's first step. The first chunk ever is not a seam."""
    ctl, cfg = started(splice_mode="replace", replace_execute_steps=4, enable_ramp_s=0.0)
    assert ctl.submit_chunk(chunk(cfg, 0.0), 0.0).accepted
    assert ctl.metrics.seams == 0
    t = 0.0
    while ctl.tick(t).plan_reason != "exhausted":
        t = round(t + 0.01, 10)
    out = ctl.tick(t + 0.01)
    p_now = np.concatenate([out.groups[g].positions for g in ("left_arm", "left_gripper", "right_arm",
                                                              "right_gripper")])
    np.testing.assert_array_equal(p_now, home(cfg))  # a constant plan at home: the command rests there
    assert ctl.submit_chunk(_ramp(cfg, t + 0.01, 0.1, 0.3), t + 0.01).accepted
    m = ctl.metrics
    assert m.seams == 1 and m.chunks_accepted == 2
    assert m.last_seam_position_jump == pytest.approx(0.1, abs=1e-12)
    assert m.last_seam_velocity_jump == pytest.approx(0.3, abs=1e-12)
    assert m.max_seam_velocity_jump == pytest.approx(0.3, abs=1e-12)
    assert m.max_seam_position_jump == pytest.approx(0.1, abs=1e-12)
    t = round(t + 0.02, 10)
    while ctl.tick(t).plan_reason != "exhausted":
        t = round(t + 0.01, 10)
    assert ctl.submit_chunk(_ramp(cfg, t, 0.1, 0.3), t).accepted
    assert ctl.metrics.seams == 2 and ctl.metrics.chunks_accepted == 3
    snap = ctl.tick(t + 0.001).metrics  # what the diagnostics publish
    assert (snap.seams, snap.chunks_accepted) == (2, 3)


def test_in_splice_mode_a_chunk_after_the_plan_ran_out_is_not_a_seam():
    ctl, cfg = started(enable_ramp_s=0.0)
    assert ctl.submit_chunk(chunk(cfg, 0.0, h=4), 0.0).accepted
    assert ctl.tick(0.2).plan_reason == "exhausted"
    assert ctl.submit_chunk(_ramp(cfg, 0.2, 0.1, 0.3), 0.2).accepted
    assert ctl.metrics.seams == 0 and ctl.metrics.chunks_accepted == 2
    assert ctl.metrics.max_seam_position_jump == 0.0 and ctl.metrics.max_seam_velocity_jump == 0.0


def test_post_processed_gripper_commands_are_steps_with_zero_chunk_velocity():
    """With gripper post-processing the chunk's gripper velocities are replaced by 0: a constant gripper
    command (here +1 = closed, from a value of 0) stays exactly constant between the chunk's knots."""
    def wide_grippers(groups):
        for g in groups:
            if g["kind"] == "gripper":
                g["limits"] = {"lower": -1.5, "upper": 1.5, "max_velocity": 2.0, "max_acceleration": 8.0}

    ctl, cfg = make(wide_grippers, gripper_postprocess="libero", enable_ramp_s=0.0)
    arm = is_arm(cfg)
    meas = np.where(arm, 0.0, 1.0)
    ctl.update_joint_state(0.0, cfg.joint_names, meas)
    ctl.enable(0.0)
    ctl.tick(0.0)
    pos = np.tile(np.where(arm, 0.0, 0.0), (32, 1))  # gripper action 0 -> +1 (closed) after post-processing
    vel = np.full((32, len(cfg.joint_names)), 0.5) * ~arm  # the model's gripper velocities: not followed
    assert ctl.submit_chunk(chunk(cfg, 0.0, value=pos, velocities=vel), 0.0).accepted
    for n in range(1, 40):
        t = 0.013 * n
        ctl.update_joint_state(t, cfg.joint_names, meas)
        out = ctl.tick(t)
        for g in ("left_gripper", "right_gripper"):
            assert out.groups[g].positions.tolist() == [1.0] and out.groups[g].velocities.tolist() == [0.0]
    assert out.groups["left_gripper"].mode == "running"
    assert int(ctl.metrics.clamps["non_finite"].sum()) == 0


def test_numeric_object_arrays_are_read_as_float_positions_and_velocities():
    """A chunk whose arrays hold Python numbers (dtype object) is the same chunk as its float64 copy."""
    outs = []
    for dtype in (np.float64, object):
        ctl, cfg = started(enable_ramp_s=0.0)
        c = _ramp(cfg, 0.0, 0.0, 0.3)
        c.positions, c.velocities = np.asarray(c.positions, dtype=dtype), np.asarray(c.velocities, dtype=dtype)
        assert ctl.submit_chunk(c, 0.0).accepted
        outs.append(np.concatenate([g.positions for g in ctl.tick(0.4).groups.values()]))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert np.any(outs[0] != 0.0)


def test_after_an_e_stop_the_committed_prefix_is_where_full_braking_stops_the_command():
    """E-stop brakes at the full acceleration limit: the prefix RTC inpaints towards is the rest pose
    p + v·|v| / (2·a_max) (the hold deceleration fraction applies only to holds)."""
    ctl, cfg = started(enable_ramp_s=0.0, hold_decel_fraction=0.5, rtc_prefix_s=0.1)
    assert ctl.submit_chunk(_ramp(cfg, 0.0, 0.0, 1.0), 0.0).accepted
    for n in range(1, 41):
        ctl.tick(0.01 * n)
    ctl.estop(0.41)
    out = ctl.tick(0.41)
    order = [j for g in cfg.groups for j in g.joints]
    p = np.empty(len(order))
    v = np.empty(len(order))
    cols = [cfg.joint_names.index(j) for j in order]
    p[cols] = np.concatenate([out.groups[g.name].positions for g in cfg.groups])
    v[cols] = np.concatenate([out.groups[g.name].velocities for g in cfg.groups])
    assert np.all(np.abs(v[is_arm(cfg)]) > 0.3)  # still moving after one braking tick
    amax = np.where(is_arm(cfg), ARM_AMAX, GRIP_AMAX)
    rest = p + v * np.abs(v) / (2.0 * amax)
    pre = out.committed_prefix
    assert pre.num_steps > 0
    np.testing.assert_allclose(pre.positions, np.tile(rest, (pre.num_steps, 1)), rtol=0, atol=1e-12)


def test_ensemble_weights_depend_on_stamp_differences_only_at_wall_clock_stamps():
    """ACT weights exp(−decay·Δstamp/dt) relative to the first chunk: with ROS wall-clock stamps (1.7e9 s) the
    blend of two constant chunks, both fully faded in, is the weighted mean to 1e-12 rad."""
    epoch = 1.7e9
    ctl, cfg = started(epoch, splice_mode="ensemble", ensemble_decay=0.5, enable_ramp_s=0.0, rtc_prefix_s=0.1)
    s0, s1 = epoch, epoch + 0.1
    assert ctl.submit_chunk(chunk(cfg, s0, value=np.tile(home(cfg, 0.0), (32, 1))), s0).accepted
    t = epoch
    for _ in range(2):
        t += 0.05
        ctl.update_joint_state(t, cfg.joint_names, home(cfg))
        ctl.tick(t)
    assert ctl.submit_chunk(chunk(cfg, s1, value=np.tile(home(cfg, 1.0), (32, 1))), s1).accepted
    for _ in range(8):
        t += 0.05
        ctl.update_joint_state(t, cfg.joint_names, home(cfg))
        out = ctl.tick(t)
    assert out.groups["left_arm"].mode == "running"
    c1 = math.exp(-0.5 * (s1 - s0) / DT)  # the first chunk's weight is 1
    want = c1 / (1.0 + c1)
    pre = out.committed_prefix.positions
    arm = is_arm(cfg)
    np.testing.assert_allclose(pre[:, arm], want, rtol=0, atol=1e-12)


def test_an_ensemble_member_leaves_the_plan_when_its_fade_out_ends_at_the_submit_time():
    """A member fades out over [end, end + w]; submit_chunk drops it once end + w <= now, as tick does.
    Chunk A (arm 0, ends at 0.1 s) has faded out exactly when chunk C arrives at now = 0.1 + w: the plan is then
    made of B and C only (both arm 0.5), also for a tick stamped just before that submit time."""
    w = 0.3
    ctl, cfg = started(splice_mode="ensemble", blend_window_s=w, enable_ramp_s=0.0, tracking_error_rad=10.0,
                       rtc_prefix_s=0.005)
    a = chunk(cfg, 0.0, h=4, value=np.tile(home(cfg, 0.0), (4, 1)))
    submit_now = ChunkSpline(a.stamp_s, DT, a.positions).end_s + w  # A's end + w, as the plan computes it
    assert ctl.submit_chunk(a, 0.0).accepted
    assert ctl.submit_chunk(chunk(cfg, 0.05, value=np.tile(home(cfg, 0.5), (32, 1))), 0.05).accepted
    for n in range(1, 39):
        ctl.update_joint_state(0.01 * n, cfg.joint_names, home(cfg))
        ctl.tick(0.01 * n)
    assert ctl.submit_chunk(chunk(cfg, 0.385, value=np.tile(home(cfg, 0.5), (32, 1))), submit_now).accepted
    ctl.update_joint_state(0.39, cfg.joint_names, home(cfg))
    out = ctl.tick(0.39)
    assert out.groups["left_arm"].mode == "running" and out.committed_prefix.num_steps == 1
    np.testing.assert_allclose(out.committed_prefix.positions[0, is_arm(cfg)], 0.5, rtol=0, atol=1e-12)


def test_after_a_reset_a_new_chunk_is_not_in_the_committed_prefix_until_a_group_runs_again():
    """reset leaves every group disabled and not running: a chunk accepted right after it does not make the
    committed prefix (asked for between ticks) claim the new plan; it holds the command's rest pose."""
    ctl, cfg = started(enable_ramp_s=0.0)
    assert ctl.submit_chunk(chunk(cfg, 0.0), 0.0).accepted
    for n in range(1, 41):
        ctl.tick(0.01 * n)
    assert ctl.committed_prefix(0.4).positions.shape[0] > 0
    ctl.estop(0.41)
    ctl.reset(0.41)
    assert ctl.submit_chunk(chunk(cfg, 0.41, value=np.tile(home(cfg, 1.0), (32, 1))), 0.41).accepted
    pre = ctl.committed_prefix(0.42)
    assert pre.num_steps > 0
    np.testing.assert_array_equal(pre.positions, np.tile(home(cfg), (pre.num_steps, 1)))
