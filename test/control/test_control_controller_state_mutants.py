"""The controller's measured-state rules and its setup, one by one (mutation testing, issue 21).

Which joint states ``update_joint_state`` accepts or refuses, with the reason, the text and the count the
operator reads (``metrics.state_rejections``); stamps per joint (two publishers, repeats, out of order); the
tracking watchdog's wiring (fresh state only, the ``tracking_lag_s`` window); what a freshly built controller
reports. Short scenarios in simulated time: each test runs in milliseconds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_control_controller_rules import home  # the rule tests' home pose

from fastwam_ros.control import Chunk, ChunkController, ControllerConfig
from fastwam_ros.control.synthetic import bimanual_config_dict
from fastwam_ros.joint_state import FLOAT32_MAX, checked_float32

DT = 1 / 30


def config(max_jerk=None, **over):
    """Two 2-joint arms and two grippers; no short trajectory, no enable ramp unless asked."""
    d = bimanual_config_dict(arm_joints=2, **{"trajectory_horizon_s": 0.0, "enable_ramp_s": 0.0, **over})
    for g in d["groups"]:
        g["limits"]["max_jerk"] = max_jerk
    return ControllerConfig.from_dict(d)


def make(**over):
    cfg = config(**over)
    return ChunkController(cfg), cfg


def ok(r):
    """Accepted whole: nothing skipped, nothing to report."""
    return (r.accepted, r.reason, r.detail) == (True, None, None)


def command(out):
    """The commanded positions of every joint, in the controller's joint order."""
    return np.concatenate([g.positions for g in out.groups.values()])


# ----------------------------------------------------------------------------- refused joint states


@pytest.mark.parametrize("stamp", [float("nan"), float("inf"), None, "soon", True])
def test_a_joint_state_without_a_finite_numeric_stamp_is_refused_counted_and_named(stamp):
    """``bad_stamp``: NaN/inf, no stamp, text and booleans (``True`` is no time) are refused whole, each counted
    once, and the detail shows the stamp received. Nothing is measured from such a message."""
    ctl, cfg = make()
    for k in range(1, 3):
        r = ctl.update_joint_state(stamp, cfg.joint_names, home(cfg))
        assert (r.accepted, r.reason, r.detail) == (False, "bad_stamp", f"stamp_s={stamp!r}")
        assert ctl.metrics.state_rejections == k
    out = ctl.tick(1.0)
    assert all(g.mode == "no_state" and g.positions is None for g in out.groups.values())


def test_a_joint_state_stamped_too_far_ahead_is_refused_counted_and_named():
    """``future_stamp``: more than ``max_future_s`` ahead of ``now_s``; each refusal counts once."""
    ctl, cfg = make(max_future_s=0.5)
    for k in range(1, 3):
        r = ctl.update_joint_state(2.0, cfg.joint_names, home(cfg), now_s=1.0)
        assert (r.accepted, r.reason, r.detail) == (False, "future_stamp", "stamp 2.0 is ahead of now 1.0")
        assert ctl.metrics.state_rejections == k
    assert ok(ctl.update_joint_state(1.5, cfg.joint_names, home(cfg), now_s=1.0))  # within max_future_s
    assert ctl.metrics.state_rejections == 2


@pytest.mark.parametrize("names, positions, detail", [
    ("left_joint1", [0.1], "[bad_joint_state] names must be a list of strings, got str"),  # one name as a string
    ("ab", [0.1, 0.2], "[bad_joint_state] names must be a list of strings, got str"),  # a string is not a list of two names
    (["left_joint1", ""], [0.1, 0.2], "[bad_joint_state] joint names must be non-empty strings, got ''"),
    (["left_joint1", "left_joint2"], [0.1], "[bad_joint_state] 2 names but 1 positions"),
    (["left_joint1"], ["x"], "[bad_joint_state] positions are not numbers"),
])
def test_a_malformed_joint_state_is_refused_whole_as_bad_shape_with_the_reason(names, positions, detail):
    """``bad_shape``: the message's structure breaks the shared joint-state rule; the detail says how."""
    ctl, cfg = make()
    for k in range(1, 3):
        r = ctl.update_joint_state(1.0, names, positions)
        assert (r.accepted, r.reason, r.detail) == (False, "bad_shape", detail)
        assert ctl.metrics.state_rejections == k
    assert not ctl.initialised.any()


@pytest.mark.parametrize("names", [None, 7])
def test_names_that_are_not_a_sequence_at_all_are_bad_shape_not_a_crash(names):
    """A message whose names cannot even be listed (None, a number) is refused as ``bad_shape``, counted once,
    with the error's text; it never raises into the subscriber callback."""
    ctl, cfg = make()
    r = ctl.update_joint_state(1.0, names, [0.1])
    assert r.accepted is False and r.reason == "bad_shape"
    assert r.detail == f"'{type(names).__name__}' object is not iterable"
    assert ctl.metrics.state_rejections == 1


