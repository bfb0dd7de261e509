"""The controller node's ROS-free runtime: e-stop/reset/enable exactly as the README documents (issue 13 item 6),
the tracking fault in diagnostics (item 5), JTC-acceptable commands and the JTC settings check (item 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fastwam_ros.robot import load_robot
from fastwam_ros.runtime.chunks import chunk_fields
from fastwam_ros.runtime.controller_runtime import ControllerRuntime, group_command
from fastwam_ros.runtime.jtc_check import DEGRADE, REJECT, controller_of, jtc_problems, unreachable_advice
from fastwam_ros.runtime.params import load_node_parameters, resolve
from fastwam_ros.runtime.schemas import CONTROLLER_SCHEMA

REPO = Path(__file__).resolve().parents[2]
TOWEL = REPO / "config" / "towel_fold.yaml"


def _rt(sync=None, **control) -> ControllerRuntime:
    """The towel-fold robot file (trajectory output), ``control`` overriding its ControllerConfig fields and
    ``sync`` (a dict) its PerceptionConfig sync fields."""
    import yaml

    doc = yaml.safe_load((REPO / "config" / "robots" / "towel_fold_bimanual.yaml").read_text())
    doc.setdefault("control", {}).update(control)
    doc.setdefault("sync", {}).update(sync or {})
    o = load_node_parameters(TOWEL, "controller_node")
    return ControllerRuntime(resolve(CONTROLLER_SCHEMA, o, strict=True), load_robot(doc))


def _stream(rt, t0, t1, q, chunk_every=0.1, follow=False, level=0.1):
    """Joint states (constant ``q``, or the command when ``follow``) and chunks near ``q`` at the control rate."""
    names = list(rt.config.joint_names)
    t, next_chunk, outs, cid = t0, t0, [], 0
    while t < t1 - 1e-9:
        t = round(t + 0.01, 9)
        if t >= next_chunk:
            f = chunk_fields(np.full((32, 14), level) + 0.05 * np.arange(32)[:, None] / 32, names, stamp_s=t - 0.05,
                             chunk_id=cid, step_period_s=1 / 30)
            rt.on_chunk(t, stamp=f.stamp, chunk_id=cid, step_period_s=f.step_period_s, joint_names=f.joint_names,
                        num_steps=f.num_steps, positions=f.positions, velocities=f.velocities)
            cid += 1
            next_chunk = t + chunk_every
        out = rt.tick(t)
        outs.append(out)
        cmd = rt.last_out
        meas = np.concatenate([g.positions for g in cmd.groups.values()]) if follow and all(
            g.valid for g in cmd.groups.values()) else q
        rt.on_joint_state(t, names, meas, t)
    return outs, t


def test_after_reset_groups_stay_disabled_until_enable_even_while_chunks_stream():
    rt = _rt()
    q = np.full(14, 0.1)
    outs, t = _stream(rt, 10.0, 11.0, q, follow=True)
    assert set(outs[-1].modes.values()) <= {"running", "ramp"}
    rt.on_estop(True, t)
    outs, t = _stream(rt, t, t + 1.0, q, follow=True)
    assert set(outs[-1].modes.values()) == {"estop"} and rt.diagnostics(t)[0].level == 2
    rt.reset(t)
    outs, t = _stream(rt, t, t + 3.0, q, follow=True)  # chunks keep coming for 3 s
    assert set(outs[-1].modes.values()) == {"disabled"}
    d = rt.diagnostics(t)[0]
    assert d.level == 1 and "~/enable" in d.message  # not OK: it will not move by itself
    ok, _ = rt.set_enabled(True, t)
    assert ok
    outs, t = _stream(rt, t, t + 2.0, q, follow=True)
    assert set(outs[-1].modes.values()) <= {"running", "ramp"}
    assert rt.diagnostics(t)[0].level == 0


def test_enable_on_start_still_enables_the_first_time():
    rt = _rt()
    outs, _ = _stream(rt, 10.0, 11.5, np.full(14, 0.1), follow=True)
    assert set(outs[-1].modes.values()) <= {"running", "ramp"}


def test_tracking_fault_is_an_error_in_diagnostics_and_survives_chunks():
    rt = _rt(enable_ramp_s=0.0)
    q = np.zeros(14)  # the robot never moves; the chunks ask for 0.4 .. 0.45 rad
    outs, t = _stream(rt, 10.0, 11.0, q, level=0.4)
    faults = [g for g, go in rt.last_out.groups.items() if go.fault == "tracking_error"]
    assert faults, [go.mode for go in rt.last_out.groups.values()]
    d = rt.diagnostics(t)[0]
    assert d.level == 2 and "tracking_error" in d.message
    assert dict(d.values)["tracking faults"] == str(len(faults))
    outs, t = _stream(rt, t, t + 1.0, q, level=0.4)  # chunks (with enable_on_start) do not clear it
    assert all(rt.last_out.groups[g].fault == "tracking_error" for g in faults)
    rt.set_enabled(True, t)
    rt.tick(t + 0.01)
    assert all(rt.last_out.groups[g].fault is None for g in faults)


def test_every_trajectory_command_ends_at_rest():
    rt = _rt()
    outs, _ = _stream(rt, 10.0, 11.5, np.full(14, 0.1), follow=True)
    n = 0
    for o in outs:
        for c in o.commands:
            assert c.trajectory is not None
            last_v = c.trajectory.velocities[-1]
            assert all(v == 0.0 for v in last_v)
            n += 1
    assert n > 100


def test_single_point_fallback_sends_positions_only():
    class G:
        valid, positions, velocities, trajectory = True, np.array([0.1, 0.2]), np.array([1.0, 1.0]), None
        joint_names = ("a", "b")

    c = group_command("trajectory", "arm", G(), 0.01)
    assert c.trajectory.positions == [[0.1, 0.2]] and c.trajectory.velocities == [[]]


# ------------------------------------------------------------------------------------------ JTC settings


JOINTS = [f"left_joint{i}" for i in range(1, 8)]


def test_jtc_defaults_accept_our_commands():
    humble_defaults = {"joints": JOINTS, "allow_partial_joints_goal": False, "interpolation_method": "splines",
                       "cmd_timeout": 0.0, "command_interfaces": ["position"], "open_loop_control": True,
                       "allow_nonzero_velocity_at_trajectory_end": False}
    assert jtc_problems("/left_arm_controller", humble_defaults, JOINTS, 0.01) == []


def test_jtc_settings_that_reject_or_degrade_are_listed_with_the_command():
    p = {"joints": JOINTS + ["left_gripper"], "allow_partial_joints_goal": False, "interpolation_method": "none",
         "cmd_timeout": 0.02, "command_interfaces": ["velocity"], "interpolate_from_desired_state": False}
    probs = {x.parameter: x for x in jtc_problems("/left_arm_controller", p, JOINTS, 0.01)}
    assert probs["allow_partial_joints_goal"].severity == REJECT
    assert probs["allow_partial_joints_goal"].command == \
        "ros2 param set /left_arm_controller allow_partial_joints_goal true"
    assert probs["interpolation_method"].severity == DEGRADE
    assert probs["interpolation_method"].command == "ros2 param set /left_arm_controller interpolation_method splines"
    assert probs["cmd_timeout"].command.endswith("cmd_timeout 0.5")
    assert probs["command_interfaces"].command is None
    assert probs["interpolate_from_desired_state"].command.endswith("interpolate_from_desired_state true")
    missing = jtc_problems("/c", {"joints": JOINTS[:3]}, JOINTS, 0.01)
    assert [x.severity for x in missing] == [REJECT] and missing[0].command is None and "left_joint4" in missing[0].why
    assert jtc_problems("/c", {"joints": JOINTS + ["x"], "allow_partial_joints_goal": True}, JOINTS, 0.01) == []
    assert "open_loop_control" in {x.parameter for x in jtc_problems("/c", {"open_loop_control": False}, JOINTS, 0.01)}


def test_controller_name_from_the_command_topic():
    assert controller_of("left_arm_controller/joint_trajectory") == "/left_arm_controller"
    assert controller_of("left_arm_controller/joint_trajectory", "/robot1") == "/robot1/left_arm_controller"
    assert controller_of("/x/arm/joint_trajectory") == "/x/arm"
    assert "ros2 param set /c allow_partial_joints_goal true" in unreachable_advice("/c", JOINTS)


def test_the_node_follows_a_bag_loop_or_simulator_reset_instead_of_freezing():
    """The clock goes back 11 s (use_sim_time: `ros2 bag play --loop`, a simulator reset). The runtime re-bases
    the core once (logged, in diagnostics) and the arms run again on the joint states and chunks of the new time
    base within a second; a sync.clock_jump_threshold_s above the jump shows what happened before: every tick until
    the clock is past the old time again repeats the last output and every new chunk is refused."""
    q = np.full(14, 0.1)
    for threshold, resumes in ((1.0, True), (20.0, False)):
        rt = _rt(sync={"clock_jump_threshold_s": threshold})
        outs, t = _stream(rt, 10.0, 12.0, q, follow=True)
        assert set(outs[-1].modes.values()) <= {"running", "ramp"} and rt.pop_notices() == []
        outs, t = _stream(rt, 1.0, 3.0, q, follow=True)  # the clock restarted at 1.0 s
        m = rt.core.metrics
        if resumes:
            assert set(outs[-1].modes.values()) == {"running"} and rt.last_out.stamp_s == t
            assert m.clock_jumps == 1 and m.time_errors == 0
            lines = rt.pop_notices()
            assert len(lines) == 1 and "went back 10.990 s" in lines[0] and rt.pop_notices() == []
            values = dict(rt.diagnostics(t)[0].values)
            assert values["clock resets (time base changes)"].startswith("1, last went back 10.990")
            assert rt.rejections.as_dict().get("chunk:non_increasing_stamp", 0) == 0
        else:
            assert rt.last_out.stamp_s < 12.0 + 1e-9 and m.time_errors >= 190 and m.clock_jumps == 0
            assert rt.rejections.as_dict().get("chunk:non_increasing_stamp", 0) >= 15


def test_clock_watch_tells_a_reset_clock_from_a_late_or_bad_call():
    from fastwam_ros.runtime.clock import ClockWatch

    w = ClockWatch(1.0)
    assert w.went_back(10.0) is None and w.went_back(12.0) is None
    assert w.went_back(11.5) is None and w.newest_s == 12.0  # a late call: not a new clock, the newest stays
    assert w.went_back(float("nan")) is None and w.went_back(float("inf")) is None and w.newest_s == 12.0
    assert w.went_back(11.0) is None  # exactly the threshold: not yet
    assert w.went_back(10.5) == pytest.approx(1.5) and w.newest_s == 10.5 and w.jumps == 1
    assert w.went_back(10.6) is None and w.went_back(0.0) == pytest.approx(10.6) and w.jumps == 2
    with pytest.raises(ValueError):
        ClockWatch(0.0)
