"""Issue 13 items 5/6 and issue 14 items 5/9 in the control core, simulated time: the tracking-error watchdog,
the chunk-length cap, the bounded ensemble, the O(H) spline solve, joint-state duplicates and float32 range."""

from __future__ import annotations

import numpy as np
import pytest

from fastwam_ros.control import Chunk, ChunkController, ConfigError, ControllerConfig
from fastwam_ros.control.plan import ChunkSpline, natural_spline_slopes
from fastwam_ros.control.synthetic import bimanual_config_dict

DT = 1 / 30


def make(**over):
    over.setdefault("trajectory_horizon_s", 0.0)
    over.setdefault("enable_ramp_s", 0.0)
    cfg = ControllerConfig.from_dict(bimanual_config_dict(arm_joints=2, **over))
    return ChunkController(cfg), cfg


def ramp_chunk(cfg, stamp, slope, h=40):
    t = stamp + DT * np.arange(h)
    pos = np.array([[0.04 if "gripper" in n else slope * x for n in cfg.joint_names] for x in t])
    return Chunk(stamp_s=stamp, step_period_s=DT, joint_names=cfg.joint_names, positions=pos)


def drive(ctl, cfg, t0, t1, measured, chunk_every=0.2, slope=0.5):
    """Tick at the control rate with chunks streaming; ``measured(t, command) -> positions`` is the robot."""
    t, next_chunk, outs = t0, t0, []
    cmd = np.zeros(len(cfg.joint_names))
    while t < t1 - 1e-9:
        t = round(t + cfg.period_s, 9)
        if t >= next_chunk:
            ctl.submit_chunk(ramp_chunk(cfg, t - 0.1, slope), t)
            next_chunk = t + chunk_every
        out = ctl.tick(t)
        outs.append((t, out))
        cmd = np.concatenate([g.positions for g in out.groups.values()])
        ctl.update_joint_state(t, cfg.joint_names, measured(t, cmd))
    return outs


# ----------------------------------------------------------------------------- tracking-error watchdog


def test_a_robot_that_does_not_move_faults_and_holds_within_one_second():
    ctl, cfg = make(tracking_error_rad=0.1, tracking_error_s=0.3)
    z = np.where(["gripper" in n for n in cfg.joint_names], 0.04, 0.0)
    ctl.update_joint_state(0.0, cfg.joint_names, z)
    ctl.enable(0.0)
    outs = drive(ctl, cfg, 0.0, 2.0, lambda t, cmd: z)  # the robot sits still
    err_since = next(t for t, o in outs if np.max(np.abs(
        np.concatenate([g.positions for g in o.groups.values()]) - z)) > 0.1)
    faulted = [(t, o) for t, o in outs if o.groups["left_arm"].fault == "tracking_error"]
    assert faulted, "the watchdog never tripped"
    t_fault, o = faulted[0]
    # the error counts from the command range of the last tracking_lag_s (a following robot may lag that much)
    assert t_fault - err_since <= cfg.tracking_lag_s + 0.3 + 2 * cfg.period_s
    assert t_fault < 1.0
    assert o.groups["left_arm"].mode == "disabled" and o.groups["left_arm"].reason == "tracking_error"
    assert ctl.metrics.tracking_faults >= 2  # both arms
    # it holds: the command comes to rest and stays there while chunks keep streaming
    last = outs[-1][1].groups["left_arm"]
    assert last.mode == "disabled" and np.all(last.velocities == 0.0)
    # an automatic enable does not clear the fault; an explicit one does (re-anchored to the measured pose)
    assert ctl.enable(2.0, clear_faults=False)["left_arm"] == "tracking_error"
    assert ctl.enable(2.0)["left_arm"] is None
    o = ctl.tick(2.01)
    assert o.groups["left_arm"].fault is None and o.groups["left_arm"].anchored
    np.testing.assert_allclose(o.groups["left_arm"].positions, 0.0)


def test_a_robot_that_follows_with_lag_does_not_fault():
    ctl, cfg = make(tracking_error_rad=0.1, tracking_error_s=0.3)
    z = np.where(["gripper" in n for n in cfg.joint_names], 0.04, 0.0)
    ctl.update_joint_state(0.0, cfg.joint_names, z)
    ctl.enable(0.0)
    hist: list[np.ndarray] = []

    def lagging(t, cmd):  # the robot is 5 ticks (50 ms) behind the command
        hist.append(cmd)
        return hist[max(0, len(hist) - 6)]

    outs = drive(ctl, cfg, 0.0, 3.0, lagging)
    assert ctl.metrics.tracking_faults == 0
    assert all(o.groups["left_arm"].mode in ("running", "ramp", "hold") for _, o in outs[5:])
    assert ctl.metrics.max_tracking_error < 0.02  # 50 ms of lag is inside tracking_lag_s (0.1 s)


