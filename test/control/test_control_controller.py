"""ChunkController scenarios in simulated time: latency skipping, seams, holds, e-stop, enable, rejections."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastwam_ros.control import Chunk, ChunkController, ControllerConfig
from fastwam_ros.control.synthetic import bimanual_config_dict

DT_CHUNK = 1 / 30


def make(**over):
    over.setdefault("trajectory_horizon_s", 0.0)
    cfg = ControllerConfig.from_dict(bimanual_config_dict(arm_joints=2, **over))
    return ChunkController(cfg), cfg


def linear_chunk(cfg, stamp, slope, offset=0.0, h=32, grip=0.04):
    """Arm joints follow offset + slope·t (t absolute, seconds); grippers constant."""
    t = stamp + DT_CHUNK * np.arange(h)
    pos = np.zeros((h, len(cfg.joint_names)))
    for j, n in enumerate(cfg.joint_names):
        pos[:, j] = grip if "gripper" in n else offset + slope * t
    return Chunk(stamp_s=stamp, step_period_s=DT_CHUNK, joint_names=cfg.joint_names, positions=pos)


def arm_cols(cfg):
    return [j for j, n in enumerate(cfg.joint_names) if "gripper" not in n]


def state_all(ctl, cfg, t, p):
    ctl.update_joint_state(t, cfg.joint_names, p)


def flat(out, key="positions"):
    return np.concatenate([getattr(out.groups[g.name], key) for g in out.groups.values()])


def start(ctl, cfg, t=0.0, p=None):
    p = np.where([("gripper" in n) for n in cfg.joint_names], 0.04, 0.0) if p is None else p
    state_all(ctl, cfg, t, p)
    ctl.enable(t)
    ctl.tick(t)
    return p


def run(ctl, cfg, t0, t1, feed=True, chunks=()):
    """Tick from t0 (exclusive) to t1 at the control rate, feeding back the command as joint state and
    submitting (arrival_s, chunk) pairs on time. Returns times and outputs."""
    dt = cfg.period_s
    chunks = sorted(chunks, key=lambda c: c[0])
    outs, times, results = [], [], []
    n = int(round((t1 - t0) / dt))
    for i in range(1, n + 1):
        t = t0 + i * dt
        while chunks and chunks[0][0] <= t + 1e-12:
            arr, ch = chunks.pop(0)
            results.append(ctl.submit_chunk(ch, arr))
        out = ctl.tick(t)
        if feed:
            state_all(ctl, cfg, t, flat(out))
        outs.append(out)
        times.append(t)
    return np.array(times), outs, results


def test_latency_skipping_executes_the_chunk_on_its_time_grid():
    ctl, cfg = make(enable_ramp_s=0.0, blend_window_s=0.1, stale_chunk_s=3.0)
    start(ctl, cfg)
    slope, stamp, now = 0.3, 0.81, 1.0  # chunk arrives 190 ms after its observation
    r = ctl.submit_chunk(linear_chunk(cfg, stamp, slope, h=64), now)
    assert r.accepted
    assert r.handoff_s >= now + cfg.period_s  # hand-off at least one control period ahead
    times, outs, _ = run(ctl, cfg, now, 2.5)
    p = np.array([flat(o) for o in outs])[:, arm_cols(cfg)]
    settled = times > 1.8
    # the command follows slope·t (the chunk's intended time), not the chunk replayed from step 0 on arrival
    np.testing.assert_allclose(p[settled], (slope * times[settled])[:, None] * np.ones((1, 4)), atol=2e-3)
    assert np.all(np.abs(p[settled] - (slope * (times[settled] - (now - stamp)))[:, None]) > 0.04)


def test_splice_is_c1_at_the_seam_and_replace_is_not():
    res = {}
    for mode in ("splice", "replace"):
        ctl, cfg = make(splice_mode=mode, control_rate_hz=500.0, handoff_margin_s=0.004, enable_ramp_s=0.0,
                        replace_execute_steps=16)
        start(ctl, cfg)
        c1 = linear_chunk(cfg, 0.05, 0.3)
        c2 = linear_chunk(cfg, 0.5, 0.1, offset=0.088)  # disagrees: 0.05 rad and 0.2 rad/s at the hand-off
        times, outs, results = run(ctl, cfg, 0.0, 1.2, chunks=[(0.1, c1), (0.69, c2)])
        assert all(r.accepted for r in results), results
        v = np.array([flat(o, "velocities") for o in outs])[:, arm_cols(cfg)]
        a = np.array([flat(o, "accelerations") for o in outs])[:, arm_cols(cfg)]
        th = results[1].handoff_s if results[1].handoff_s else 0.69
        seam = int(np.searchsorted(times, th - 1e-12))
        # velocity change across the seam tick not explained by the acceleration in effect
        res[mode] = (np.abs(v[seam] - v[seam - 1] - a[seam - 1] * cfg.period_s).max(), ctl.metrics)
        if mode == "splice":
            src = ctl._source
            m = ctl.metrics
            assert m.max_seam_disagreement > 0.045  # the chunks really disagree at the hand-off ...
            assert m.last_seam_position_jump < 1e-9 and m.last_seam_velocity_jump < 1e-9  # ... the plan does not
            # the limiter never had to step in: the executed command is the smooth spliced plan
            assert sum(int(c.sum()) for c in outs[-1].metrics.clamps.values()) == 0
            dv = np.abs(np.diff(v, axis=0))[seam - 5:seam + 100]
            assert dv.max() < 8.0 * cfg.period_s
            assert src is not None
    assert res["splice"][0] < 1e-3
    assert res["replace"][0] > 10 * res["splice"][0]


def test_plan_exhaustion_decelerates_to_a_hold_not_zero():
    ctl, cfg = make(enable_ramp_s=0.0, hold_decel_fraction=0.5)
    start(ctl, cfg, p=np.where([("gripper" in n) for n in cfg.joint_names], 0.04, 1.0))
    ch = linear_chunk(cfg, 0.0, 0.8, offset=1.0)
    times, outs, _ = run(ctl, cfg, 0.0, 3.0, chunks=[(0.05, ch)])
    modes = [o.groups["left_arm"].mode for o in outs]
    end = ch.stamp_s + 31 * DT_CHUNK
    after = times >= end + cfg.period_s
    assert all(m == "hold" for m, a in zip(modes, after) if a)
    assert outs[-1].groups["left_arm"].reason == "exhausted"
    assert all(o.groups["left_arm"].mode != "hold" for t, o in zip(times, outs) if 0.5 < t < end)
    v = np.array([flat(o, "velocities") for o in outs])[:, arm_cols(cfg)]
    a = np.array([flat(o, "accelerations") for o in outs])[:, arm_cols(cfg)]
    p = np.array([flat(o) for o in outs])[:, arm_cols(cfg)]
    i0 = int(np.argmax(after))
    before = int(np.searchsorted(times, end)) - 1
    assert np.all(np.abs(v[before] - 0.8) < 0.01)  # it was moving at 0.8 rad/s
    assert np.all(np.abs(a[i0:]) <= 0.5 * 8.0 + 1e-9)  # braking at the hold deceleration
    assert np.all(np.diff(np.abs(v[i0 - 1:]), axis=0) <= 1e-12)  # speed only decreases
    assert np.all(v[-50:] == 0) and np.ptp(p[-50:], axis=0).max() == 0  # then holds still
    last_knot = 1.0 + 0.8 * end
    stop_dist = 0.8 ** 2 / (2 * 4.0)
    np.testing.assert_allclose(p[-1], last_knot + stop_dist, atol=0.03)  # held near the end, not at zero


def test_stale_chunk_and_stale_state_hold():
    ctl, cfg = make(enable_ramp_s=0.0, stale_chunk_s=0.3, stale_state_s=0.1)
    start(ctl, cfg)
    times, outs, _ = run(ctl, cfg, 0.0, 0.5, chunks=[(0.05, linear_chunk(cfg, 0.0, 0.2))])
    assert outs[-1].groups["left_arm"].reason == "stale_chunk"
    ctl, cfg = make(enable_ramp_s=0.0, stale_state_s=0.1)
    start(ctl, cfg)
    times, outs, _ = run(ctl, cfg, 0.0, 0.3, chunks=[(0.05, linear_chunk(cfg, 0.0, 0.2))])
    assert outs[-1].groups["left_arm"].mode in ("running", "ramp")
    times, outs, _ = run(ctl, cfg, 0.3, 0.6, feed=False)
    assert outs[-1].groups["left_arm"].reason == "stale_state"
    v = flat(outs[-1], "velocities")
    assert np.all(v == 0)


def test_estop_latches_until_reset():
    ctl, cfg = make(enable_ramp_s=0.0)
    start(ctl, cfg)
    chunks = [(0.05 + 0.25 * i, linear_chunk(cfg, 0.25 * i, 0.8)) for i in range(12)]
    times, outs, _ = run(ctl, cfg, 0.0, 0.8, chunks=[c for c in chunks if c[0] <= 0.8])
    assert np.all(np.abs(flat(outs[-1], "velocities")[arm_cols(cfg)]) > 0.75)
    ctl.estop(0.8)
    later = [c for c in chunks if c[0] > 0.8]
    times, outs, results = run(ctl, cfg, 0.8, 2.5, chunks=later)
    assert all(o.groups[g].mode == "estop" for o in outs for g in o.groups)
    assert results and all(r.reason == "estopped" for r in results)
    a = np.array([flat(o, "accelerations") for o in outs])
    assert np.all(np.abs(a) <= 8.0 + 1e-9)
    i_stop = 0.8 / 8.0 / cfg.period_s  # full-limit braking: stops in ~v/a_max
    assert np.all(flat(outs[int(i_stop) + 2], "velocities") == 0)
    assert ctl.enable(2.5)["left_arm"] == "estopped"
    ctl.reset(2.5)
    out = ctl.tick(2.51)
    assert out.groups["left_arm"].mode == "disabled"
    assert ctl.enable(2.51)["left_arm"] is None
    times, outs, results = run(ctl, cfg, 2.51, 3.3, chunks=[(2.6, linear_chunk(cfg, 2.45, 0.3))])
    assert results[0].accepted and outs[-1].groups["left_arm"].mode == "running"


def test_enable_ramps_in_from_the_measured_pose():
    ctl, cfg = make(enable_ramp_s=0.5)
    measured = np.where([("gripper" in n) for n in cfg.joint_names], 0.04, -0.5)
    state_all(ctl, cfg, 0.0, measured)
    assert ctl.tick(0.0).groups["left_arm"].mode == "disabled"
    chunks = [(0.05 + 0.2 * i, linear_chunk(cfg, 0.2 * i - 0.15, 0.0, offset=0.5)) for i in range(8)]
    ctl.enable(0.0)
    times, outs, _ = run(ctl, cfg, 0.0, 1.5, chunks=chunks)
    assert outs[0].groups["left_arm"].anchored
    p = np.array([flat(o) for o in outs])[:, arm_cols(cfg)]
    np.testing.assert_allclose(p[0], -0.5, atol=1e-12)  # starts from where the robot is
    modes = [o.groups["left_arm"].mode for o in outs]
    assert "ramp" in modes and modes[-1] == "running"
    assert np.all(np.diff(p[:, 0]) >= -1e-12)  # a monotone blend, no jump
    assert np.abs(np.diff(p, axis=0)).max() <= 2.0 * cfg.period_s + 1e-12
    np.testing.assert_allclose(p[-1], 0.5, atol=1e-3)


def test_per_arm_enable_one_arm_holds_while_the_other_runs():
    ctl, cfg = make(enable_ramp_s=0.0)
    p0 = np.where([("gripper" in n) for n in cfg.joint_names], 0.04, 0.1)
    state_all(ctl, cfg, 0.0, p0)
    assert ctl.enable(0.0, ["left_arm", "left_gripper", "nope"]) == {"left_arm": None, "left_gripper": None,
                                                                     "nope": "unknown_group"}
    chunks = [(0.05 + 0.2 * i, linear_chunk(cfg, 0.2 * i - 0.15, 0.4, offset=0.1)) for i in range(10)]
    times, outs, _ = run(ctl, cfg, 0.0, 1.0, chunks=chunks[:5])
    last = outs[-1]
    assert last.groups["left_arm"].mode == "running" and last.groups["right_arm"].mode == "disabled"
    np.testing.assert_allclose(last.groups["right_arm"].positions, 0.1, atol=0)
    assert np.all(np.abs(last.groups["left_arm"].velocities - 0.4) < 0.01)
    ctl.enable(1.0, "right_arm")
    ctl.disable(1.0, ["left_arm"])
    times, outs, _ = run(ctl, cfg, 1.0, 2.0, chunks=chunks[5:])
    last = outs[-1]
    assert last.groups["left_arm"].mode == "disabled" and np.all(last.groups["left_arm"].velocities == 0)
    assert last.groups["right_arm"].mode == "running"
    a_left = np.array([o.groups["left_arm"].accelerations for o in outs])
    assert np.all(np.abs(a_left) <= 0.5 * 8.0 + 1e-9)  # left came to rest at the hold deceleration


def _chunk_kw(cfg, **kw):
    base = dict(stamp_s=0.9, step_period_s=DT_CHUNK, joint_names=list(cfg.joint_names),
                positions=np.zeros((32, len(cfg.joint_names))))
    base.update(kw)
    return Chunk(**base)


@pytest.mark.parametrize("make_chunk, now, reason", [
    (lambda c: _chunk_kw(c, positions=np.full((32, 6), np.nan)), 1.0, "non_finite"),
    (lambda c: _chunk_kw(c, positions=np.full((32, 6), np.inf)), 1.0, "non_finite"),
    (lambda c: _chunk_kw(c, positions=np.zeros((32, 5))), 1.0, "bad_shape"),
    (lambda c: _chunk_kw(c, positions=np.zeros(32)), 1.0, "bad_shape"),
    (lambda c: _chunk_kw(c, positions=[["a"] * 6] * 32), 1.0, "bad_shape"),
    (lambda c: _chunk_kw(c, velocities=np.zeros((31, 6))), 1.0, "bad_shape"),
    (lambda c: _chunk_kw(c, joint_names=list(c.joint_names[:5]) + ["elbow"]), 1.0, "unknown_joint"),
    (lambda c: _chunk_kw(c, joint_names=list(c.joint_names[:5]) + [c.joint_names[0]]), 1.0, "duplicate_joint"),
    (lambda c: _chunk_kw(c, joint_names=list(c.joint_names[:5]), positions=np.zeros((32, 5))), 1.0,
     "missing_joint"),
    (lambda c: _chunk_kw(c, step_period_s=0.0), 1.0, "bad_step_period"),
    (lambda c: _chunk_kw(c, step_period_s=-DT_CHUNK), 1.0, "bad_step_period"),
    (lambda c: _chunk_kw(c, stamp_s=float("nan")), 1.0, "bad_stamp"),
    (lambda c: _chunk_kw(c, stamp_s=5.0), 1.0, "future_stamp"),
    (lambda c: _chunk_kw(c, stamp_s=0.5, positions=np.zeros((4, 6))), 1.0, "expired"),
    (lambda c: _chunk_kw(c, stamp_s=-1.0), 1.0, "stale_chunk"),
    (lambda c: "not a chunk", 1.0, "bad_type"),
    (lambda c: _chunk_kw(c), float("inf"), "bad_time"),
])
def test_malformed_chunks_are_rejected_with_reasons(make_chunk, now, reason):
    ctl, cfg = make()
    start(ctl, cfg)
    r = ctl.submit_chunk(make_chunk(cfg), now)
    assert not r.accepted and r.reason == reason, r
    assert ctl.metrics.rejections[reason] == 1
    assert sum(ctl.metrics.rejections.values()) == 1
    assert ctl._source is None


def test_out_of_order_stamps_are_rejected_and_shuffled_columns_accepted():
    ctl, cfg = make()
    start(ctl, cfg)
    assert ctl.submit_chunk(_chunk_kw(cfg, stamp_s=0.9), 1.0).accepted
    r = ctl.submit_chunk(_chunk_kw(cfg, stamp_s=0.85), 1.01)
    assert r.reason == "non_increasing_stamp"
    names = list(cfg.joint_names)[::-1]
    pos = np.tile(np.arange(6.0)[::-1] * 0.01, (32, 1))
    assert ctl.submit_chunk(_chunk_kw(cfg, stamp_s=0.95, joint_names=names, positions=pos), 1.02).accepted
    p, _, _ = ctl._source.eval(2.0)
    np.testing.assert_allclose(p, np.arange(6.0) * 0.01)  # columns mapped to the config's order


def test_big_jump_becomes_a_limited_ramp_and_clamps_are_counted_per_joint():
    ctl, cfg = make(enable_ramp_s=0.0, blend_window_s=0.0)
    start(ctl, cfg)
    names = cfg.joint_names
    chunks = []
    for i in range(20):
        pos = np.zeros((32, 6))
        pos[:, names.index("left_joint1")] = 2.0  # a 2 rad jump
        pos[:, names.index("right_joint2")] = 50.0  # beyond the position limit (2.8)
        chunks.append((0.05 + 0.2 * i, Chunk(0.2 * i - 0.1, DT_CHUNK, names, pos, chunk_id=i)))
    times, outs, _ = run(ctl, cfg, 0.0, 4.0, chunks=chunks)
    p = np.array([flat(o) for o in outs])
    v = np.array([flat(o, "velocities") for o in outs])
    j = names.index("left_joint1")
    assert np.abs(v[:, j]).max() == pytest.approx(2.0)  # cruises at the velocity limit
    assert p[:, j].max() <= 2.0 + 1e-6  # no overshoot
    np.testing.assert_allclose(p[-1, j], 2.0, atol=1e-6)
    k = names.index("right_joint2")
    assert p[:, k].max() <= 2.8 and p[-1, k] == pytest.approx(2.8)
    counts = outs[-1].metrics.clamp_counts()
    assert counts["right_joint2"]["position"] > 0 and counts["left_joint1"]["position"] == 0
    assert counts["left_joint1"]["velocity"] > 0 and counts["left_joint2"]["velocity"] == 0
    assert counts["left_joint2"] == {"position": 0, "velocity": 0, "acceleration": 0, "non_finite": 0}


def test_replace_executes_n_steps_then_waits_and_refuses_while_busy():
    ctl, cfg = make(splice_mode="replace", replace_execute_steps=8, enable_ramp_s=0.0)
    start(ctl, cfg)
    r1 = ctl.submit_chunk(linear_chunk(cfg, 0.0, 0.3), 0.19)
    assert r1.accepted
    assert ctl.submit_chunk(linear_chunk(cfg, 0.1, 0.3), 0.25).reason == "busy"
    times, outs, _ = run(ctl, cfg, 0.19, 1.0)
    modes = [o.groups["left_arm"].mode for o in outs]
    end = r1.handoff_s + 7 * DT_CHUNK
    assert all(m == "hold" for t, m in zip(times, modes) if t >= end + cfg.period_s)
    assert ctl.submit_chunk(linear_chunk(cfg, 0.9, 0.3), 1.0).accepted


def test_committed_prefix_and_trajectory():
    ctl, cfg = make(enable_ramp_s=0.0, trajectory_horizon_s=0.2, trajectory_point_period_s=0.02, rtc_prefix_s=0.2)
    start(ctl, cfg)
    times, outs, _ = run(ctl, cfg, 0.0, 0.6, chunks=[(0.2, linear_chunk(cfg, 0.01, 0.3))])
    out = outs[-1]
    pre = out.committed_prefix
    assert pre.num_steps == math.ceil(0.2 / DT_CHUNK) and pre.stamp_s == pytest.approx(0.6)
    np.testing.assert_allclose(pre.times_s, 0.6 + DT_CHUNK * np.arange(pre.num_steps))
    np.testing.assert_allclose(pre.newest_chunk_step, (pre.times_s - 0.01) / DT_CHUNK)
    np.testing.assert_allclose(pre.positions[:, arm_cols(cfg)], (0.3 * pre.times_s)[:, None] * np.ones((1, 4)),
                               atol=1e-9)
    obs = ctl.committed_prefix(0.6, obs_stamp_s=0.55)
    assert obs.times_s[0] == pytest.approx(0.55) and obs.times_s[-1] < 0.8 + 1e-9
    tr = out.groups["left_arm"].trajectory
    assert tr.start_stamp_s >= 0.6 + cfg.period_s - 1e-12
    assert np.all(np.diff(tr.time_from_start_s) > 0) and tr.time_from_start_s[0] > 0
    assert tr.positions.shape == tr.velocities.shape and tr.positions.shape[1] == 2
    t_abs = (tr.start_stamp_s + tr.time_from_start_s)[:10]  # the tracking horizon: 10 points
    np.testing.assert_allclose(tr.positions[:10], (0.3 * t_abs)[:, None] * np.ones((1, 2)), atol=1e-4)
    np.testing.assert_allclose(tr.velocities[:10], 0.3, atol=1e-3)
    # then the braking tail: at full deceleration (8 rad/s²) from 0.3 rad/s to rest
    tail_v = tr.velocities[10:]
    assert tail_v.shape[0] == math.ceil(0.3 / (8.0 * 0.02))
    expected = (0.3 - 8.0 * 0.02 * np.arange(1, tail_v.shape[0]))[:, None] * np.ones((1, 2))
    np.testing.assert_allclose(tail_v[:-1], expected, atol=1e-3)
    assert np.all(tr.velocities[-1] == 0.0)


def test_trajectory_ends_at_rest_within_limits_for_a_stock_jtc():
    """Issue 13 item 1: every published trajectory's last point has velocity exactly 0 (a stock
    joint_trajectory_controller rejects anything else by default), the tail brakes within the acceleration
    limit and stays in the position range, and when the command is at rest no tail is added."""
    ctl, cfg = make(enable_ramp_s=0.0, trajectory_horizon_s=0.2, trajectory_point_period_s=0.02)
    start(ctl, cfg)
    times, outs, _ = run(ctl, cfg, 0.0, 1.5, chunks=[(0.2, linear_chunk(cfg, 0.01, 1.5, h=40)),
                                                      (0.8, linear_chunk(cfg, 0.7, -1.0, offset=1.0, h=40))])
    lim = ctl.lim
    tails = 0
    for o in outs:
        for g in o.groups.values():
            tr = g.trajectory
            assert np.all(tr.velocities[-1] == 0.0), (g.name, tr.velocities[-1])
            idx = [cfg.joint_names.index(j) for j in g.joint_names]
            dv = np.abs(np.diff(tr.velocities, axis=0))
            assert np.all(dv <= lim.max_acceleration[idx] * cfg.trajectory_point_period_s * (1 + 1e-9) + 1e-12)
            assert np.all((tr.positions >= lim.lower[idx]) & (tr.positions <= lim.upper[idx]))
            assert np.all(np.abs(tr.velocities) <= lim.max_velocity[idx])
            tails += tr.positions.shape[0] > 10
    assert tails > 0
    at_rest = ctl.tick(times[-1] + 5.0).groups["left_arm"].trajectory  # plan exhausted, held for seconds
    assert at_rest.positions.shape[0] == 10 and np.all(at_rest.velocities == 0.0)


def test_time_regression_repeats_the_last_output_and_no_state_is_invalid():
    ctl, cfg = make()
    out = ctl.tick(1.0)
    assert out.groups["left_arm"].mode == "no_state" and out.groups["left_arm"].positions is None
    start(ctl, cfg, t=1.0)
    out2 = ctl.tick(1.01)
    assert ctl.tick(1.0) is out2 and ctl.tick(float("nan")) is out2
    assert ctl.metrics.time_errors >= 2
    r = ctl.update_joint_state(1.02, ["left_joint1", "wheel"], [float("nan"), 3.0])
    assert r.accepted and r.reason == "partial" and ctl.metrics.state_rejections == 1
    assert not ctl.update_joint_state(1.02, ["left_joint1"], [1.0, 2.0]).accepted


def test_a_reset_clock_rebases_the_controller_instead_of_freezing_it():
    """use_sim_time with a bag replayed in a loop or a simulator reset: the clock goes back by seconds. After
    ``rebase_clock`` (what the runtimes call when the clock goes back by more than clock_jump_threshold_s) the
    plan and the old time base's stamps are gone, the arms brake to a hold with a continuous command, and joint
    states and chunks stamped in the new time base are followed again; nothing else (enables, e-stop) changes.
    Without it every tick before the old time would repeat the last output (a bad tick, ``time_errors``)."""
    ctl, cfg = make(enable_ramp_s=0.2)
    start(ctl, cfg, t=100.0)
    old = [(100.0 + 0.1 * i, linear_chunk(cfg, 100.0 + 0.1 * i - 0.02, slope=0.3, offset=-30.0)) for i in range(10)]
    _, outs, res = run(ctl, cfg, 100.0, 101.0, chunks=old)
    assert all(r.accepted for r in res) and outs[-1].groups["left_arm"].mode == "running"
    assert ctl.tick(99.0) is outs[-1] and ctl.metrics.time_errors == 1  # what the new clock would get forever
    before = outs[-1]
    ctl.rebase_clock(2.0)
    assert ctl.metrics.clock_jumps == 1 and ctl.metrics.last_clock_jump_s == pytest.approx(99.0)
    new = [(2.0 + 0.1 * i, linear_chunk(cfg, 2.0 + 0.1 * i - 0.02, slope=0.3, offset=-0.3)) for i in range(1, 30)]
    t, outs2, res2 = run(ctl, cfg, 1.99, 5.0, chunks=new)
    assert ctl.metrics.time_errors == 1 and all(r.accepted for r in res2)
    assert not outs2[0].plan_active and outs2[0].plan_reason == "no_plan"
    assert outs2[0].groups["left_arm"].reason == "stale_state"  # no joint state of the new time base yet
    assert outs2[-1].groups["left_arm"].mode == "running" and outs2[-1].plan_active
    arms = arm_cols(cfg)
    np.testing.assert_allclose(flat(outs2[-1])[arms], -0.3 + 0.3 * 5.0, atol=0.05)  # on the new chunks
    # the command is continuous through the re-base: every velocity change within max_acceleration x period
    amax = ctl.lim.max_acceleration
    vel = np.array([flat(o, "velocities") for o in [before, *outs2]])
    assert np.all(np.abs(np.diff(vel, axis=0)) <= amax * cfg.period_s * (1 + 1e-9) + 1e-12)
    pos = np.array([flat(o) for o in [before, *outs2]])
    assert np.all(np.abs(np.diff(pos, axis=0)) <= ctl.lim.max_velocity * cfg.period_s * (1 + 1e-9) + 1e-12)
    # the e-stop and enables survive a re-base
    ctl.estop(5.0)
    ctl.rebase_clock(1.0)
    assert ctl.estopped and ctl.tick(1.01).groups["left_arm"].mode == "estop"
    assert ctl.metrics.clock_jumps == 2 and ctl.metrics.last_clock_jump_s == pytest.approx(4.0)


@pytest.mark.parametrize("mode", ["ensemble", "replace"])
def test_a_reset_clock_rebases_every_splice_mode(mode):
    ctl, cfg = make(splice_mode=mode, enable_ramp_s=0.2)
    fresh = ChunkController(cfg)
    fresh.rebase_clock(5.0)  # before any tick: nothing to forget, how far back is unknown
    assert fresh.metrics.clock_jumps == 1 and fresh.metrics.last_clock_jump_s == 0.0
    start(ctl, cfg, t=100.0)
    old = [(100.0 + 0.1 * i, linear_chunk(cfg, 100.0 + 0.1 * i - 0.02, slope=0.3, offset=-30.0)) for i in range(10)]
    run(ctl, cfg, 100.0, 101.0, chunks=old)
    ctl.rebase_clock(2.0)
    new = [(2.0 + 0.1 * i, linear_chunk(cfg, 2.0 + 0.1 * i - 0.02, slope=0.3, offset=-0.3)) for i in range(1, 30)]
    _, outs, res = run(ctl, cfg, 1.99, 5.0, chunks=new)
    assert sum(r.accepted for r in res) >= 3 and not any(r.reason == "non_increasing_stamp" for r in res)
    assert outs[-1].plan_active and outs[-1].groups["left_arm"].mode in ("running", "ramp")
