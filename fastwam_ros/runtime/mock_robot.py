"""A ros2_control bring-up on mock hardware for development and tests, decided without ROS.

``mock_components/GenericSystem`` (ros2_control's mock hardware: the commanded position becomes the state)
for every joint of the robot, one ``joint_trajectory_controller/JointTrajectoryController`` per command group
with its stock default settings, and the ``joint_state_broadcaster``. launch/mock_robot.launch.py (and
towel_fold.launch.py with ``robot:=mock``) maps :func:`mock_plan` onto launch actions. ros2_control is an
optional dependency: :func:`ros2_control_available` says whether the packages are installed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

MOCK_PLUGIN = "mock_components/GenericSystem"
JTC_TYPE = "joint_trajectory_controller/JointTrajectoryController"
JSB_TYPE = "joint_state_broadcaster/JointStateBroadcaster"
# mock_components/GenericSystem ships in hardware_interface
REQUIRED_PACKAGES = ("controller_manager", "hardware_interface", "joint_trajectory_controller",
                     "joint_state_broadcaster")


def ros2_control_xml(joint_names: Sequence[str], initial: Mapping[str, float] | None = None,
                     name: str = "FastWAMMockSystem") -> str:
    """The URDF ``<ros2_control>`` element: a mock system with a position command interface and position +
    velocity state interfaces per joint (the interfaces a stock JTC in position mode uses)."""
    names = list(joint_names)
    if not names:
        raise ValueError("ros2_control_xml: no joints")
    if len(set(names)) != len(names):
        raise ValueError(f"ros2_control_xml: duplicate joint names in {names}")
    initial = dict(initial or {})
    unknown = sorted(set(initial) - set(names))
    if unknown:
        raise ValueError(f"ros2_control_xml: initial values for unknown joints {unknown}")
    lines = [f"  <ros2_control name={quoteattr(name)} type=\"system\">",
             "    <hardware>", f"      <plugin>{MOCK_PLUGIN}</plugin>",
             "    </hardware>"]
    for j in names:
        q0 = float(initial.get(j, 0.0))
        lines += [f"    <joint name={quoteattr(j)}>",
                  "      <command_interface name=\"position\"/>",
                  "      <state_interface name=\"position\">",
                  f"        <param name=\"initial_value\">{q0!r}</param>",
                  "      </state_interface>",
                  "      <state_interface name=\"velocity\"/>",
                  "    </joint>"]
    lines.append("  </ros2_control>")
    return "\n".join(lines)


def urdf_with_ros2_control(urdf: str, joint_names: Sequence[str],
                           initial: Mapping[str, float] | None = None) -> str:
    """``urdf`` with the mock ``<ros2_control>`` element inserted before ``</robot>``; every joint must exist
    in the URDF (a typo would otherwise surface only as a controller_manager error at run time)."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(urdf)
    have = {j.get("name") for j in root.iter("joint")}
    missing = [j for j in joint_names if j not in have]
    if missing:
        raise ValueError(f"joints {missing} are not in the URDF")
    if root.find("ros2_control") is not None:
        raise ValueError("the URDF already has a <ros2_control> element")
    end = urdf.rindex("</robot>")
    return urdf[:end] + ros2_control_xml(joint_names, initial) + "\n" + urdf[end:]


def controller_manager_params(groups: Mapping[str, Sequence[str]], update_rate_hz: int = 100,
                              controller_suffix: str = "_arm_controller") -> dict[str, Any]:
    """Parameter file content (``{node: {"ros__parameters": ...}}``) for the controller_manager and one JTC per
    group named ``<group><suffix>`` (its topic ``<name>/joint_trajectory`` = controller_node's default command
    topic). JTC settings other than joints/interfaces are left at their stock defaults on purpose."""
    if not groups:
        raise ValueError("controller_manager_params: no groups")
    cm: dict[str, Any] = {"update_rate": int(update_rate_hz), "joint_state_broadcaster": {"type": JSB_TYPE}}
    out: dict[str, Any] = {}
    for g, joints in groups.items():
        name = f"{g}{controller_suffix}"
        cm[name] = {"type": JTC_TYPE}
        out[name] = {"ros__parameters": {"joints": list(joints), "command_interfaces": ["position"],
                                         "state_interfaces": ["position", "velocity"]}}
    return {"controller_manager": {"ros__parameters": cm}, **out}


@dataclass
class MockPlan:
    robot_description: str
    params: dict[str, Any]
    controllers: list[str] = field(default_factory=list)  # spawned in this order (broadcaster first)


def mock_plan(urdf: str, groups: Mapping[str, Sequence[str]], initial: Mapping[str, float] | None = None,
              update_rate_hz: int = 100) -> MockPlan:
    joints = [j for js in groups.values() for j in js]
    params = controller_manager_params(groups, update_rate_hz)
    ctrls = ["joint_state_broadcaster"] + [k for k in params if k != "controller_manager"]
    return MockPlan(urdf_with_ros2_control(urdf, joints, initial), params, ctrls)


def demo_mock_plan(update_rate_hz: int = 100) -> MockPlan:
    """The simulated demo robot's joints (config/demo.yaml groups ``left``/``right``) on mock hardware, starting
    at the simulator's home pose."""
    from fastwam_ros.sim import HOME_POSITIONS, JOINT_NAMES
    from fastwam_ros.sim.robot import urdf_string

    groups = {"left": [j for j in JOINT_NAMES if j.startswith("left_")],
              "right": [j for j in JOINT_NAMES if j.startswith("right_")]}
    home = {n: float(q) for n, q in zip(JOINT_NAMES, HOME_POSITIONS)}
    return mock_plan(urdf_string(), groups, home, update_rate_hz)


def ros2_control_available(find_package=None) -> tuple[bool, str]:
    """(True, "") when every ros2_control package the mock bring-up needs is installed, else (False, why)."""
    if find_package is None:
        try:
            from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
        except ImportError:
            return False, "ament_index_python is not importable (no ROS 2 environment)"

        def find_package(name):
            try:
                get_package_share_directory(name)
                return True
            except PackageNotFoundError:
                return False
    missing = [p for p in REQUIRED_PACKAGES if not find_package(p)]
    if missing:
        return False, (f"ros2_control packages missing: {missing} (e.g. apt install ros-$ROS_DISTRO-ros2-control "
                       "ros-$ROS_DISTRO-ros2-controllers)")
    return True, ""