def test_a_duplicate_name_is_counted_with_the_other_refusals():
    ctl, cfg = make()
    names = list(cfg.joint_names)
    ctl.update_joint_state(float("nan"), names, home(cfg))
    r = ctl.update_joint_state(1.0, names + [names[0]], list(home(cfg)) + [0.3])
    assert (r.accepted, r.reason) == (False, "duplicate_joint") and "left_joint1" in r.detail
    assert ctl.metrics.state_rejections == 2


# ----------------------------------------------------------------------------- accepted joint states


def test_names_given_as_any_sequence_are_read_like_a_list():
    """A tuple or a NumPy array of names (e.g. a recorded column) is read like the message's list."""
    ctl, cfg = make()
    r = ctl.update_joint_state(1.0, np.array(cfg.joint_names), home(cfg, 0.2))
    assert ok(r) and ctl.metrics.state_rejections == 0
    out = ctl.tick(1.0)
    np.testing.assert_allclose(command(out), home(cfg, 0.2))


def test_unknown_joints_are_ignored_wherever_they_appear_and_not_counted():
    """joint_states often carry more joints (a torso, wheels): they are skipped without a count, and the
    robot's joints after them in the same message are still measured."""
    ctl, cfg = make()
    names = ["torso_joint"] + list(cfg.joint_names) + ["wheel"]
    r = ctl.update_joint_state(1.0, names, [9.0] + list(home(cfg, 0.3)) + [-9.0])
    assert ok(r) and ctl.metrics.state_rejections == 0
    out = ctl.tick(1.0)
    assert all(g.valid for g in out.groups.values())
    np.testing.assert_allclose(command(out), home(cfg, 0.3))


def test_skipped_entries_are_counted_on_top_of_earlier_refusals_and_named_in_the_detail():
    """``partial``: the message is accepted, the non-finite entries are skipped, and the count adds to what
    was counted before (the diagnostics show a running total)."""
    ctl, cfg = make()
    ctl.update_joint_state(float("nan"), cfg.joint_names, home(cfg))
    ctl.update_joint_state(None, cfg.joint_names, home(cfg))
    vals = home(cfg)
    vals[0] = np.nan
    r = ctl.update_joint_state(1.0, cfg.joint_names, vals)
    assert (r.accepted, r.reason, r.detail) == (True, "partial", "1 entries skipped (non-finite or out of order)")
    assert ctl.metrics.state_rejections == 3
    vals[1] = np.inf
    r = ctl.update_joint_state(1.1, cfg.joint_names, vals)
    assert (r.accepted, r.reason, r.detail) == (True, "partial", "2 entries skipped (non-finite or out of order)")
    assert ctl.metrics.state_rejections == 5


def test_the_largest_float32_value_is_in_range_as_for_perception():
    """The range rule is perception's (``checked_float32``): ``|x| <= FLOAT32_MAX`` is accepted, so the two
    never disagree about a message; the command starts clipped into the joint's position range."""
    checked_float32([FLOAT32_MAX, -FLOAT32_MAX], ["a", "b"])  # perception accepts both
    ctl, cfg = make()
    vals = home(cfg)
    vals[0], vals[1] = FLOAT32_MAX, -FLOAT32_MAX
    r = ctl.update_joint_state(1.0, cfg.joint_names, vals)
    assert r.accepted and r.reason is None and ctl.metrics.state_rejections == 0
    out = ctl.tick(1.0)
    np.testing.assert_allclose(out.groups["left_arm"].positions, [ctl.lim.upper[0], ctl.lim.lower[1]])


def test_two_publishers_each_update_their_own_joints_and_a_repeated_stamp_is_not_out_of_order():
    """Stamps are kept per joint: an arm driver and a gripper driver publishing partial states with their own
    clocks do not refuse each other's joints; a second message with the same stamp for a joint replaces the
    value (it is not older); a really older one is skipped and counted. The enable anchors the command to the
    latest accepted measurement."""
    ctl, cfg = make()
    arms = [n for n in cfg.joint_names if "gripper" not in n]
    grips = [n for n in cfg.joint_names if "gripper" in n]
    assert ok(ctl.update_joint_state(1.00, arms, [0.1] * len(arms)))
    assert ok(ctl.update_joint_state(0.98, grips, [0.02] * len(grips)))  # its own clock
    assert ok(ctl.update_joint_state(1.00, arms[:1], [0.25]))  # the same stamp again: replaces
    r = ctl.update_joint_state(0.99, arms[1:2], [0.7])  # older than that joint's last state: skipped
    assert (r.accepted, r.reason) == (True, "partial") and ctl.metrics.state_rejections == 1
    ctl.enable(1.0)
    out = ctl.tick(1.0)
    assert out.groups["left_arm"].anchored
    expected = np.array([0.25 if n == arms[0] else 0.02 if "gripper" in n else 0.1 for n in cfg.joint_names])
    np.testing.assert_allclose(command(out), expected)


