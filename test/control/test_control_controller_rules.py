"""The controller's rules one by one (mutation testing, issue 21): chunk and joint-state rejections with the
reason counted and the text the operator reads, mode changes (enable, disable, e-stop, reset), plan
usability edges and the metrics the diagnostics publish. Short scenarios in simulated time: each test runs in
milliseconds, so a mutant of ``control/controller.py`` costs little."""

from __future__ import annotations

import numpy as np
import pytest

from fastwam_ros.control import Chunk, ChunkController, ControllerConfig
from fastwam_ros.control.synthetic import bimanual_config_dict

DT = 1 / 30


def make(**over):
    over.setdefault("trajectory_horizon_s", 0.0)
    cfg = ControllerConfig.from_dict(bimanual_config_dict(arm_joints=2, **over))
    return ChunkController(cfg), cfg


def home(cfg, arm=0.0):
    return np.where(["gripper" in n for n in cfg.joint_names], 0.04, arm)


def chunk(cfg, stamp, h=32, value=None, dt=DT, **kw):
    pos = np.tile(home(cfg), (h, 1)) if value is None else np.asarray(value, dtype=float)
    return Chunk(stamp_s=stamp, step_period_s=dt, joint_names=list(cfg.joint_names), positions=pos, **kw)


def started(t=0.0, **over):
    ctl, cfg = make(**over)
    ctl.update_joint_state(t, cfg.joint_names, home(cfg))
    ctl.enable(t)
    ctl.tick(t)
    return ctl, cfg


@pytest.mark.parametrize("kind, reason, detail", [
    ("nan", "non_finite", "positions/velocities contain NaN or inf"),
    ("dup", "duplicate_joint", "joint_names has duplicates"),
    ("estop", "estopped", "e-stop latched; reset first"),
    ("busy", "busy", "replace mode: still executing the previous chunk's first N steps"),
])
def test_rejections_carry_the_reason_counted_and_the_text_the_operator_reads(kind, reason, detail):
    """The runtime logs ``chunk N rejected: <reason> (<detail>)``: both are part of the contract."""
    ctl, cfg = started(splice_mode="replace" if kind == "busy" else "splice")
    c = chunk(cfg, 0.9)
    if kind == "nan":
        c.positions[3, 1] = np.nan
    elif kind == "dup":
        c = Chunk(0.9, DT, list(cfg.joint_names[:-1]) + [cfg.joint_names[0]], c.positions)
    elif kind == "estop":
        ctl.estop(1.0)
    else:
        assert ctl.submit_chunk(chunk(cfg, 0.8), 0.85).accepted
    r = ctl.submit_chunk(c, 1.0)
    assert (r.accepted, r.reason, r.detail) == (False, reason, detail)
    assert ctl.metrics.rejections[reason] == 1 and sum(ctl.metrics.rejections.values()) == 1


def test_disable_names_unknown_groups_and_still_disables_the_ones_after_them():
    ctl, cfg = started()
    assert ctl.disable(0.01, ["nope", "right_arm"]) == {"nope": "unknown_group", "right_arm": None}
    out = ctl.tick(0.01)
    assert out.groups["right_arm"].mode == "disabled" and out.groups["left_arm"].mode != "disabled"
    assert ctl.disable(0.02) == {g: None for g in out.groups}  # all by default
    assert all(g.mode == "disabled" for g in ctl.tick(0.02).groups.values())


def test_every_rejection_is_counted_per_reason_and_refused_with_false():
    ctl, cfg = started()
    assert ctl.metrics.rejections == {r: 0 for r in ctl.metrics.rejections} and "stale_chunk" in ctl.metrics.rejections
    for k in range(3):
        r = ctl.submit_chunk(chunk(cfg, -5.0 - k), 1.0)
        assert r.accepted is False and r.reason == "stale_chunk" and r.handoff_s is None
    assert ctl.metrics.rejections["stale_chunk"] == 3 and sum(ctl.metrics.rejections.values()) == 3


