"""Ticks that stop for a while (an executor stalled by another callback or a GC pause, a paused simulator, a
clock that jumps ahead) and then resume.

The robot does not wait for the controller: with setpoint output it holds the last setpoint, with trajectory
output a joint_trajectory_controller runs the last short trajectory into its braking tail. The first command
after the gap must start from that state. Before, the limiter took the whole gap as one step, so a single
command moved as far as the limits allow over the gap: 0.44 rad after a 0.3 s stall, sent to a robot that had
held still."""

from __future__ import annotations

import numpy as np
import pytest

from fastwam_ros.control import Chunk, ChunkController, ControllerConfig
from fastwam_ros.control.controller import _hermite_at
from fastwam_ros.control.stress import StreamRecorder, check_stream
from fastwam_ros.control.synthetic import bimanual_config_dict
from fastwam_ros.errors import ConfigError

PERIOD = 0.01  # s, 100 Hz
SPEED = 1.5  # rad/s of the chunks below (max_velocity 2 rad/s, max_acceleration 8 rad/s^2)


def _moving(trajectory: bool, stall_s: float, joints=None, **over):
    """A controller following chunks that move the ``joints`` (default: all) with a joint state at SPEED, ticked at
    100 Hz for 1.5 s, then not ticked for ``stall_s`` s, then ticked once: (controller, recorder, output before,
    output after, command state before the stall)."""
    cfg = ControllerConfig.from_dict(bimanual_config_dict(stale_chunk_s=2.0, **over))
    ctl = ChunkController(cfg)
    names = list(cfg.joint_names)
    have = names if joints is None else list(joints)
    col = [names.index(j) for j in have]
    rec = StreamRecorder(ctl)
    q = np.where(["gripper" in n for n in have], 0.0, -2.0)  # arms at -2 rad: 1.5 s at SPEED stays in range
    t = 1.0
    ctl.update_joint_state(t, have, q)
    ctl.enable(t)
    for i in range(150):
        t = round(t + PERIOD, 9)
        if i % 10 == 0:  # a fresh chunk every 0.1 s, from the current command on, 128 steps (4.3 s) long
            pos = q[None, :] + np.arange(128)[:, None] / 30 * SPEED
            ctl.submit_chunk(Chunk(stamp_s=t, step_period_s=1 / 30, joint_names=have, positions=pos,
                                   chunk_id=i), t)
        ctl.update_joint_state(t, have, q)
        out = ctl.tick(t, with_trajectory=trajectory, with_prefix=False)
        rec.add(t, out)
        q = ctl.p[col].copy()
    before, held = out, ctl.p.copy()
    t = round(t + stall_s, 9)
    ctl.update_joint_state(t, have, q)
    after = ctl.tick(t, with_trajectory=trajectory, with_prefix=False)
    rec.add(t, after)
    return ctl, rec, before, after, held


def _arm(out, field="positions"):
    return np.concatenate([getattr(out.groups[g], field) for g in ("left_arm", "right_arm")])


def test_after_a_stall_a_setpoint_stream_resumes_from_the_held_setpoint():
    ctl, rec, before, after, _ = _moving(trajectory=False, stall_s=0.3)
    assert all(g.mode == "running" for g in after.groups.values())
    assert _arm(before, "velocities").min() > 0.9 * SPEED  # it was moving at about the chunks' speed
    step = np.abs(_arm(after) - _arm(before))
    assert step.max() <= 2.0 * PERIOD  # at most one period at max_velocity: here from rest, a_max·dt²/2
    assert step.max() <= 0.5 * 8.0 * PERIOD**2 + 1e-12
    assert np.abs(_arm(after, "velocities")).max() <= 8.0 * PERIOD + 1e-12
    assert ctl.metrics.tick_gaps == 1 and ctl.metrics.max_tick_gap_s == pytest.approx(0.3)
    assert not check_stream(rec.result())
    # the old behaviour (gaps not recognised): one command moved 0.3 s of motion at once
    _, rec_off, b, a, _ = _moving(trajectory=False, stall_s=0.3, max_tick_gap_s=10.0)
    assert np.abs(_arm(a) - _arm(b)).max() > 0.4
    old = rec_off.result()
    assert not check_stream(old)  # (a continuous command, sampled: nothing to say without gaps)
    old["tick_gap_s"] = 3 * PERIOD  # the robot's view: it held the setpoint
    assert "command after a gap moves more than one period at max_velocity from the held setpoint" in \
        check_stream(old)