def test_watchdog_thresholds_per_group_and_off():
    d = bimanual_config_dict(arm_joints=2, tracking_error_rad=0.1, tracking_error_s=0.3, trajectory_horizon_s=0.0,
                             enable_ramp_s=0.0)
    d["groups"][0]["tracking_error_rad"] = float("inf")  # left arm: off
    d["groups"][2]["tracking_error_s"] = 0.05  # right arm: faster
    cfg = ControllerConfig.from_dict(d)
    ctl = ChunkController(cfg)
    z = np.where(["gripper" in n for n in cfg.joint_names], 0.04, 0.0)
    ctl.update_joint_state(0.0, cfg.joint_names, z)
    ctl.enable(0.0)
    outs = drive(ctl, cfg, 0.0, 2.0, lambda t, cmd: z)
    assert all(o.groups["left_arm"].fault is None for _, o in outs)
    t_right = next(t for t, o in outs if o.groups["right_arm"].fault)
    assert t_right < 0.5
    for bad in (0.0, -1.0, float("nan"), "x"):
        with pytest.raises(ConfigError, match="tracking_error_rad"):
            ControllerConfig.from_dict(bimanual_config_dict(tracking_error_rad=bad))


def test_watchdog_ignores_groups_that_are_not_enabled():
    ctl, cfg = make(tracking_error_rad=0.1, tracking_error_s=0.1)
    z = np.where(["gripper" in n for n in cfg.joint_names], 0.04, 0.0)
    ctl.update_joint_state(0.0, cfg.joint_names, z + 1.0)  # far away, but nothing is enabled
    for k in range(1, 100):
        ctl.tick(k * 0.01)
    assert ctl.metrics.tracking_faults == 0


# ----------------------------------------------------------------------------- bounded cost


def test_chunks_longer_than_the_cap_are_refused_and_counted():
    ctl, cfg = make(max_chunk_steps=64)
    ctl.update_joint_state(0.0, cfg.joint_names, np.zeros(len(cfg.joint_names)))
    r = ctl.submit_chunk(ramp_chunk(cfg, 0.9, 0.1, h=5000), 1.0)
    assert not r.accepted and r.reason == "too_long" and ctl.metrics.rejections["too_long"] == 1
    assert ctl.submit_chunk(ramp_chunk(cfg, 0.9, 0.1, h=64), 1.0).accepted
    assert ControllerConfig.from_dict(bimanual_config_dict()).max_chunk_steps == 128  # 4 × the 32-step horizon
    with pytest.raises(ConfigError, match="max_chunk_steps"):
        ControllerConfig.from_dict(bimanual_config_dict(max_chunk_steps=0))


def test_ensemble_members_are_bounded():
    ctl, cfg = make(splice_mode="ensemble", max_plan_chunks=3, stale_chunk_s=2.0)
    z = np.where(["gripper" in n for n in cfg.joint_names], 0.04, 0.0)
    ctl.update_joint_state(0.0, cfg.joint_names, z)
    ctl.enable(0.0)
    t = 0.0
    for k in range(90):  # a chunk every 3 ticks (past the hand-off margin), each lasting > 1 s
        t = round(t + cfg.period_s, 9)
        if k % 3 == 0:
            assert ctl.submit_chunk(ramp_chunk(cfg, t - 0.05, 0.2), t).accepted
        ctl.tick(t)
        assert len(ctl._members) <= 3
    assert len(ctl._members) == 3
    newest = max(m.start_s for m in ctl._members)
    assert newest == pytest.approx(0.88 + cfg.handoff_margin_s)  # the newest chunk is never the one dropped


@pytest.mark.parametrize("n", [2, 3, 5, 32, 128])
def test_natural_spline_slopes_solve_the_tridiagonal_system(n):
    rng = np.random.default_rng(n)
    rhs = rng.normal(size=(n, 4))
    a = np.diag(np.full(n, 4.0)) + np.diag(np.ones(n - 1), 1) + np.diag(np.ones(n - 1), -1)
    a[0, 0] = a[-1, -1] = 2.0
    np.testing.assert_allclose(natural_spline_slopes(rhs.copy()), np.linalg.solve(a, rhs), atol=1e-12)


def test_spline_without_velocities_is_c2_and_interpolates():
    rng = np.random.default_rng(0)
    p = np.cumsum(rng.normal(size=(20, 3)), axis=0)
    s = ChunkSpline(0.0, 0.1, p)
    for k in range(20):
        np.testing.assert_allclose(s.eval(k * 0.1)[0], p[k], atol=1e-12)
    for k in range(1, 19):  # acceleration continuous at inner knots
        np.testing.assert_allclose(s.eval(k * 0.1 - 1e-9)[2], s.eval(k * 0.1 + 1e-9)[2], atol=1e-5)
    np.testing.assert_allclose(s.eval(1e-12)[2], 0.0, atol=1e-6)  # natural end condition


# ----------------------------------------------------------------------------- joint states (issue 14 item 9)