def test_reset_drops_the_plan_and_leaves_every_group_disabled_until_enabled():
    ctl, cfg = started()
    assert ctl.submit_chunk(chunk(cfg, 0.0), 0.01).accepted
    out = ctl.tick(0.05)
    assert out.plan_active and out.plan_reason is None
    ctl.estop(0.06)
    ctl.reset(0.07)
    out = ctl.tick(0.08)
    assert out.plan_active is False and out.plan_reason == "no_plan"
    assert {g.mode for g in out.groups.values()} == {"disabled"}
    ctl.enable(0.08)
    out = ctl.tick(0.09)
    out = ctl.tick(0.10)
    assert {(g.mode, g.reason) for g in out.groups.values()} == {("hold", "no_plan")}


def _s5(x):
    x = np.clip(x, 0.0, 1.0)
    return 10 * x ** 3 - 15 * x ** 4 + 6 * x ** 5


@pytest.mark.parametrize("horizon", [0.0, 0.1])
def test_the_enable_ramp_is_followed_in_position_and_velocity(horizon):
    """Enable from a measured pose 0.2 rad away from a still plan: the command follows the quintic ramp
    from the measured pose to the plan over enable_ramp_s (0.5 s) — its velocity fed forward, so the command
    stays within a few 1e-4 rad of the closed form (without the ramp's velocity it lags by ~1e-2 rad) — and
    the published trajectory follows it too."""
    T = 0.5
    ctl, cfg = make(enable_ramp_s=T, trajectory_horizon_s=horizon, trajectory_point_period_s=0.02)
    arm = [j for j, n in enumerate(cfg.joint_names) if "gripper" not in n]
    ctl.update_joint_state(0.0, cfg.joint_names, home(cfg, -0.2))
    r = ctl.submit_chunk(chunk(cfg, 0.0, h=80), 0.0)  # the plan: arms at 0 for 2.6 s, from the hand-off on
    ctl.enable(0.0)
    assert ctl.tick(0.0).groups["left_arm"].anchored  # anchored at -0.2
    t0 = r.handoff_s - cfg.period_s  # the ramp starts one period before the first tick that follows the plan
    worst, ramp = 0.0, 0
    for n in range(1, 80):
        t = n * cfg.period_s
        out = ctl.tick(t)
        ctl.update_joint_state(t, cfg.joint_names, np.concatenate([g.positions for g in out.groups.values()]))
        want = -0.2 + 0.2 * _s5((t - t0) / T)
        p = np.concatenate([g.positions for g in out.groups.values()])[arm]
        worst = max(worst, float(np.abs(p - want).max()))
        ramp += out.groups["left_arm"].mode == "ramp"
        if horizon and out.groups["left_arm"].mode == "ramp" and t < T - horizon:
            tr = out.groups["left_arm"].trajectory
            tt = tr.start_stamp_s + tr.time_from_start_s[:5]
            np.testing.assert_allclose(tr.positions[:5], (-0.2 + 0.2 * _s5((tt - t0) / T))[:, None] * np.ones((1, 2)),
                                       rtol=0, atol=2e-3)
    assert ramp >= 40 and worst < 2e-3, worst


