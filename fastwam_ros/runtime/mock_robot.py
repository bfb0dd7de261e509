"""A ros2_control bring-up on mock hardware for development and tests, decided without ROS.

``mock_components/GenericSystem`` (ros2_control's mock hardware: the commanded position becomes the state)
for every joint of the robot file, the stock controller each group's command topic names (a
``joint_trajectory_controller/JointTrajectoryController`` per group for output trajectory) with its default
settings, and the ``joint_state_broadcaster``. launch/mock_robot.launch.py (and towel_fold.launch.py with
``mock_hardware:=true``) maps :func:`mock_plan` onto launch actions. ros2_control is an
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


JGPC_TYPE = "position_controllers/JointGroupPositionController"
# controller_node output kind -> (stock controller type, topic suffix it subscribes to)
_STOCK = {"trajectory": (JTC_TYPE, "/joint_trajectory"), "position": (JGPC_TYPE, "/commands")}


def stock_controllers(groups: Sequence[Any]) -> dict[str, tuple[str, list[str]]]:
    """Robot-file groups → {controller name: (type, joints)}: the controller named by each group's command topic
    (``left_arm_controller/joint_trajectory`` → a JointTrajectoryController ``left_arm_controller``;
    ``<name>/commands`` with output position → a JointGroupPositionController)."""
    out: dict[str, tuple[str, list[str]]] = {}
    for g in groups:
        if g.output not in _STOCK:
            raise ValueError(f"group {g.name}: output {g.output!r} has no stock ros2_control controller "
                             f"(use trajectory or position)")
        ctype, suffix = _STOCK[g.output]
        topic = g.command_topic.strip("/")
        if not topic.endswith(suffix) or "/" not in topic:
            raise ValueError(f"group {g.name}: command topic {g.command_topic!r} is not '<controller>{suffix}' "
                             f"(what a stock {ctype} subscribes to)")
        name = topic[: -len(suffix)].rsplit("/", 1)[-1]
        if name in out:
            raise ValueError(f"groups share the controller {name!r}")
        out[name] = (ctype, list(g.joints))
    return out


def controller_manager_params(controllers: Mapping[str, tuple[str, Sequence[str]]],
                              update_rate_hz: int = 100) -> dict[str, Any]:
    """Parameter file content (``{node: {"ros__parameters": ...}}``) for the controller_manager, the
    joint_state_broadcaster and the stock controllers. Settings other than joints/interfaces are left at their
    stock defaults on purpose (what we send must be accepted by a default JTC)."""
    if not controllers:
        raise ValueError("controller_manager_params: no controllers")
    cm: dict[str, Any] = {"update_rate": int(update_rate_hz), "joint_state_broadcaster": {"type": JSB_TYPE}}
    out: dict[str, Any] = {}
    for name, (ctype, joints) in controllers.items():
        cm[name] = {"type": ctype}
        params: dict[str, Any] = {"joints": list(joints)}
        if ctype == JTC_TYPE:
            params.update(command_interfaces=["position"], state_interfaces=["position", "velocity"])
        out[name] = {"ros__parameters": params}
    return {"controller_manager": {"ros__parameters": cm}, **out}


def minimal_urdf(joint_names: Sequence[str], name: str = "fastwam_mock_robot") -> str:
    """A URDF with just the named joints (revolute, each on its own link under ``base_link``): enough for
    robot_state_publisher and mock hardware when the robot file names no URDF."""
    lines = ['<?xml version="1.0"?>', f"<robot name={quoteattr(name)}>", '  <link name="base_link"/>']
    for j in joint_names:
        lines += [f"  <link name={quoteattr(j + '_link')}/>",
                  f"  <joint name={quoteattr(j)} type=\"revolute\">",
                  '    <parent link="base_link"/>', f"    <child link={quoteattr(j + '_link')}/>",
                  '    <axis xyz="0 0 1"/>', '    <limit lower="-3.1416" upper="3.1416" velocity="10" effort="100"/>',
                  "  </joint>"]
    lines.append("</robot>")
    return "\n".join(lines)


@dataclass
class MockPlan:
    robot_description: str
    params: dict[str, Any]
    controllers: list[str] = field(default_factory=list)  # spawned in this order (broadcaster first)


def mock_plan(robot: Any, initial: Mapping[str, float] | None = None, update_rate_hz: int = 100) -> MockPlan:
    """A RobotSpec (robot file) on mock hardware: its URDF (``urdf:``, else :func:`minimal_urdf`) with a
    ``<ros2_control>`` element for its joints, and the stock controllers its groups' command topics name."""
    joints = [j for g in robot.groups for j in g.joints]
    controllers = stock_controllers(robot.groups)
    urdf = robot.urdf_xml() or minimal_urdf(robot.joints)
    params = controller_manager_params(controllers, update_rate_hz)
    return MockPlan(urdf_with_ros2_control(urdf, joints, initial), params,
                    ["joint_state_broadcaster", *controllers])


def robot_mock_plan(robot_file: str, update_rate_hz: int = 100) -> MockPlan:
    """:func:`mock_plan` for a robot file (name or path); the simulated demo robot starts at its home pose."""
    from fastwam_ros.robot import load_robot
    from fastwam_ros.sim import HOME_POSITIONS, JOINT_NAMES

    robot = load_robot(robot_file)
    home = {n: float(q) for n, q in zip(JOINT_NAMES, HOME_POSITIONS) if n in robot.joints}
    return mock_plan(robot, home, update_rate_hz)


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