@pytest.mark.parametrize("stall_s", [0.1, 0.6])
def test_after_a_stall_a_trajectory_stream_resumes_where_the_last_trajectory_brought_the_robot(stall_s):
    """0.1 s: inside the trajectory's tracking horizon (0.2 s); 0.6 s: past its braking tail, at rest."""
    ctl, rec, before, after, _ = _moving(trajectory=True, stall_s=stall_s)
    t_after = after.stamp_s
    dist = []
    for name in ("left_arm", "right_arm"):
        tr = before.groups[name].trajectory
        times = tr.start_stamp_s + np.asarray(tr.time_from_start_s)
        P = np.asarray(tr.positions)
        end_s = times[-1]
        if stall_s == 0.6:
            assert t_after - PERIOD > end_s  # the robot ran the whole trajectory and stopped at its end
            there = P[-1]
        else:  # the trajectory's points around t_after - PERIOD, linearly (the cubic differs by < 0.6 h vmax)
            there = np.array([np.interp(t_after - PERIOD, times, P[:, j]) for j in range(P.shape[1])])
        dist.append(np.abs(after.groups[name].positions - there))
    dist = np.concatenate(dist)
    slack = 0.0 if stall_s == 0.6 else 0.6 * 0.02 * 2.0
    assert dist.max() <= 2.0 * PERIOD + slack
    if stall_s == 0.6:  # from rest
        assert np.abs(_arm(after, "velocities")).max() <= 8.0 * PERIOD + 1e-12
    else:  # still moving along the trajectory: its speed, within one period of acceleration
        assert np.abs(_arm(after, "velocities") - _arm(before, "velocities")).max() <= 8.0 * PERIOD * 1.5
    assert ctl.metrics.tick_gaps == 1
    assert not check_stream(rec.result())
    if stall_s == 0.6:  # the old behaviour: 0.6 s of the plan at once, 0.4 rad past where the robot stopped
        _, rec_off, _, a, _ = _moving(trajectory=True, stall_s=stall_s, max_tick_gap_s=10.0)
        assert np.abs(_arm(a) - _arm(after)).max() > 0.4
        old = rec_off.result()
        old["tick_gap_s"] = 3 * PERIOD
        assert "command after a gap away from where the last trajectory brought the robot" in check_stream(old)


def test_a_late_tick_within_max_tick_gap_s_is_no_gap_and_a_later_one_is():
    """Timer jitter is not a gap: a tick 25 ms after the previous one (default: gaps from 3 periods) gives
    exactly what a controller that never sees gaps gives; 35 ms is a gap."""
    for late_s, is_gap in ((0.025, False), (0.035, True)):
        a = _moving(trajectory=False, stall_s=late_s)
        b = _moving(trajectory=False, stall_s=late_s, max_tick_gap_s=1.0)
        same = np.array_equal(_arm(a[3]), _arm(b[3])) and np.array_equal(_arm(a[3], "velocities"),
                                                                         _arm(b[3], "velocities"))
        assert same is not is_gap, late_s
        assert a[0].metrics.tick_gaps == int(is_gap) and b[0].metrics.tick_gaps == 0


def test_a_tick_exactly_max_tick_gap_s_late_is_no_gap_and_every_gap_is_counted():
    """Dyadic times (a 1/32 s period, gaps from 3/32 s): exactly 3/32 s is not a gap, anything more is; each gap
    counts, the longest is kept."""
    cfg = ControllerConfig.from_dict(bimanual_config_dict(control_rate_hz=32.0, max_tick_gap_s=3 / 32,
                                                          handoff_margin_s=1 / 32))
    ctl = ChunkController(cfg)
    names = cfg.joint_names
    t = 0.0
    for step in (1, 1, 3, 1, 4, 1, 8, 1):  # periods between ticks
        t += step / 32
        ctl.update_joint_state(t, names, np.zeros(len(names)))
        ctl.tick(t)
    assert ctl.metrics.tick_gaps == 2 and ctl.metrics.max_tick_gap_s == 8 / 32


def test_max_tick_gap_s_is_checked_and_defaults_to_three_periods():
    assert ControllerConfig.from_dict(bimanual_config_dict()).tick_gap_s == pytest.approx(3 * PERIOD)
    assert ControllerConfig.from_dict(bimanual_config_dict(max_tick_gap_s=0.5)).tick_gap_s == 0.5
    for bad in (0.01, 0.0, -1.0, float("nan"), "0.1"):
        with pytest.raises(ConfigError, match="max_tick_gap_s"):
            ControllerConfig.from_dict(bimanual_config_dict(max_tick_gap_s=bad))


def test_the_trajectory_is_read_as_a_cubic_through_its_points_and_velocities():
    """``_hermite_at`` (how the controller reads the last trajectory): the points and their velocities at the
    knots, a curve whose slope is its velocity in between, the start before t0 and the last point at rest
    after the end."""
    rng = np.random.default_rng(0)
    J = 3
    t0, p0, v0 = 1.0, rng.normal(size=J), rng.normal(size=J)
    times = 1.0 + np.array([0.03, 0.05, 0.07, 0.09])
    P, V = rng.normal(size=(4, J)), rng.normal(size=(4, J))
    V[-1] = 0.0
    for tk, pk, vk in zip(np.concatenate([[t0], times]), np.vstack([p0, P]), np.vstack([v0, V])):
        p, v = _hermite_at(float(tk), t0, p0, v0, times, P, V)
        np.testing.assert_allclose(p, pk, atol=1e-12)
        np.testing.assert_allclose(v, vk, atol=1e-9)
    for t in np.linspace(1.001, 1.089, 23):  # in between: velocity = d position / dt (central differences)
        e = 1e-6
        pa, _ = _hermite_at(t - e, t0, p0, v0, times, P, V)
        pb, _ = _hermite_at(t + e, t0, p0, v0, times, P, V)
        _, v = _hermite_at(t, t0, p0, v0, times, P, V)
        np.testing.assert_allclose(v, (pb - pa) / (2 * e), atol=1e-5)
    p, v = _hermite_at(t0 + 1e-9, t0, p0, v0, times, P, V)  # continuous at the start, from the first segment
    np.testing.assert_allclose(p, p0, atol=1e-6)
    np.testing.assert_allclose(v, v0, atol=1e-4)
    for tk, pk, vk in zip(times, P, V):  # continuous at every point, approached from the segment before it
        p, v = _hermite_at(float(tk) - 1e-9, t0, p0, v0, times, P, V)
        np.testing.assert_allclose(p, pk, atol=1e-6)
        np.testing.assert_allclose(v, vk, atol=1e-4)
    p, v = _hermite_at(0.5, t0, p0, v0, times, P, V)
    assert np.array_equal(p, p0) and np.array_equal(v, v0)
    p, v = _hermite_at(2.0, t0, p0, v0, times, P, V)
    assert np.array_equal(p, P[-1]) and not v.any()


