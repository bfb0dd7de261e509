"""controller_node: fixed-rate timer driving the chunk controller core (fastwam_ros.control).

Subscribes to ActionChunks, joint states, the e-stop (std_msgs/Bool, latching) and robot_description;
publishes per-group commands (JointTrajectory | Float64MultiArray | JointState) and the committed prefix.
All logic lives in fastwam_ros.runtime.controller_runtime.
"""

from __future__ import annotations

from diagnostic_updater import Updater
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from fastwam_ros.msg import ActionChunk
from fastwam_ros.nodes import ros_conversions as rc
from fastwam_ros.runtime.controller_runtime import ControllerRuntime
from fastwam_ros.runtime.params import ParameterError, validate
from fastwam_ros.runtime.schemas import CONTROLLER_SCHEMA

_MSG_TYPES = {"trajectory": JointTrajectory, "position": Float64MultiArray, "joint_state": JointState}


class ControllerNode(Node):
    def __init__(self, **kwargs):
        super().__init__("controller_node", **kwargs)
        p = self.params = rc.declare_schema(self, CONTROLLER_SCHEMA)
        rc.guard_updates(self, CONTROLLER_SCHEMA, self.params)
        errors = validate(CONTROLLER_SCHEMA, p)
        if errors:
            raise ParameterError(self.get_name(), errors)
        from fastwam_ros.robot import load_robot

        robot = self.robot = load_robot(p["robot_file"])  # ConfigError names the file and field
        urdf = p["robot_description.urdf"] if p["robot_description.source"] == "parameter" else None
        self.rt = ControllerRuntime(p, robot, urdf=urdf)
        msg_type = _MSG_TYPES[robot.output_mode]
        self.pubs = {g.name: self.create_publisher(msg_type, g.command_topic, rc.command_qos(10))
                     for g in robot.groups}
        self.pub_prefix = self.create_publisher(ActionChunk, p["committed_prefix_topic"], rc.command_qos(1))
        self.create_subscription(ActionChunk, p["chunk_topic"], self._on_chunk, rc.command_qos(10))
        self.create_subscription(JointState, robot.joint_states_topic, self._on_joint_state,
                                 rc.qos(robot.joint_states_qos, depth=50))
        self.create_subscription(Bool, p["estop_topic"], self._on_estop, rc.command_qos(1))
        if p["robot_description.source"] == "topic":
            self.create_subscription(String, p["robot_description.topic"], self._on_urdf, rc.latched_qos())
        self.create_service(SetBool, "~/enable", self._srv_enable)
        self.create_service(Trigger, "~/reset", self._srv_reset)
        self.updater = Updater(self)
        self.updater.setHardwareID("fastwam_controller")
        self.updater.add("controller", self._diag)
        self.create_timer(1.0 / self.rt.config.control_rate_hz, self._tick)

    def now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_chunk(self, msg: ActionChunk) -> None:
        err = self.rt.on_chunk(self.now_s(), **rc.action_chunk_kwargs(msg))
        if err:
            self.get_logger().warning(err, throttle_duration_sec=2.0)

    def _on_joint_state(self, msg: JointState) -> None:
        self.rt.on_joint_state(rc.stamp_s(msg.header.stamp), msg.name, msg.position, self.now_s())

    def _on_estop(self, msg: Bool) -> None:
        text = self.rt.on_estop(bool(msg.data), self.now_s())
        if msg.data:
            self.get_logger().error(text)

    def _on_urdf(self, msg: String) -> None:
        err = self.rt.on_robot_description(msg.data, self.now_s())
        if err:
            self.get_logger().error(err)
        else:
            self.get_logger().info("joint limits merged from robot_description")

    def _tick(self) -> None:
        now = self.now_s()
        out = self.rt.tick(now)
        stamp = self.get_clock().now().to_msg()
        for c in out.commands:
            if c.trajectory is not None:
                msg = rc.joint_trajectory(c.trajectory)
            elif c.joint_names:
                msg = rc.joint_state(stamp, c.joint_names, c.positions, c.velocities)
            else:
                msg = rc.float64_array(c.positions)
            self.pubs[c.group].publish(msg)
        if out.prefix is not None:
            self.pub_prefix.publish(rc.fill_action_chunk(ActionChunk(), out.prefix))

    def _diag(self, stat):
        return rc.fill_diagnostic(stat, self.rt.diagnostics(self.now_s())[0])

    def _srv_enable(self, req, resp):
        resp.success, resp.message = self.rt.set_enabled(bool(req.data), self.now_s())
        return resp

    def _srv_reset(self, req, resp):
        resp.success, resp.message = True, self.rt.reset(self.now_s())
        return resp


def main() -> None:
    rc.spin_node(ControllerNode, "controller_node")


if __name__ == "__main__":
    main()
