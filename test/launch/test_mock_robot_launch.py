"""launch_testing, issue 13: towel_fold.launch.py mock_hardware:=true runs the policy and controller against
stock ros2_control controllers on mock hardware (one JointTrajectoryController per arm with default settings,
joint_state_broadcaster). The arms must move (a stock JTC accepted our trajectories) and the controller's
diagnostics must not report a tracking error. Skipped where ROS 2 or ros2_control is not installed.
"""

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("launch_testing")
pytest.importorskip("launch_ros")

from fastwam_ros.runtime.mock_robot import ros2_control_available  # noqa: E402

_OK, _WHY = ros2_control_available()
if not _OK:
    pytest.skip(_WHY, allow_module_level=True)

import time  # noqa: E402
import unittest  # noqa: E402

import launch  # noqa: E402
import launch_testing  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

from fastwam_ros.msg import ActionChunk  # noqa: E402


@pytest.mark.launch_test
def generate_test_description():
    share = get_package_share_directory("fastwam_ros")
    graph = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(f"{share}/launch/towel_fold.launch.py"),
        launch_arguments={"demo": "true", "mock_hardware": "true", "rviz": "false", "device": "cpu"}.items(),
    )
    return launch.LaunchDescription([graph, launch_testing.actions.ReadyToTest()])


class TestMockRobot(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("mock_probe")
        cls.states, cls.chunks = [], []
        cls.node.create_subscription(JointState, "joint_states", cls.states.append, 50)
        cls.node.create_subscription(ActionChunk, "action_chunk", cls.chunks.append, 10)

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def spin_until(self, pred, timeout_s):
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.05)
            if pred():
                return True
        return False

    def test_stock_jtc_moves_the_arms(self):
        self.assertTrue(self.spin_until(lambda: len(self.states) > 10, 60.0), "no /joint_states from the broadcaster")
        first = {n: p for n, p in zip(self.states[0].name, self.states[0].position)}
        self.assertTrue(self.spin_until(lambda: len(self.chunks) >= 3, 180.0), "no ActionChunks")
        self.spin_until(lambda: False, 10.0)
        last = {n: p for n, p in zip(self.states[-1].name, self.states[-1].position)}
        moved = max(abs(last[n] - first[n]) for n in first if "gripper" not in n)
        self.assertGreater(moved, 1e-3, "the mock joints did not move: the JTC rejected the trajectories?")
        self.assertTrue(np.all(np.isfinite(list(last.values()))))


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_fastwam_nodes_exit_zero(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])