def test_the_controller_node_reports_tick_gaps():
    from pathlib import Path

    from fastwam_ros.robot import load_robot
    from fastwam_ros.runtime.controller_runtime import ControllerRuntime
    from fastwam_ros.runtime.params import load_node_parameters, resolve
    from fastwam_ros.runtime.schemas import CONTROLLER_SCHEMA

    towel = Path(__file__).resolve().parents[2] / "config" / "towel_fold.yaml"
    rt = ControllerRuntime(resolve(CONTROLLER_SCHEMA, load_node_parameters(towel, "controller_node"), strict=True),
                           load_robot("towel_fold_bimanual"))
    names = list(rt.config.joint_names)
    for t in (10.0, 10.01, 10.5):  # stalled 0.49 s before the last tick
        rt.on_joint_state(t, names, np.zeros(len(names)), t)
        rt.tick(t)
    st = rt.diagnostics(10.5)[0]
    assert dict(st.values)["tick gaps (ticks stopped: resumed from the robot's state)"] == "1, longest 0.490 s"
    assert st.level >= 1 and "1 tick gap(s) > max_tick_gap_s 0.03 s since the last report" in st.message
    rt.on_joint_state(10.51, names, np.zeros(len(names)), 10.51)
    rt.tick(10.51)
    st = rt.diagnostics(10.51)[0]  # no new gap since: not reported again (the count stays in the values)
    assert "tick gap" not in st.message
    assert dict(st.values)["tick gaps (ticks stopped: resumed from the robot's state)"] == "1, longest 0.490 s"


@pytest.mark.parametrize("measured", [("right_arm",), ("left_arm", "right_arm", "right_gripper")])
def test_after_a_stall_only_the_groups_that_published_a_trajectory_follow_it(measured):
    """Groups without a full joint state publish nothing: their joints (measured or not) held still during the
    stall. Here every joint but those of ``measured`` groups lacks a joint state, and ``left_joint1`` of the
    otherwise unmeasured left arm has one (the group is not valid without the rest)."""
    groups = {g["name"]: g["joints"] for g in bimanual_config_dict()["groups"]}
    have = [j for g in measured for j in groups[g]] + ([] if "left_arm" in measured else ["left_joint1"])
    ctl, _, before, after, held = _moving(True, 0.6, joints=have)  # 0.6 s: past the trajectories' braking tails
    for g in measured:
        tr = before.groups[g].trajectory
        assert tr is not None
        np.testing.assert_allclose(after.groups[g].positions, np.asarray(tr.positions)[-1], atol=2.0 * PERIOD)
    if "left_arm" not in measured:  # measured but in a group that published nothing: held still
        j = list(ctl.cfg.joint_names).index("left_joint1")
        assert after.groups["left_arm"].positions is None
        assert abs(ctl.p[j] - held[j]) <= 0.5 * 8.0 * PERIOD**2 + 1e-12 and abs(ctl.v[j]) <= 8.0 * PERIOD
    assert ctl.metrics.tick_gaps == 1

def test_a_one_point_trajectory_at_rest_is_read_past_its_end():
    """The shortest trajectory (one point, no braking tail: the arm holds still) read after a long stall: the
    held pose, at rest."""
    cfg = ControllerConfig.from_dict(bimanual_config_dict(trajectory_horizon_s=0.02, trajectory_point_period_s=0.02))
    ctl = ChunkController(cfg)
    names = cfg.joint_names
    q = np.linspace(-0.5, 0.5, len(names)) * np.where(["gripper" in n for n in names], 0.0, 1.0)
    t = 1.0
    for _ in range(5):
        t = round(t + PERIOD, 9)
        ctl.update_joint_state(t, names, q)
        out = ctl.tick(t)
    assert len(out.groups["left_arm"].trajectory.time_from_start_s) == 1
    t += 0.5
    ctl.update_joint_state(t, names, q)
    after = ctl.tick(t)
    np.testing.assert_array_equal(_arm(after), _arm(out))
    assert not _arm(after, "velocities").any() and ctl.metrics.tick_gaps == 1
