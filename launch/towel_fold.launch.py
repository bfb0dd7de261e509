"""Towel folding with Fast-WAM: policy_node (lifecycle, auto configure + activate), controller_node, and in
demo mode the simulated robot (sim_node). `ros2 launch fastwam_ros towel_fold.launch.py --show-args` lists the
arguments. Which nodes and parameter files is decided by fastwam_ros.runtime.launch_plan (unit-tested).
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from fastwam_ros.runtime.launch_plan import LAUNCH_ARGS, plan


def _setup(context, *args, **kwargs):
    values = {name: LaunchConfiguration(name).perform(context) for name, _, _ in LAUNCH_ARGS}
    lp = plan(values, Path(get_package_share_directory("fastwam_ros")))
    actions = []
    for spec in lp.nodes:
        common = dict(package=spec.package, executable=spec.executable, name=spec.name, namespace=lp.namespace,
                      parameters=spec.parameters, arguments=spec.arguments, remappings=spec.remappings,
                      output="screen", emulate_tty=True)
        if not spec.lifecycle:
            actions.append(Node(**common))
            continue
        node = LifecycleNode(**common)
        actions.append(node)
        if spec.name in lp.autostart:
            # configure at start; activate once it reports 'inactive' (works on Humble and Jazzy)
            actions.append(RegisterEventHandler(OnStateTransition(
                target_lifecycle_node=node, goal_state="inactive",
                entities=[EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                                      transition_id=Transition.TRANSITION_ACTIVATE))])))
            actions.append(EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                                       transition_id=Transition.TRANSITION_CONFIGURE)))
    return actions


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=desc) for name, default, desc in LAUNCH_ARGS]
        + [OpaqueFunction(function=_setup)]
    )
