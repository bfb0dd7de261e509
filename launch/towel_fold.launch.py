"""Towel folding with Fast-WAM: policy_node and controller_node (lifecycle nodes that configure + activate
themselves once at start: parameter autostart), and in demo mode the simulated robot (sim_node), optionally on
ros2_control mock hardware (mock_hardware:=true). `ros2 launch fastwam_ros towel_fold.launch.py --show-args`
lists the arguments. Which nodes and parameter files is decided by fastwam_ros.runtime.launch_plan
(unit-tested). After start the lifecycle is the operator's: `ros2 lifecycle set /policy_node deactivate`
pauses the policy and it stays paused until `activate`.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from fastwam_ros.runtime.launch_plan import LAUNCH_ARGS, parse_bool, plan
from fastwam_ros.runtime.mock_robot import ros2_control_available


def _setup(context, *args, **kwargs):
    values = {name: LaunchConfiguration(name).perform(context) for name, _, _ in LAUNCH_ARGS}
    if parse_bool("mock_hardware", values.get("mock_hardware", "false")):
        ok, why = ros2_control_available()
        if not ok:
            raise RuntimeError(f"mock_hardware:=true needs ros2_control: {why}")
    lp = plan(values, Path(get_package_share_directory("fastwam_ros")))
    actions = []
    for spec in lp.nodes:
        common = dict(package=spec.package, executable=spec.executable, name=spec.name, namespace=lp.namespace,
                      parameters=spec.parameters, arguments=spec.arguments, remappings=spec.remappings,
                      output="screen", emulate_tty=True)
        # no OnStateTransition handlers: the nodes activate themselves once (autostart), so a later
        # deactivate / cleanup / configure cycle is not undone by the launch file
        actions.append(LifecycleNode(**common) if spec.lifecycle else Node(**common))
    return actions


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=desc) for name, default, desc in LAUNCH_ARGS]
        + [OpaqueFunction(function=_setup)]
    )
