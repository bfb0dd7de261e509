"""Issue 13 items 2, 3, 4, 7, 9 and the mock robot, on their ROS-free side: one-shot autostart, refused
transitions, callbacks that never raise, exit codes, configure failures with their cause, clean sim_node
parameter errors, the ros2_control bring-up. The node wiring is covered by test/launch (needs ROS)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from fastwam_ros.runtime.launch_plan import plan
from fastwam_ros.runtime.lifecycle import (
    TRANSITION_ACTIVATE,
    TRANSITION_CONFIGURE,
    Autostart,
    exit_status,
    guard_callback,
    transition_refusal,
)
from fastwam_ros.runtime.params import ParameterError, load_node_parameters, resolve
from fastwam_ros.runtime.schemas import POLICY_SCHEMA, SIM_SCHEMA

REPO = Path(__file__).resolve().parents[2]
TOWEL = REPO / "config" / "towel_fold.yaml"
DEMO = REPO / "config" / "demo.yaml"

# rclpy's available_transitions rows (id, label, start_id, start_label, goal_id, goal_label)
FROM_UNCONFIGURED = [(1, "configure", 1, "unconfigured", 10, "configuring"),
                     (5, "shutdown", 1, "unconfigured", 12, "shuttingdown")]
FROM_ACTIVE = [(4, "deactivate", 3, "active", 14, "deactivating"), (7, "shutdown", 3, "active", 12, "shuttingdown")]


def test_unavailable_transition_is_refused_with_a_reason():
    assert transition_refusal(FROM_UNCONFIGURED, "unconfigured", 1) is None
    why = transition_refusal(FROM_UNCONFIGURED, "unconfigured", 3)  # activate by id: rclpy raised RCLError
    assert "id 3" in why and "unconfigured" in why and "configure (1)" in why
    assert transition_refusal(FROM_ACTIVE, "active", 0, "deactivate") is None
    assert "cleanup" in transition_refusal(FROM_ACTIVE, "active", 0, "cleanup")
    assert transition_refusal([], "finalized", 1) is not None


def test_autostart_is_one_shot_so_a_paused_node_stays_paused():
    a = Autostart(True)
    assert a.next_transition("unconfigured") == TRANSITION_CONFIGURE
    assert a.next_transition("inactive") == TRANSITION_ACTIVATE
    assert a.next_transition("active") is None and a.done
    # the operator deactivates / cleans up / configures: autostart never re-activates
    for state in ("inactive", "unconfigured", "inactive"):
        assert a.next_transition(state) is None
    assert Autostart(False).next_transition("unconfigured") is None


def test_autostart_stops_after_a_failed_configure():
    a = Autostart(True)
    assert a.next_transition("unconfigured") == TRANSITION_CONFIGURE
    assert a.next_transition("unconfigured") is None  # configure failed: no retry loop
    assert a.failed and "unconfigured" in a.failed


def test_guarded_callbacks_never_raise():
    reports = []
    down = [False]

    def tick():
        raise RuntimeError("Failed to publish: publisher's context is invalid")

    def srv(req, resp):
        raise ValueError("bad request")

    g = guard_callback(tick, report=reports.append, shutting_down=lambda: down[0], name="tick")
    assert g() is None and reports == []  # the shutdown race: silent
    g2 = guard_callback(lambda: 1 / 0, report=reports.append, shutting_down=lambda: down[0], name="tick")
    g2()
    assert reports == ["tick failed: ZeroDivisionError: division by zero"]
    down[0] = True
    g2()
    assert len(reports) == 1  # during shutdown: dropped
    resp = object()
    gs = guard_callback(srv, report=reports.append, shutting_down=lambda: False, default="response")
    assert gs("req", resp) is resp
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C still ends the spin
        guard_callback(lambda: (_ for _ in ()).throw(KeyboardInterrupt()), report=reports.append,
                       shutting_down=lambda: False)()


def test_exit_status_is_zero_for_signals_and_the_shutdown_race():
    class ExternalShutdownException(Exception):
        pass

    class RCLError(RuntimeError):
        pass

    assert exit_status(None, True) == (0, None)
    assert exit_status(KeyboardInterrupt(), True) == (0, None)
    assert exit_status(ExternalShutdownException(), False) == (0, None)
    assert exit_status(RCLError("Failed to publish: publisher's context is invalid"), True) == (0, None)
    assert exit_status(RuntimeError("anything"), False) == (0, None)  # the context was already shut down
    code, msg = exit_status(RuntimeError("a real bug"), True)
    assert code == 1 and "a real bug" in msg
    assert exit_status(SystemExit(2), True) == (2, None)


# ------------------------------------------------------------------------------------------ configure


def _demo_params(**over):
    o = load_node_parameters(TOWEL, "policy_node")
    o.update(load_node_parameters(DEMO, "policy_node"))
    o.update({"robot_file": "demo_aloha", "model.checkpoint": str(REPO / "models" / "demo"), "model.device": "cpu",
              **over})
    return resolve(POLICY_SCHEMA, o, strict=False)


def test_configure_failures_carry_their_cause():
    from fastwam_ros.runtime.policy_setup import configure_policy

    p = _demo_params()

    def broken_factory():
        raise ImportError("No module named 'flash_attn'")

    res = configure_policy(p, factory=broken_factory)
    assert not res.ok and res.errors == ["model load failed: ImportError: No module named 'flash_attn'"]

    def pipeline_boom(_p):
        raise KeyError("perception.tile_hw")

    res = configure_policy(p, factory=lambda: object(), pipeline_factory=pipeline_boom)
    assert not res.ok and "building the observation pipeline failed: KeyError" in res.errors[0]
    assert res.details and "Traceback" in res.details[0]

    res = configure_policy(_demo_params(**{"model.checkpoint": "/nonexistent"}))
    assert res.errors == ["parameter model.checkpoint: /nonexistent not found (no such file or directory, nor an "
                          "org/name Hub id)"]
    res = configure_policy(p, factory=lambda: object(), pipeline_factory=lambda _p: object())
    assert res.ok and res.runtime is not None
    res.runtime.worker.stop()


def test_configure_with_the_bundled_demo_model():
    from fastwam_ros.runtime.policy_setup import configure_policy

    res = configure_policy(_demo_params(**{"model.num_threads": 0}))  # 0: leave torch's global thread count alone
    try:
        assert res.ok, res.errors
        assert {"load", "instruction", "warmup"} <= set(res.load_timing_s)
        assert res.runtime.limits.horizon == 32  # the model's horizon, enforced per chunk
    finally:
        if res.runtime is not None:
            res.runtime.worker.stop()


def test_nonexistent_checkpoint_is_not_found_not_a_policy_directory():
    from fastwam_ros.runtime.schemas import require_checkpoint

    errs = require_checkpoint(_demo_params(**{"model.checkpoint": "/nonexistent/ckpt"}))
    assert errs == ["model.checkpoint: /nonexistent/ckpt not found (no such file or directory, nor an org/name "
                    "Hub id)"]
    assert "policy directory" not in errs[0]
    assert require_checkpoint(_demo_params()) == []
    # a Hub id is not a local path: the loader resolves it (from_pretrained("org/name")), configure must not refuse it
    assert require_checkpoint(_demo_params(**{"model.checkpoint": "org/fastwam-towel@v1"})) == []
    assert require_checkpoint(_demo_params(**{"model.checkpoint": "./org/missing"})) != []


def test_sim_node_parameter_errors_are_clean():
    from fastwam_ros.runtime.sim_runtime import build_sim

    _robot, _cfg, sim, bridge = build_sim(resolve(SIM_SCHEMA, {}))  # defaults: the demo robot file
    try:
        assert bridge.joint_names == list(sim.joint_names) and len(sim.joint_names) == 14
    finally:
        sim.close()
    with pytest.raises(ParameterError) as e:  # a robot the simulator cannot be: a message, not a traceback
        build_sim(resolve(SIM_SCHEMA, {"robot_file": "towel_fold_bimanual"}))
    assert "the simulated robot does not have" in str(e.value) and "robot_file:=demo_aloha" in str(e.value)
    with pytest.raises(ParameterError, match="robot_file"):
        build_sim(resolve(SIM_SCHEMA, {"robot_file": "/nonexistent/robot.yaml"}))


# ------------------------------------------------------------------------------------------ mock robot


def test_ros2_control_tag_from_joint_list():
    from fastwam_ros.runtime.mock_robot import MOCK_PLUGIN, ros2_control_xml

    el = ET.fromstring(ros2_control_xml(["j1", "j2"], {"j2": 0.5}))
    assert el.tag == "ros2_control" and el.get("type") == "system"
    assert el.find("hardware/plugin").text == MOCK_PLUGIN
    joints = el.findall("joint")
    assert [j.get("name") for j in joints] == ["j1", "j2"]
    for j in joints:
        assert [c.get("name") for c in j.findall("command_interface")] == ["position"]
        assert [s.get("name") for s in j.findall("state_interface")] == ["position", "velocity"]
    assert float(joints[1].find("state_interface/param").text) == 0.5
    with pytest.raises(ValueError, match="duplicate"):
        ros2_control_xml(["j1", "j1"])
    with pytest.raises(ValueError, match="unknown"):
        ros2_control_xml(["j1"], {"jx": 1.0})


def test_mock_plan_from_the_robot_file():
    from fastwam_ros.robot import load_robot
    from fastwam_ros.runtime.mock_robot import JTC_TYPE, robot_mock_plan, urdf_with_ros2_control

    robot = load_robot("demo_aloha")
    mp = robot_mock_plan("demo_aloha")
    root = ET.fromstring(mp.robot_description)
    assert [j.get("name") for j in root.find("ros2_control").findall("joint")] == \
        [j for g in robot.groups for j in g.joints]
    # one stock controller per group, named by the group's command topic (where controller_node publishes)
    names = [g.command_topic.split("/")[0] for g in robot.groups]
    assert mp.controllers == ["joint_state_broadcaster", *names]
    cm = mp.params["controller_manager"]["ros__parameters"]
    for g, name in zip(robot.groups, names):
        assert cm[name]["type"] == JTC_TYPE
        params = mp.params[name]["ros__parameters"]
        assert params["joints"] == list(g.joints)
        assert "allow_nonzero_velocity_at_trajectory_end" not in params  # stock defaults on purpose
    home = float(root.find("ros2_control/joint[@name='left_shoulder']/state_interface/param").text)
    assert home == pytest.approx(-0.96)  # starts at the simulator's home pose
    # another robot file (no URDF of its own): a minimal URDF with its joints
    other = robot_mock_plan("towel_fold_bimanual")
    assert {j.get("name") for j in ET.fromstring(other.robot_description).iter("joint")} >= \
        set(load_robot("towel_fold_bimanual").joints)
    with pytest.raises(ValueError, match="not in the URDF"):
        urdf_with_ros2_control("<robot name='r'><joint name='a'/></robot>", ["a", "b"])
    yaml.safe_dump(mp.params)  # serialisable as a parameter file


def test_stock_controller_names_come_from_command_topics():
    from types import SimpleNamespace as G

    from fastwam_ros.runtime.mock_robot import JGPC_TYPE, stock_controllers

    out = stock_controllers([G(name="a", output="position", command_topic="/arm_ctrl/commands", joints=("j",))])
    assert out == {"arm_ctrl": (JGPC_TYPE, ["j"])}
    with pytest.raises(ValueError, match="joint_trajectory"):
        stock_controllers([G(name="a", output="trajectory", command_topic="arm/cmd", joints=("j",))])
    with pytest.raises(ValueError, match="no stock"):
        stock_controllers([G(name="a", output="joint_state", command_topic="x/y", joints=("j",))])


def test_ros2_control_availability_names_what_is_missing():
    from fastwam_ros.runtime.mock_robot import ros2_control_available

    ok, why = ros2_control_available(lambda name: name != "joint_trajectory_controller")
    assert not ok and "joint_trajectory_controller" in why
    assert ros2_control_available(lambda name: True) == (True, "")


def test_launch_plan_mock_hardware(tmp_path):
    written = {}

    def write(content):
        path = tmp_path / "ctrl.yaml"
        path.write_text(yaml.safe_dump(content))
        written["c"] = content
        return str(path)

    lp = plan({"demo": "true", "mock_hardware": "true"}, REPO, write_params=write)
    names = [n.name for n in lp.nodes]
    assert names[:3] == ["policy_node", "controller_node", "sim_node"]
    assert "controller_manager" in names and "robot_state_publisher" in names
    assert [n.arguments[0] for n in lp.nodes if n.executable == "spawner"] == \
        ["joint_state_broadcaster", "left_arm_controller", "left_gripper_controller", "right_arm_controller",
         "right_gripper_controller"]
    sim = lp.nodes[2].parameters[-1]
    assert sim["follow_joint_states"] is True and sim["publish_robot_description"] is False
    cm = next(n for n in lp.nodes if n.name == "controller_manager")
    assert cm.parameters[0] == str(tmp_path / "ctrl.yaml") and "ros2_control" in cm.parameters[1]["robot_description"]
    with pytest.raises(ValueError, match="robot:="):
        plan({"demo": "false", "mock_hardware": "true"}, REPO, write_params=write)
    lp = plan({"demo": "false", "mock_hardware": "true", "robot": "towel_fold_bimanual"}, REPO, write_params=write)
    assert "sim_node" not in [n.name for n in lp.nodes]  # no cameras to render without the demo


def test_launch_file_has_no_reactivating_event_handler():
    text = (REPO / "launch" / "towel_fold.launch.py").read_text()
    assert "import OnStateTransition" not in text and "TRANSITION_ACTIVATE" not in text
