"""What towel_fold.launch.py starts, decided without ROS (the launch file only maps this to actions).

Launch arguments (strings, as launch gives them) → node specs with parameter files, overrides, remappings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LAUNCH_ARGS: list[tuple[str, str, str]] = [
    ("config", "", "Robot/parameter YAML (ros__parameters per node). Empty = share/fastwam_ros/config/"
                   "towel_fold.yaml, plus config/demo.yaml on top when demo:=true."),
    ("robot", "", "Robot file: a name under share/fastwam_ros/config/robots (towel_fold_bimanual, demo_aloha) or a "
                  "path; sets every node's robot_file. Empty = the YAML's robot_file; demo_aloha with demo:=true. "
                  "A robot file with command.output rows (libero_franka) runs row_executor_node instead of "
                  "controller_node."),
    ("checkpoint", "", "Fast-WAM checkpoint directory or file (sets policy_node model.checkpoint). Empty = the "
                       "value in the YAML; with demo:=true the bundled models/demo."),
    ("device", "", "Torch device for the policy (cuda, cuda:N, cpu). Empty = the YAML's model.device "
                   "(demo:=true defaults to cpu)."),
    ("rviz", "false", "Open rviz2 with config/towel_fold.rviz (true/false)."),
    ("demo", "true", "Run against the simulated demo robot (sim_node) with the bundled demo checkpoint, so "
                     "the first command works without a robot (true/false)."),
    ("namespace", "", "ROS namespace for all nodes (relative topics follow it)."),
    ("use_sim_time", "false", "Use /clock (bag replay, simulators) for every node (true/false)."),
    ("mock_hardware", "false", "Drive the robot file's joints through ros2_control on mock hardware "
                               "(mock_components/GenericSystem, the stock controller each group's command topic "
                               "names, e.g. one JointTrajectoryController per arm, joint_state_broadcaster); with "
                               "demo:=true sim_node then only renders the cameras at the measured joint states. "
                               "Needs ros2_control (true/false)."),
]

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_bool(name: str, value: str) -> bool:
    v = str(value).strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"launch argument {name}:={value!r} is not a boolean (true/false)")


@dataclass
class NodeSpec:
    package: str
    executable: str
    name: str
    parameters: list[Any] = field(default_factory=list)  # file paths (str) and override dicts, in order
    lifecycle: bool = False
    arguments: list[str] = field(default_factory=list)
    remappings: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class LaunchPlan:
    namespace: str
    nodes: list[NodeSpec]
    autostart: list[str]  # lifecycle nodes that configure + activate themselves once (parameter autostart)


def _write_yaml_tmp(content: dict[str, Any]) -> str:
    import tempfile

    import yaml

    with tempfile.NamedTemporaryFile("w", prefix="fastwam_mock_controllers_", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(content, f, sort_keys=False)
        return f.name


def mock_robot_nodes(common: dict[str, Any], robot_file: str,
                     write_params: Callable[[dict[str, Any]], str] = _write_yaml_tmp,
                     update_rate_hz: int = 100) -> list[NodeSpec]:
    """ros2_control on mock hardware for a robot file: controller_manager, robot_state_publisher (the URDF with
    its <ros2_control> element) and one spawner per controller (broadcaster first)."""
    from .mock_robot import robot_mock_plan

    mp = robot_mock_plan(robot_file, update_rate_hz)
    params_file = write_params(mp.params)
    nodes = [
        NodeSpec("controller_manager", "ros2_control_node", "controller_manager",
                 [params_file, {"robot_description": mp.robot_description, **common}],
                 remappings=[("~/robot_description", "robot_description")]),
        NodeSpec("robot_state_publisher", "robot_state_publisher", "robot_state_publisher",
                 [{"robot_description": mp.robot_description, **common}]),
    ]
    for ctrl in mp.controllers:
        nodes.append(NodeSpec("controller_manager", "spawner", f"spawner_{ctrl}", [common],
                              arguments=[ctrl, "--controller-manager", "controller_manager"]))
    return nodes


def executor_for(robot: str) -> str:
    """The node that executes a robot's chunks: ``row_executor_node`` for robot files whose groups use
    ``command.output: rows`` (LIBERO), else ``controller_node`` (also when the file cannot be read here: that
    node then reports the error)."""
    if not robot:
        return "controller_node"
    from fastwam_ros.robot import load_robot

    try:
        return "row_executor_node" if load_robot(robot).output_mode == "rows" else "controller_node"
    except (ValueError, OSError):
        return "controller_node"


def plan(args: dict[str, str], share: Path,
         write_params: Callable[[dict[str, Any]], str] | None = None) -> LaunchPlan:
    """The nodes to start for these launch arguments. ``share``: the package's share directory;
    ``write_params``: writes a generated parameter file and returns its path (mock hardware only)."""
    demo = parse_bool("demo", args.get("demo", "true"))
    mock = parse_bool("mock_hardware", args.get("mock_hardware", "false"))
    rviz = parse_bool("rviz", args.get("rviz", "false"))
    sim_time = parse_bool("use_sim_time", args.get("use_sim_time", "false"))
    ns = args.get("namespace", "").strip().strip("/")
    files = [args["config"]] if args.get("config") else [str(share / "config" / "towel_fold.yaml")]
    if demo and not args.get("config"):
        files.append(str(share / "config" / "demo.yaml"))
    for f in files:
        if not Path(f).is_file():
            raise FileNotFoundError(f"parameter file {f} does not exist (launch argument config:=)")
    robot = args.get("robot", "").strip() or ("demo_aloha" if demo else "")
    common: dict[str, Any] = {"use_sim_time": sim_time}
    if robot:
        common["robot_file"] = robot
    policy_over: dict[str, Any] = dict(common)
    if args.get("checkpoint"):
        policy_over["model.checkpoint"] = args["checkpoint"]
    elif demo:
        policy_over["model.checkpoint"] = str(share / "models" / "demo")
    if args.get("device"):
        policy_over["model.device"] = args["device"]
    elif demo:
        policy_over["model.device"] = "cpu"
    executor = executor_for(robot)
    if executor == "row_executor_node":
        policy_over["trigger.mode"] = "on_request"  # one chunk per executed block, as the official loop
        policy_over["rtc.mode"] = "off"  # the official sampler; the row executor publishes no plan
    auto = {"autostart": True}
    managed = executor == "controller_node"  # a lifecycle node that activates itself once (autostart)
    nodes = [
        NodeSpec("fastwam_ros", "policy_node", "policy_node", [*files, {**policy_over, **auto}], lifecycle=True),
        NodeSpec("fastwam_ros", executor, executor, [*files, {**common, **auto} if managed else common],
                 lifecycle=managed),
    ]
    if mock:
        if not robot:
            raise ValueError("mock_hardware:=true needs a robot file: robot:=<name or path> (or demo:=true)")
        if demo:  # cameras only: the simulator renders the measured joint states of the mock hardware
            nodes.append(NodeSpec("fastwam_ros", "sim_node", "sim_node",
                                  [*files, {**common, "use_sim_time": False, "follow_joint_states": True,
                                            "publish_robot_description": False}]))
        ros2c = {"use_sim_time": sim_time}
        nodes += mock_robot_nodes(ros2c, robot, *([write_params] if write_params else []))
    elif demo:
        # The simulator's timers run on wall time even when it publishes /clock.
        nodes.append(NodeSpec("fastwam_ros", "sim_node", "sim_node", [*files, {**common, "use_sim_time": False}]))
        # TF for rviz's robot model: robot_state_publisher over the simulated robot's URDF and joint_states
        # (on a real robot, the robot's own bringup runs it).
        from fastwam_ros.sim.robot import urdf_string

        nodes.append(NodeSpec("robot_state_publisher", "robot_state_publisher", "robot_state_publisher",
                              [{"robot_description": urdf_string(), "use_sim_time": sim_time}]))
    if rviz:
        nodes.append(NodeSpec("rviz2", "rviz2", "rviz2", [{"use_sim_time": sim_time}],
                              arguments=["-d", str(share / "config" / "towel_fold.rviz")]))
    return LaunchPlan(namespace=ns, nodes=nodes, autostart=["policy_node"] + (["controller_node"] if managed else []))