def test_the_committed_prefix_covers_the_asked_duration_on_the_chunk_grid():
    """committed_prefix(now, obs_stamp, duration): steps obs_stamp + k·dt (dt: the newest chunk's step period,
    1/30 s before any chunk) up to now + duration; the positions where the command will be (running groups: the
    plan; the others: where the command comes to rest); the newest chunk's step index of each time."""
    ctl, cfg = make(enable_ramp_s=0.0, rtc_prefix_s=0.2)
    ctl.update_joint_state(0.0, cfg.joint_names, home(cfg))
    pre = ctl.committed_prefix(0.0, duration_s=0.1)  # nothing known yet: 1/30 s grid, rest = the state
    assert pre.step_period_s == pytest.approx(1 / 30) and pre.num_steps == 3 and pre.newest_chunk_id is None
    assert np.isnan(pre.newest_chunk_step).all() and np.allclose(pre.positions, home(cfg))
    ctl.enable(0.0)
    ctl.tick(0.0)
    pos = np.tile(home(cfg), (40, 1))
    arm = [j for j, n in enumerate(cfg.joint_names) if "gripper" not in n]
    pos[:, arm] = (0.02 * np.arange(40))[:, None]  # 0.02 rad per 0.05 s step: 0.4 rad/s
    assert ctl.submit_chunk(Chunk(0.0, 0.05, list(cfg.joint_names), pos, chunk_id=7), 0.01).accepted
    for n in range(1, 41):  # past the resume ramp (blend_window_s = 0.3 s)
        out = ctl.tick(n * cfg.period_s)
        ctl.update_joint_state(n * cfg.period_s, cfg.joint_names,
                               np.concatenate([g.positions for g in out.groups.values()]))
    assert out.groups["left_arm"].mode == "running"
    now = 40 * cfg.period_s
    for dur, obs, steps in ((None, None, 4), (0.5, None, 10), (0.3, 0.25, 9)):
        pre = ctl.committed_prefix(now, obs_stamp_s=obs, duration_s=dur)
        stamp = now if obs is None else obs
        assert pre.step_period_s == 0.05 and pre.num_steps == steps and pre.newest_chunk_id == 7
        np.testing.assert_allclose(pre.times_s, stamp + 0.05 * np.arange(steps), rtol=0, atol=1e-12)
        np.testing.assert_allclose(pre.newest_chunk_step, pre.times_s / 0.05, rtol=0, atol=1e-9)
        # the arms follow the plan (times before now: where the plan is now), the grippers hold
        t = np.maximum(pre.times_s, now)
        np.testing.assert_allclose(pre.positions[:, arm], (0.4 * t)[:, None] * np.ones((1, 4)), rtol=0, atol=1e-9)
        np.testing.assert_allclose(pre.positions[:, [j for j in range(6) if j not in arm]], 0.04, rtol=0, atol=0)
    ctl.disable(now, "left_arm")
    out = ctl.tick(now + cfg.period_s)
    g = out.groups["left_arm"]
    rest = g.positions + g.velocities * np.abs(g.velocities) / (2.0 * cfg.hold_decel_fraction * 8.0)
    pre = out.committed_prefix
    np.testing.assert_allclose(pre.positions[:, :2], np.tile(rest, (pre.num_steps, 1)), rtol=0, atol=1e-12)


def test_chunks_without_steps_are_malformed_and_one_step_chunks_expire():
    """0 steps: ``bad_shape``. One step: it ends at its stamp, never after the hand-off ``max(now + margin,
    stamp)``: ``expired`` — also with a stamp in the future (hand-off = the stamp, the end is not after it)."""
    ctl, cfg = started()
    r = ctl.submit_chunk(chunk(cfg, 0.9, value=np.zeros((0, 6))), 1.0)
    assert (r.reason, r.detail) == ("bad_shape", "positions shape (0, 6) is not [H>=1, 6 joint_names]")
    for stamp in (0.99, 1.0 + cfg.handoff_margin_s + 0.01):
        assert ctl.submit_chunk(chunk(cfg, stamp, h=1), 1.0).reason == "expired"
    assert ctl.metrics.rejections["expired"] == 2 and ctl.metrics.rejections["bad_shape"] == 1


def test_chunk_age_and_joint_state_future_limits_are_inclusive():
    """A chunk exactly stale_chunk_s old is still accepted; a joint state exactly max_future_s ahead too;
    a future chunk names how far ahead it is."""
    ctl, cfg = started(stale_chunk_s=0.5, max_future_s=0.25)
    assert ctl.submit_chunk(chunk(cfg, 0.5), 1.0).accepted  # 1.0 - 0.5 == 0.5: not older than the limit
    r = ctl.submit_chunk(chunk(cfg, 1.5), 1.0)
    assert (r.reason, r.detail) == ("future_stamp", "stamp 1.500000 is 0.500 s in the future (max_future_s=0.25)")
    assert ctl.update_joint_state(1.25, cfg.joint_names, home(cfg), now_s=1.0).accepted  # exactly 0.25 ahead
    r = ctl.update_joint_state(1.5, cfg.joint_names, home(cfg), now_s=1.0)
    assert (r.accepted, r.reason) == (False, "future_stamp")