def test_the_first_joint_state_leaves_the_command_at_rest_under_a_jerk_limit():
    """A joint's first measurement starts its command at rest (velocity and acceleration 0). With a jerk
    limit, the next ticks' acceleration window is centred on that acceleration: the held command must not
    start to creep."""
    ctl, cfg = make(max_jerk=20.0)  # rad/s³: 0.2 rad/s² per 10 ms tick
    ctl.update_joint_state(0.0, cfg.joint_names, home(cfg, 0.3))
    for k in range(5):
        out = ctl.tick(0.01 * k)
        for g in out.groups.values():
            assert g.mode == "disabled"
            assert np.all(g.velocities == 0.0) and np.all(g.accelerations == 0.0), (k, g.name, g.velocities)
        np.testing.assert_array_equal(command(out), home(cfg, 0.3))


# ----------------------------------------------------------------------------- tracking watchdog wiring


def anchored_then_pushed(offset, push_stamp, **over):
    """Enabled and anchored at the home pose at t=0 (no plan: it holds), then a joint state at ``push_stamp``
    with ``left_joint1`` pushed ``offset`` away from the command."""
    ctl, cfg = make(**over)
    ctl.update_joint_state(0.0, cfg.joint_names, home(cfg))
    ctl.enable(0.0)
    assert ctl.tick(0.0).groups["left_arm"].anchored
    pushed = home(cfg)
    pushed[0] += offset
    ctl.update_joint_state(push_stamp, cfg.joint_names, pushed)
    return ctl, cfg


def test_a_joint_state_exactly_stale_state_s_old_is_still_watched():
    """The watchdog's freshness is the tick's: a state exactly ``stale_state_s`` old is fresh (the group is not
    in ``stale_state``), so its error is watched and, with ``tracking_error_s = 0``, trips at once."""
    ctl, cfg = anchored_then_pushed(0.05, 0.5, stale_state_s=0.25, tracking_error_rad=0.02, tracking_error_s=0.0)
    out = ctl.tick(0.75)  # 0.75 - 0.5 == 0.25 exactly
    assert out.metrics.tracking_error[0] == pytest.approx(0.05)
    assert np.all(out.metrics.tracking_error[1:] == 0.0)
    assert out.groups["left_arm"].fault == "tracking_error" and out.groups["left_arm"].mode == "disabled"
    assert out.metrics.tracking_faults == 1


def test_a_stale_joint_state_is_not_watched():
    """A stale state (the publisher stopped) holds the group (``stale_state``); its last value is no evidence
    that the robot does not follow, so it feeds no tracking error and never trips the watchdog."""
    ctl, cfg = anchored_then_pushed(0.05, 0.5, stale_state_s=0.25, tracking_error_rad=0.02, tracking_error_s=0.0)
    for t in (0.76, 0.8, 1.5):
        out = ctl.tick(t)
        assert (out.groups["left_arm"].mode, out.groups["left_arm"].reason) == ("hold", "stale_state")
        assert out.groups["left_arm"].fault is None
        assert np.all(out.metrics.tracking_error == 0.0)
    assert out.metrics.tracking_faults == 0 and out.metrics.max_tracking_error == 0.0


def ramp_chunk(cfg, stamp, slope, h=40):
    t = stamp + DT * np.arange(h)
    pos = np.array([[0.04 if "gripper" in n else slope * x for n in cfg.joint_names] for x in t])
    return Chunk(stamp_s=stamp, step_period_s=DT, joint_names=cfg.joint_names, positions=pos)


def lagging_robot(lag_ticks, t1=1.5):
    """A robot that reproduces the command exactly ``lag_ticks`` control ticks late while a ramp plays
    (0.5 rad/s); returns the controller after ``t1`` s and the commands sent, one row per tick."""
    ctl, cfg = make(tracking_error_rad=1.0, tracking_lag_s=0.1)  # 0.1 s at 100 Hz = 10 ticks
    ctl.update_joint_state(0.0, cfg.joint_names, home(cfg))
    ctl.enable(0.0)
    sent, t, next_chunk = [], 0.0, 0.0
    while t < t1 - 1e-9:
        t = round(t + cfg.period_s, 9)
        if t >= next_chunk:
            assert ctl.submit_chunk(ramp_chunk(cfg, t - 0.1, 0.5), t).accepted
            next_chunk = t + 0.2
        sent.append(command(ctl.tick(t)))
        ctl.update_joint_state(t, cfg.joint_names, sent[max(0, len(sent) - 1 - lag_ticks)])
    return ctl, np.array(sent)


