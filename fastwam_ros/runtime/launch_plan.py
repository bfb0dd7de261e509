"""What towel_fold.launch.py starts, decided without ROS (the launch file only maps this to actions).

Launch arguments (strings, as launch gives them) → node specs with parameter files, overrides, remappings.
"""

from __future__ import annotations

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
    autostart: list[str]  # lifecycle nodes to configure + activate


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


def plan(args: dict[str, str], share: Path) -> LaunchPlan:
    """The nodes to start for these launch arguments. ``share``: the package's share directory."""
    demo = parse_bool("demo", args.get("demo", "true"))
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
    nodes = [
        NodeSpec("fastwam_ros", "policy_node", "policy_node", [*files, policy_over], lifecycle=True),
        NodeSpec("fastwam_ros", executor, executor, [*files, common]),
    ]
    if demo:
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
    return LaunchPlan(namespace=ns, nodes=nodes, autostart=["policy_node"])