def test_seam_metrics_measure_the_plans_at_the_hand_off():
    """Splicing a chunk at 0.4 rad into a plan at 0.3 rad: the chunks disagree by 0.1 rad at the hand-off, the
    executed plan does not jump there (the blend starts on the old plan)."""
    ctl, cfg = started(enable_ramp_s=0.0)
    arm = np.array(["gripper" not in n for n in cfg.joint_names])
    assert ctl.submit_chunk(chunk(cfg, 0.0, value=np.tile(np.where(arm, 0.3, 0.04), (32, 1))), 0.01).accepted
    ctl.tick(0.01)
    ctl.tick(0.02)
    assert ctl.submit_chunk(chunk(cfg, 0.02, value=np.tile(np.where(arm, 0.4, 0.04), (32, 1))), 0.03).accepted
    m = ctl.metrics
    assert m.seams == 1 and m.max_seam_disagreement == pytest.approx(0.1, abs=1e-12)
    assert m.last_seam_position_jump == pytest.approx(0.0, abs=1e-12)
    assert m.last_seam_velocity_jump == pytest.approx(0.0, abs=1e-12)


def test_re_enabling_a_faulted_group_keeps_the_other_groups_watchdog_running():
    """enable(clear_faults) forgets the re-enabled group's tracking history only: another group that is
    already over its threshold keeps counting towards its own fault."""
    ctl, cfg = started(enable_ramp_s=0.0, tracking_error_rad=0.05, tracking_error_s=0.3)
    right = [j for j, n in enumerate(cfg.joint_names) if n.startswith("right") and "gripper" not in n]
    left = [j for j, n in enumerate(cfg.joint_names) if n.startswith("left") and "gripper" not in n]
    ctl._groups["left_arm"].fault = "tracking_error"  # as after a trip
    ctl._groups["left_arm"].enabled = False
    meas = home(cfg)
    meas[right] = 0.2  # the right arm is 0.2 rad away from its command from now on
    for n in range(1, 11):
        ctl.update_joint_state(n * 0.01, cfg.joint_names, meas)
        ctl.tick(n * 0.01)
    over_since = ctl.watchdog.over_since[right].copy()
    assert np.all(over_since == 0.01)
    assert ctl.enable(0.1, "left_arm") == {"left_arm": None}
    assert ctl._groups["left_arm"].fault is None and np.all(np.isnan(ctl.watchdog.over_since[left]))
    np.testing.assert_array_equal(ctl.watchdog.over_since[right], over_since)


def test_time_errors_count_each_refused_tick_once_and_no_state_is_named():
    ctl, cfg = make()
    out = ctl.tick(1.0)
    assert {(g.mode, g.reason) for g in out.groups.values()} == {("no_state", "no_joint_state")}
    ctl.tick(0.5)
    ctl.tick(float("nan"))
    assert ctl.metrics.time_errors == 2


def test_plan_depth_and_time_to_exhaustion_while_waiting_and_running():
    """Before the hand-off nothing is executable (both 0); then the depth is the time to the plan's end and the
    time to exhaustion the earlier of that and the newest chunk going stale."""
    ctl, cfg = started(handoff_margin_s=0.05, stale_chunk_s=0.5)
    assert ctl.submit_chunk(chunk(cfg, 0.0, h=31), 0.0).accepted  # ends at 1.0 s, hand-off at 0.05 s
    m = ctl.tick(0.02).metrics
    assert ctl._last_output.plan_reason == "waiting_handoff"
    assert m.plan_depth_s == 0.0 and m.time_to_exhaustion_s == 0.0
    m = ctl.tick(0.25).metrics
    assert m.plan_depth_s == pytest.approx(0.75, abs=1e-9)
    assert m.time_to_exhaustion_s == pytest.approx(0.25, abs=1e-9)  # stale at 0.5 s, before the end at 1.0 s


def test_before_any_joint_state_the_committed_prefix_claims_no_pose():
    """Ticks before the first joint state publish nothing for the arms and the committed prefix (what RTC
    inpaints towards) holds NaN for joints never measured — not a made-up pose such as 0 — until their
    first state; measured joints start from where they were measured."""
    ctl, cfg = make(rtc_prefix_s=0.1)
    for n in range(3):
        out = ctl.tick(0.01 * n)
    assert all(g.positions is None for g in out.groups.values())
    assert np.isnan(out.committed_prefix.positions).all()
    ctl.update_joint_state(0.03, ["left_joint1"], [0.25])
    out = ctl.tick(0.03)
    pre = out.committed_prefix.positions
    j = cfg.joint_names.index("left_joint1")
    assert np.all(pre[:, j] == 0.25) and np.isnan(np.delete(pre, j, axis=1)).all()