def test_a_robot_lagging_exactly_tracking_lag_s_shows_no_tracking_error():
    """The error is the distance to the range of positions commanded during the last ``tracking_lag_s``
    (round(tracking_lag_s·rate) ticks back from the latest command): a robot exactly that late is in range."""
    ctl, sent = lagging_robot(10)
    assert np.ptp(sent[:, 0]) > 0.5  # the command did move
    assert ctl.metrics.max_tracking_error == 0.0


def test_a_robot_one_tick_later_than_tracking_lag_s_shows_one_tick_of_motion():
    """One tick later than ``tracking_lag_s`` the robot is one command step outside the range (the command
    only moves forward here): the largest error is the command's largest one-tick motion."""
    ctl, sent = lagging_robot(11)
    step = np.diff(sent[:, [n for n, g in enumerate(ctl.names) if "gripper" not in g]], axis=0)  # the arms
    assert np.all(step >= 0.0) and step.max() > 0.004  # moving forward, at least 0.4 rad/s at its fastest
    assert ctl.metrics.max_tracking_error == pytest.approx(step.max(), rel=1e-9)


# ----------------------------------------------------------------------------- a freshly built controller


def test_a_fresh_controller_reports_zero_tracking_error_per_joint():
    """Diagnostics may be read before the first tick: the tracking error is documented as one value per
    joint (0 where not watched)."""
    ctl, cfg = make()
    np.testing.assert_array_equal(ctl.metrics.tracking_error, np.zeros(len(cfg.joint_names)))
    np.testing.assert_array_equal(ctl.metrics.snapshot().tracking_error, np.zeros(len(cfg.joint_names)))


def test_clamp_counters_are_integer_counts():
    """``metrics.clamps[kind][j]`` counts ticks: integers (exact, printed as counts), also after clamping."""
    ctl, cfg = make()
    ctl.update_joint_state(0.0, cfg.joint_names, home(cfg))
    ctl.enable(0.0)
    ctl.tick(0.0)
    far = np.tile(home(cfg, 2.5), (32, 1))  # far away: the limiter clamps velocity and acceleration
    assert ctl.submit_chunk(Chunk(0.0, DT, list(cfg.joint_names), far), 0.0).accepted
    for k in range(1, 20):
        out = ctl.tick(0.01 * k)
    counts = out.metrics.clamps
    assert sum(int(c.sum()) for c in counts.values()) > 0
    for kind, c in counts.items():
        assert np.issubdtype(c.dtype, np.integer), (kind, c.dtype)


def test_the_first_tick_with_a_bad_time_still_produces_an_output():
    """Before any output exists, a non-finite ``now_s`` is counted and the tick runs at t = 0 (there is no
    previous output to repeat)."""
    ctl, cfg = make()
    out = ctl.tick(float("nan"))
    assert out.stamp_s == 0.0 and set(out.groups) == {g.name for g in cfg.groups}
    assert out.metrics.time_errors == 1 and out.metrics.ticks == 1
    assert ctl.tick(math.inf) is out


@pytest.mark.parametrize("text", ["1.0", b"1.0"])
def test_numeric_text_is_no_time_anywhere_the_controller_takes_one(text):
    """Found by the mutation work: ``float("1.0")`` reads text, so a text stamp passed the finite-number check and
    then made a comparison with float stamps raise (``update_joint_state`` with or without ``now_s``, ``tick``,
    a chunk's step period). Text is refused as a bad time, counted, and nothing raises."""
    ctl, cfg = make()
    r = ctl.update_joint_state(text, cfg.joint_names, home(cfg), now_s=1.0)
    assert (r.accepted, r.reason) == (False, "bad_stamp") and ctl.metrics.state_rejections == 1
    assert ctl.update_joint_state(0.5, cfg.joint_names, home(cfg), now_s=text).accepted  # now unknown: no future check
    ctl.tick(1.0)
    ctl.tick(text)
    assert ctl.metrics.time_errors == 1
    traj = np.tile(home(cfg), (8, 1))
    for field, reason in (("stamp_s", "bad_stamp"), ("step_period_s", "bad_step_period")):
        chunk = Chunk(**{"stamp_s": 1.0, "step_period_s": DT, "joint_names": list(cfg.joint_names),
                         "positions": traj, field: text})
        r = ctl.submit_chunk(chunk, 1.0)
        assert (r.accepted, r.reason) == (False, reason)
    assert ctl.submit_chunk(Chunk(stamp_s=1.0, step_period_s=DT, joint_names=list(cfg.joint_names), positions=traj),
                            text).reason == "bad_time"
