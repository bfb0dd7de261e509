"""launch_testing: the towel_fold graph in demo mode (policy_node + controller_node + sim_node).

Checks that ActionChunks and per-arm commands arrive with the right types, stamps and rates, and that a
latched e-stop stops the commanded motion. Skipped where ROS 2 (rclpy, launch_testing) is not installed.
Run with `colcon test` or `launch_test test/launch/test_graph_launch.py`.
"""

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("launch_testing")
pytest.importorskip("launch_ros")

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
from std_msgs.msg import Bool  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from fastwam_ros.msg import ActionChunk  # noqa: E402

DEMO_JOINTS = 14


@pytest.mark.launch_test
def generate_test_description():
    share = get_package_share_directory("fastwam_ros")
    graph = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(f"{share}/launch/towel_fold.launch.py"),
        launch_arguments={"demo": "true", "rviz": "false", "device": "cpu"}.items(),
    )
    return launch.LaunchDescription([graph, launch_testing.actions.ReadyToTest()])


class TestGraph(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("graph_probe")
        cls.chunks, cls.cmds, cls.states = [], [], []
        cls.node.create_subscription(ActionChunk, "action_chunk", lambda m: cls.chunks.append((time.monotonic(), m)), 10)
        cls.node.create_subscription(JointTrajectory, "left_arm_controller/joint_trajectory",
                                     lambda m: cls.cmds.append((time.monotonic(), m)), 50)
        cls.node.create_subscription(JointState, "joint_states", lambda m: cls.states.append(m), 50)
        cls.estop = cls.node.create_publisher(Bool, "e_stop", 1)

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

    def test_chunks_commands_and_estop(self):
        # sim publishes images and joint states; the policy configures (demo model), activates and infers
        self.assertTrue(self.spin_until(lambda: len(self.chunks) >= 3, 120.0), "no ActionChunks from policy_node")
        _, c = self.chunks[-1]
        self.assertEqual(len(c.joint_names), DEMO_JOINTS)
        self.assertEqual(len(c.positions), c.num_steps * DEMO_JOINTS)
        self.assertGreater(c.step_period_s, 0.0)
        self.assertTrue(np.all(np.isfinite(c.positions)))
        stamps = [m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec for _, m in self.chunks]
        self.assertTrue(all(b > a for a, b in zip(stamps, stamps[1:])), "chunk stamps must increase")
        ids = [m.chunk_id for _, m in self.chunks]
        self.assertEqual(ids, sorted(ids))
        self.assertGreater(stamps[-1], 0.0)

        # controller commands: JointTrajectory with velocities at roughly the control rate
        self.assertTrue(self.spin_until(lambda: len(self.cmds) >= 50, 30.0), "no commands from controller_node")
        recent = [t for t, _ in self.cmds[-50:]]
        rate = (len(recent) - 1) / (recent[-1] - recent[0])
        self.assertGreater(rate, 20.0, f"command rate {rate:.1f} Hz")
        _, tr = self.cmds[-1]
        self.assertEqual(len(tr.joint_names), 6)  # demo_aloha: left_arm group (its gripper is its own group)
        self.assertTrue(tr.points and len(tr.points[0].velocities) == 6)

        # e-stop: latched; the commanded positions settle (braking) and stop changing
        for _ in range(3):
            self.estop.publish(Bool(data=True))
            self.spin_until(lambda: False, 0.1)
        self.spin_until(lambda: False, 2.0)  # braking time
        n = len(self.cmds)
        self.spin_until(lambda: False, 1.0)
        after = [m for _, m in self.cmds[n:]]
        if after:  # still publishing a hold: it must not move
            first = np.array(after[0].points[0].positions)
            for m in after[1:]:
                np.testing.assert_allclose(np.array(m.points[0].positions), first, atol=1e-6)
                self.assertTrue(np.allclose(m.points[0].velocities, 0.0, atol=1e-6))


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0])  # SIGINT: clean exit
