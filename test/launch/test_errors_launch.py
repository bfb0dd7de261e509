"""launch_testing, issue 13 items 7 and 9: a configure failure is logged with its cause and the node stays up
(unconfigured); `sim_node` with a robot file it cannot simulate prints a clean parameter error (exit 2, no
Traceback).
Skipped where ROS 2 (rclpy, launch_testing) is not installed.
"""

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("launch_testing")
pytest.importorskip("launch_ros")

import unittest  # noqa: E402

import launch  # noqa: E402
import launch_ros.actions  # noqa: E402
import launch_testing  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402

SHARE = get_package_share_directory("fastwam_ros")
FILES = [f"{SHARE}/config/towel_fold.yaml", f"{SHARE}/config/demo.yaml"]


@pytest.mark.launch_test
def generate_test_description():
    policy = launch_ros.actions.LifecycleNode(
        package="fastwam_ros", executable="policy_node", name="policy_node", namespace="", output="screen",
        parameters=[*FILES, {"model.checkpoint": "/nonexistent", "model.device": "cpu", "autostart": True}])
    sim = launch_ros.actions.Node(package="fastwam_ros", executable="sim_node", name="sim_node", output="screen",
                                  parameters=[{"robot_file": "towel_fold_bimanual"}])
    return launch.LaunchDescription([policy, sim, launch_testing.actions.ReadyToTest()]), \
        {"policy": policy, "sim": sim}


class TestErrors(unittest.TestCase):
    def test_configure_failure_names_its_cause(self, proc_output, policy):
        proc_output.assertWaitFor("configure failed: parameter model.checkpoint: /nonexistent not found",
                                  process=policy, timeout=60)
        proc_output.assertWaitFor("autostart stopped", process=policy, timeout=30)

    def test_sim_node_bad_robot_gives_a_parameter_error(self, proc_info, proc_output, sim):
        proc_info.assertWaitForShutdown(process=sim, timeout=60)
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[2], process=sim)
        proc_output.assertWaitFor("invalid parameter", process=sim, timeout=5)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_policy_exits_zero_without_traceback(self, proc_info, proc_output, policy):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0], process=policy)
        for output in proc_output:
            self.assertNotIn("Traceback", output.text.decode(errors="replace"))
