"""``ChunkController.tick`` rule by rule (mutation testing, issue 21): the mode and reason each group reports
(hold/anchored, stopping, e-stop, stale state at its edge, the end of the enable ramp), the ``anchored`` flag,
what a tick with a bad time returns, the tick counter, which outputs the ``with_trajectory`` /
``with_prefix`` switches and a group without joint state carry, the command of a group whose neighbour has no
joint state, the jerk-limited hold at the anchor, and the ensemble's member pruning. Short scenarios in
simulated time (dyadic times where an edge is compared exactly): each test runs in milliseconds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_control_controller_rules import home, make  # the rule tests' controller and pose

from fastwam_ros.control import Chunk

DT = 1 / 32  # s: a dyadic step period, so hand-off / end / edge times are exact in binary


def chunk(cfg, stamp, h=64, arm=0.0, dt=DT):
    pos = np.tile(home(cfg, arm), (h, 1))
    return Chunk(stamp_s=stamp, step_period_s=dt, joint_names=list(cfg.joint_names), positions=pos)


def state(ctl, cfg, t, arm=0.0):
    assert ctl.update_joint_state(t, cfg.joint_names, home(cfg, arm)).accepted


def started(t=0.0, **over):
    ctl, cfg = make(**over)
    state(ctl, cfg, t)
    ctl.enable(t)
    return ctl, cfg, ctl.tick(t)


def test_the_enable_tick_anchors_every_group_and_reports_hold_anchored_once():
    ctl, cfg, out = started()
    for g in out.groups.values():
        assert (g.mode, g.reason, g.anchored) == ("hold", "anchored", True)
    state(ctl, cfg, 0.01)
    nxt = ctl.tick(0.01)
    for g in nxt.groups.values():  # the flag marks the one tick the command may jump, no other
        assert (g.mode, g.reason) == ("hold", "no_plan") and g.anchored is False


def test_re_enable_while_the_command_moves_reports_stopping_then_anchors_at_rest():
    ctl, cfg, _ = started()
    assert ctl.submit_chunk(chunk(cfg, 0.0, arm=0.5), 0.0).accepted
    t = 0.0
    for _ in range(40):  # the enable ramp moves the arms towards 0.5 rad
        t += 0.01
        state(ctl, cfg, t)
        out = ctl.tick(t)
    arm = out.groups["left_arm"]
    assert arm.mode in ("ramp", "running") and np.all(np.abs(arm.velocities) > 0.01)
    ctl.disable(t, "left_arm")
    ctl.enable(t, "left_arm")
    t += 0.01
    state(ctl, cfg, t)
    out = ctl.tick(t)
    assert (out.groups["left_arm"].mode, out.groups["left_arm"].reason) == ("stopping", "command_moving")
    assert out.groups["left_arm"].anchored is False and out.groups["right_arm"].mode in ("ramp", "running")
    for _ in range(200):
        t += 0.01
        state(ctl, cfg, t)
        out = ctl.tick(t)
        if out.groups["left_arm"].mode != "stopping":
            break
    g = out.groups["left_arm"]
    assert (g.mode, g.reason, g.anchored) == ("hold", "anchored", True)
    np.testing.assert_array_equal(g.positions, [0.0, 0.0])  # re-anchored to the measured pose
    np.testing.assert_array_equal(g.velocities, [0.0, 0.0])


def test_estop_reports_estop_as_mode_and_reason_for_every_group():
    ctl, cfg, _ = started()
    ctl.estop(0.01)
    state(ctl, cfg, 0.01)
    out = ctl.tick(0.01)
    assert {(g.mode, g.reason) for g in out.groups.values()} == {("estop", "estop")}


def test_joint_state_exactly_stale_state_s_old_is_still_fresh_and_older_holds():
    ctl, cfg, _ = started(stale_state_s=0.25)
    out = ctl.tick(0.25)  # the state from t = 0 is exactly 0.25 s old: still usable
    assert {(g.mode, g.reason) for g in out.groups.values()} == {("hold", "no_plan")}
    out = ctl.tick(0.375)
    assert {(g.mode, g.reason) for g in out.groups.values()} == {("hold", "stale_state")}


def test_the_enable_ramp_ends_exactly_enable_ramp_s_after_it_starts():
    """The ramp starts one tick before the first running tick (``now - dt``) and lasts enable_ramp_s (ticks
    0.25 s apart: not gaps here)."""
    ctl, cfg, _ = started(enable_ramp_s=1.0, blend_window_s=0.25, max_tick_gap_s=1.0)
    assert ctl.submit_chunk(chunk(cfg, 0.0), 0.0).accepted
    modes = {}
    for t in (0.25, 0.5, 0.75, 1.0, 1.25):
        state(ctl, cfg, t)
        modes[t] = ctl.tick(t).groups["left_arm"].mode
    assert modes == {0.25: "ramp", 0.5: "ramp", 0.75: "ramp", 1.0: "running", 1.25: "running"}


def test_a_first_tick_with_a_non_finite_time_counts_it_and_runs_at_time_zero():
    ctl, cfg = make()
    state(ctl, cfg, 0.0)
    out = ctl.tick(math.nan)
    assert out.stamp_s == 0.0 and out.metrics.time_errors == 1 and out.metrics.ticks == 1
    assert ctl.tick(0.01).stamp_s == 0.01  # time resumes from 0


def test_every_accepted_tick_is_counted_once_and_a_repeated_time_is_not():
    ctl, cfg, out = started()
    assert out.metrics.ticks == 1
    for k, t in enumerate((0.01, 0.02, 0.03), start=2):
        out = ctl.tick(t)
        assert out.metrics.ticks == k and out.stamp_s == t
    again = ctl.tick(0.03)
    assert again.metrics.ticks == 4 and ctl.metrics.ticks == 4 and ctl.metrics.time_errors == 1


def test_the_output_switches_leave_out_exactly_what_they_name():
    ctl, cfg, _ = started(trajectory_horizon_s=0.1)
    full = ctl.tick(0.01)
    assert all(g.trajectory is not None for g in full.groups.values()) and full.committed_prefix is not None
    bare = ctl.tick(0.02, with_trajectory=False, with_prefix=False)
    assert all(g.trajectory is None for g in bare.groups.values()) and bare.committed_prefix is None
    assert all(g.positions is not None for g in bare.groups.values())
    assert ctl.tick(0.03, with_trajectory=False).committed_prefix is not None
    ctl0, _, _ = started(trajectory_horizon_s=0.0)  # a zero horizon publishes no trajectory at all
    assert all(g.trajectory is None for g in ctl0.tick(0.01).groups.values())


def test_a_group_without_joint_state_publishes_nothing_at_all():
    ctl, cfg = make(trajectory_horizon_s=0.1)
    left = [n for n in cfg.joint_names if n.startswith("left")]
    ctl.update_joint_state(0.0, left, [0.0] * (len(left) - 1) + [0.04])
    ctl.enable(0.0)
    out = ctl.tick(0.0)
    g = out.groups["right_arm"]
    assert (g.mode, g.valid) == ("no_state", False)
    assert (g.positions, g.velocities, g.accelerations, g.trajectory) == (None, None, None, None)
    assert out.groups["left_arm"].trajectory is not None


def test_a_group_follows_its_plan_while_another_group_has_no_joint_state():
    """Commands of measured joints are updated (positions, velocities, accelerations) even while some other
    joint has never been measured; the unmeasured group stays invalid."""
    ctl, cfg = make()
    left = [n for n in cfg.joint_names if n.startswith("left")]
    t = 0.0
    ctl.update_joint_state(t, left, [0.0] * (len(left) - 1) + [0.04])
    ctl.enable(t)
    ctl.tick(t)
    assert ctl.submit_chunk(chunk(cfg, 0.0, arm=0.5), 0.0).accepted
    pos, vel, acc = [], [], []
    for _ in range(30):
        t += 0.01
        ctl.update_joint_state(t, left, [0.0] * (len(left) - 1) + [0.04])
        g = ctl.tick(t).groups["left_arm"]
        pos.append(g.positions)
        vel.append(g.velocities)
        acc.append(g.accelerations)
    assert g.mode == "ramp"
    pos, vel, acc = np.array(pos), np.array(vel), np.array(acc)
    assert np.all(np.diff(pos, axis=0) > 0) and pos[-1, 0] > 0.01  # moving towards 0.5 rad
    assert np.all(vel[1:] > 0)
    np.testing.assert_allclose(pos[1:] - pos[:-1], 0.5 * (vel[1:] + vel[:-1]) * 0.01, atol=1e-12)
    np.testing.assert_allclose(acc[1:], (vel[1:] - vel[:-1]) / 0.01, atol=1e-9)
    assert np.any(np.abs(acc) > 0.1)
    assert ctl.tick(t + 0.01).groups["right_arm"].positions is None


def test_a_jerk_limited_group_holds_exactly_still_on_its_anchor_tick():
    """The anchor resets the command's acceleration: a soft jerk limit must not carry an old acceleration
    into the hold (the command would creep away from the measured pose)."""
    ctl, cfg = make(joint_limits={"left_joint1": {"max_jerk": 10.0}, "left_joint2": {"max_jerk": 10.0}})
    t = 0.0
    state(ctl, cfg, t)
    ctl.enable(t)
    for _ in range(5):
        out = ctl.tick(t)
        g = out.groups["left_arm"]
        assert g.mode == "hold"
        np.testing.assert_array_equal(g.positions, [0.0, 0.0])
        np.testing.assert_array_equal(g.velocities, [0.0, 0.0])
        np.testing.assert_array_equal(g.accelerations, [0.0, 0.0])
        t += 0.01
        state(ctl, cfg, t)


@pytest.mark.parametrize("tick_at", [2.25, 2.5])
def test_an_ensemble_member_past_its_fade_out_no_longer_weighs_in(tick_at):
    """ACT ensembling with a strong decay: members' weights are relative to the heaviest *live* member. A
    member whose fade-out ended (end + blend_window_s <= now, the edge included) is dropped, so the two live
    members are averaged with weights 1 and exp(-decay·1 step); were the dead member kept, its large constant
    weight would make the live ones' sum vanish and the plan would follow one member only."""
    decay, bw = 0.7, 0.25
    ctl, cfg, _ = started(splice_mode="ensemble", ensemble_decay=decay, blend_window_s=bw,
                          enable_ramp_s=0.25, rtc_prefix_s=0.0625)
    assert ctl.submit_chunk(chunk(cfg, 0.0, h=65, arm=0.0), 0.0).accepted  # ends at 2.0 s, faded out at 2.25
    t, qb, qc = 0.0, 0.1, 0.3
    while t < tick_at:
        t += 1 / 64
        if t == 1.25:
            assert ctl.submit_chunk(chunk(cfg, 40 * DT, h=65, arm=qb), t).accepted
        if t == 1.3125:
            assert ctl.submit_chunk(chunk(cfg, 41 * DT, h=65, arm=qc), t).accepted
        state(ctl, cfg, t)
        out = ctl.tick(t)
    assert t == tick_at and out.groups["left_arm"].mode == "running"
    w = math.exp(-decay)
    want = (qb + w * qc) / (1 + w)
    arm = [cfg.joint_names.index(n) for n in cfg.joint_names if n.startswith("left_joint")]
    np.testing.assert_allclose(out.committed_prefix.positions[:, arm], want, rtol=0, atol=1e-12)


def test_a_never_measured_joint_does_not_stretch_the_measured_groups_trajectory():
    """The trajectory's braking tail is as long as the fastest joint needs; a joint without any joint state
    has no command (velocity and acceleration 0), so a measured group at rest publishes just the horizon,
    at rest, however that joint is limited (here: a soft jerk limit, which carries the acceleration over)."""
    ctl, cfg = make(trajectory_horizon_s=0.1, trajectory_point_period_s=0.02,
                    joint_limits={"right_joint1": {"max_jerk": 1.0}})
    left = [n for n in cfg.joint_names if n.startswith("left")]
    for k in range(4):
        t = k * 0.01
        ctl.update_joint_state(t, left, [0.0] * (len(left) - 1) + [0.04])
        ctl.enable(t)
        out = ctl.tick(t)
        tr = out.groups["left_arm"].trajectory
        assert out.groups["right_arm"].trajectory is None
        np.testing.assert_allclose(tr.time_from_start_s, 0.02 * np.arange(1, 6), rtol=0, atol=1e-12)
        np.testing.assert_array_equal(tr.velocities, np.zeros((5, 2)))
        np.testing.assert_array_equal(tr.positions, np.zeros((5, 2)))