def test_joint_state_with_a_duplicate_name_is_rejected_whole():
    ctl, cfg = make()
    names = list(cfg.joint_names)
    r = ctl.update_joint_state(1.0, names + [names[0]], list(np.zeros(len(names))) + [5.0])
    assert not r.accepted and r.reason == "duplicate_joint" and ctl.metrics.state_rejections == 1
    assert not ctl.initialised.any()


def test_joint_state_values_outside_float32_are_skipped_and_counted():
    ctl, cfg = make()
    names = list(cfg.joint_names)
    vals = np.zeros(len(names))
    vals[0], vals[1] = 1e300, -1e39
    r = ctl.update_joint_state(1.0, names, vals)
    assert r.reason == "partial" and ctl.metrics.state_rejections == 2
    assert not ctl.initialised[0] and not ctl.initialised[1] and ctl.initialised[2:].all()
    assert ctl.update_joint_state(1.1, names, np.full(len(names), 3.0e38)).accepted  # inside float32: fine


def _chunks_in(src):
    from fastwam_ros.control.plan import BlendSource

    return _chunks_in(src.old) + _chunks_in(src.new) if isinstance(src, BlendSource) else 1


def test_splice_blend_chain_is_bounded_and_limits_hold():
    ctl, cfg = make(max_plan_chunks=4, blend_window_s=0.3, stale_chunk_s=2.0)
    z = np.where(["gripper" in n for n in cfg.joint_names], 0.04, 0.0)
    ctl.update_joint_state(0.0, cfg.joint_names, z)
    ctl.enable(0.0)
    t, depth, prev = 0.0, [], None
    rng = np.random.default_rng(1)
    for k in range(150):  # a chunk every 3 ticks, each a different random slope: blends pile up
        t = round(t + cfg.period_s, 9)
        if k % 3 == 0:
            assert ctl.submit_chunk(ramp_chunk(cfg, t - 0.05, float(rng.uniform(-1, 1))), t).accepted
        out = ctl.tick(t)
        depth.append(_chunks_in(ctl._source))
        v = np.concatenate([g.velocities for g in out.groups.values()])
        if prev is not None:
            assert np.all(np.abs(v - prev) <= ctl.lim.max_acceleration * cfg.period_s * (1 + 1e-9) + 1e-12)
        prev = v
    assert max(depth) == 4


def test_watchdog_error_is_the_distance_to_the_recent_command_range():
    from fastwam_ros.control.watchdog import TrackingWatchdog

    w = TrackingWatchdog(np.array([0.1, 0.1]), np.array([0.05, 0.05]), lag_ticks=3)
    on = np.array([True, True])
    for k, cmd in enumerate([0.0, 0.1, 0.2]):
        assert not w.update(k * 0.01, np.array([cmd, cmd]), np.array([0.05, 0.5]), on)[0]
    np.testing.assert_allclose(w.error, [0.0, 0.3])  # inside [0, 0.2]; 0.3 above it
    w.update(0.03, np.array([0.3, 0.3]), np.array([0.05, 0.5]), on)  # range now [0.1, 0.3]
    np.testing.assert_allclose(w.error, [0.05, 0.2])
    tripped = [w.update(0.03 + k * 0.01, np.array([0.3, 0.3]), np.array([0.05, 0.5]), on) for k in range(1, 8)]
    first = [next(k for k, t in enumerate(tripped) if t[j]) for j in (0, 1)]
    assert first[1] < first[0]  # joint 1 was over the threshold first, joint 0 once the range left it behind
    w.update(0.2, np.array([0.3, 0.3]), np.array([0.05, 0.5]), np.array([True, False]))
    assert w.error[1] == 0.0 and np.isnan(w.over_since[1])  # unwatched: starts over


def test_per_joint_thresholds_from_the_robot_file():
    """A gripper inside an arm group that grasps (measured stays open, command closes) does not fault the arm
    when its threshold is inf; the robot file passes per-group thresholds through to ControllerConfig."""
    from fastwam_ros.robot import load_robot

    cfg = load_robot("towel_fold_bimanual").controller_config()
    g = cfg.group("left_arm")
    assert g.tracking_error_rad[-1] == float("inf") and g.tracking_error_rad[0] == 0.15
    ctl = ChunkController(cfg)
    assert ctl.watchdog.threshold[cfg.joint_names.index("left_gripper")] == float("inf")
    with pytest.raises(ConfigError, match="one value per joint"):
        d = bimanual_config_dict(arm_joints=2)
        d["groups"][0]["tracking_error_rad"] = [0.1]
        ControllerConfig.from_dict(d)


def test_gripper_groups_are_not_watched_unless_they_ask():
    d = bimanual_config_dict(arm_joints=2)
    d["groups"][3]["tracking_error_rad"] = 0.01  # right gripper opts in
    cfg = ControllerConfig.from_dict(d)
    thr = ChunkController(cfg).watchdog.threshold
    col = cfg.joint_names.index
    assert thr[col("left_gripper")] == float("inf") and thr[col("right_gripper")] == 0.01
    assert thr[col("left_joint1")] == cfg.tracking_error_rad
