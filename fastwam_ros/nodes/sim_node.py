"""sim_node: the demo's simulated bimanual robot (fastwam_ros.sim) on ROS.

A timer steps the simulator at physics_rate_hz and publishes sensor_msgs/JointState; cameras are rendered
at the robot file's camera rate into sensor_msgs/Image (rgb8, all cameras of one frame share a stamp); optional
/clock. It follows the controller's commands in any output mode, or (follow_joint_states) only renders the
cameras at measured joint states, e.g. of ros2_control mock hardware. Logic: fastwam_ros.runtime.sim_runtime.
"""

from __future__ import annotations

import numpy as np
from rclpy.node import Node
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from fastwam_ros.nodes import ros_conversions as rc
from fastwam_ros.nodes.shell import guard, spin_node
from fastwam_ros.runtime.schemas import SIM_SCHEMA
from fastwam_ros.runtime.sim_runtime import build_sim


class SimNode(Node):
    def __init__(self, **kwargs):
        super().__init__("sim_node", **kwargs)
        p = self.params = rc.declare_schema(self, SIM_SCHEMA)
        # ParameterError (robot file, joints the simulator lacks) → a clean message and exit 2
        robot, self.sim_config, self.sim, self.bridge = build_sim(p, self.get_name())
        self.robot = robot
        self.dt_s = 1.0 / p["physics_rate_hz"]
        self.follow = bool(p["follow_joint_states"])
        self.pub_js = None if self.follow else self.create_publisher(JointState, robot.joint_states_topic,
                                                                     rc.qos("reliable", depth=10))
        self.pub_cam = {c.name: self.create_publisher(Image, c.topic, rc.qos("reliable", depth=5))
                        for c in robot.cameras}
        self.pub_clock = self.create_publisher(Clock, "/clock", 10) if p["publish_clock"] else None
        if p["publish_robot_description"]:
            self.pub_urdf = self.create_publisher(String, "robot_description", rc.latched_qos())
            self.pub_urdf.publish(String(data=self.sim.urdf()))
        mode = "follow" if self.follow else robot.output_mode
        if self.follow:
            self.create_subscription(JointState, robot.joint_states_topic,
                                     guard(self, lambda m: self.bridge.on_joint_state(m.name, m.position),
                                           "joint_states"), rc.qos("sensor_data", depth=10))
        for grp in (robot.groups if not self.follow else []):
            g, topic = grp.name, grp.command_topic
            if mode == "trajectory":
                self.create_subscription(JointTrajectory, topic,
                                         guard(self, lambda m, g=g: self._on_traj(g, m), f"command {g}"),
                                         rc.command_qos(10))
            elif mode == "position":
                self.create_subscription(Float64MultiArray, topic,
                                         guard(self, lambda m, g=g: self.bridge.on_positions(g, list(m.data)),
                                               f"command {g}"), rc.command_qos(10))
            else:
                self.create_subscription(JointState, topic,
                                         guard(self, lambda m: self.bridge.on_joint_state(m.name, m.position),
                                               f"command {g}"), rc.command_qos(10))
        self._t0_ns = self.get_clock().now().nanoseconds
        self.create_timer(self.dt_s, guard(self, self._tick, "tick"))

    def now_s(self) -> float:
        if self.pub_clock is not None:
            return self._t0_ns * 1e-9 + self.sim.time_s
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_traj(self, group: str, m: JointTrajectory) -> None:
        times = [pt.time_from_start.sec + pt.time_from_start.nanosec * 1e-9 for pt in m.points]
        pos = np.array([list(pt.positions) for pt in m.points], dtype=np.float64) if m.points else np.zeros((0, 0))
        self.bridge.on_trajectory(group, list(m.joint_names), rc.stamp_s(m.header.stamp), times, pos, self.now_s())

    def _tick(self) -> None:
        now = self.now_s()
        self.sim.step(self.bridge.command_at(now), self.dt_s)
        now = self.now_s()
        stamp = Time(nanoseconds=int(round(now * 1e9))).to_msg()
        if self.pub_clock is not None:
            self.pub_clock.publish(Clock(clock=stamp))
        if self.pub_js is not None:
            self.pub_js.publish(rc.joint_state(stamp, self.sim.joint_names, self.sim.joint_positions(),
                                               self.sim.joint_velocities()))
        if self.bridge.camera_due(now, self.sim_config.camera_rate_hz):
            for c, pub in self.pub_cam.items():
                pub.publish(rc.rgb8_image(self.sim.render(c), stamp, frame_id=f"{c}_camera"))


def main() -> None:
    spin_node(SimNode, "sim_node", on_exit=lambda node: node.sim.close())


if __name__ == "__main__":
    main()
