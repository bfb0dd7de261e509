"""controller_node: managed lifecycle node; a fixed-rate timer drives the chunk controller core
(fastwam_ros.control).

configure = validate parameters, build the controller, create publishers/subscriptions/timer; activate = start
commanding (the first time, groups enable on the next chunk with enable_on_start, else on ~/enable);
deactivate = stop publishing commands and disable the groups (after a re-activate, call ~/enable);
cleanup = drop everything. With ``autostart`` the node
configures and activates itself once at start. The e-stop is honoured in every configured state.

Subscribes to ActionChunks, joint states, the e-stop (std_msgs/Bool, latching) and robot_description;
publishes per-group commands (JointTrajectory | Float64MultiArray | JointState) and the committed prefix.
All logic lives in fastwam_ros.runtime.controller_runtime.
"""

from __future__ import annotations

from diagnostic_updater import Updater
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from fastwam_ros.msg import ActionChunk
from fastwam_ros.nodes import ros_conversions as rc
from fastwam_ros.nodes.jtc_probe import JTCProbe
from fastwam_ros.nodes.shell import (
    TeardownOnCleanup,
    guard,
    guard_change_state,
    release,
    spin_node,
    start_autostart,
)
from fastwam_ros.runtime.controller_runtime import ControllerRuntime
from fastwam_ros.runtime.params import validate
from fastwam_ros.runtime.schemas import CONTROLLER_SCHEMA

_MSG_TYPES = {"trajectory": JointTrajectory, "position": Float64MultiArray, "joint_state": JointState}


class ControllerNode(TeardownOnCleanup, LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("controller_node", **kwargs)
        self.params = rc.declare_schema(self, CONTROLLER_SCHEMA)
        rc.guard_updates(self, CONTROLLER_SCHEMA, self.params)
        self.rt: ControllerRuntime | None = None
        self.active = False
        self.pubs: dict = {}
        self.pub_prefix = None
        self._subs, self._timers = [], []
        self.create_service(SetBool, "~/enable", guard(self, self._srv_enable, "~/enable", "response"))
        self.create_service(Trigger, "~/reset", guard(self, self._srv_reset, "~/reset", "response"))
        self.updater = Updater(self)
        self.updater.setHardwareID("fastwam_controller")
        self.updater.add("controller", self._diag)
        guard_change_state(self)
        start_autostart(self, self.params["autostart"])

    def now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # -- lifecycle ---------------------------------------------------------------------------------

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        p = self.params
        errors = validate(CONTROLLER_SCHEMA, p)
        if errors:
            for e in errors:
                self.get_logger().error(f"configure failed: parameter {e}")
            return TransitionCallbackReturn.FAILURE
        try:
            from fastwam_ros.robot import load_robot

            robot = self.robot = load_robot(p["robot_file"])  # ConfigError names the file and field
            urdf = p["robot_description.urdf"] if p["robot_description.source"] == "parameter" else None
            self.rt = ControllerRuntime(p, robot, urdf=urdf)
            msg_type = _MSG_TYPES[robot.output_mode]
            self.pubs = {g.name: self.create_lifecycle_publisher(msg_type, g.command_topic, rc.command_qos(10))
                         for g in robot.groups}
            self.pub_prefix = self.create_lifecycle_publisher(ActionChunk, p["committed_prefix_topic"],
                                                              rc.command_qos(1))
            sub = self.create_subscription
            self._subs = [
                sub(ActionChunk, p["chunk_topic"], guard(self, self._on_chunk, "action chunk"), rc.command_qos(10)),
                sub(JointState, robot.joint_states_topic, guard(self, self._on_joint_state, "joint_states"),
                    rc.qos(robot.joint_states_qos, depth=50)),
                sub(Bool, p["estop_topic"], guard(self, self._on_estop, "e-stop"), rc.command_qos(1)),
            ]
            if p["robot_description.source"] == "topic":
                self._subs.append(sub(String, p["robot_description.topic"], guard(self, self._on_urdf, "urdf"),
                                      rc.latched_qos()))
            self._timers = [self.create_timer(1.0 / self.rt.config.control_rate_hz, guard(self, self._tick, "tick"))]
            if robot.output_mode == "trajectory" and getattr(self, "jtc_probe", None) is None:
                # are the stock JTCs set up to accept what we send? (checked once, a few seconds after start)
                self.jtc_probe = JTCProbe(self, {g.name: g.command_topic for g in robot.groups},
                                          {g.name: list(g.joints) for g in robot.groups}, self.rt.config.period_s)
        except Exception as exc:  # noqa: BLE001 - rclpy would swallow it without a word
            self.get_logger().error(f"configure failed: {type(exc).__name__}: {exc}")
            self._teardown()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        if self.rt is None:
            self.get_logger().error("activate refused: not configured")
            return TransitionCallbackReturn.FAILURE
        self.active = True
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self.active = False
        if self.rt is not None:
            self.rt.set_enabled(False, self.now_s())
        return super().on_deactivate(state)

    def _teardown(self) -> None:
        self.active = False
        release(self, self._timers, self._subs, [*self.pubs.values(), self.pub_prefix])
        self._timers, self._subs, self.pubs, self.pub_prefix = [], [], {}, None
        self.rt = None

    # -- callbacks ---------------------------------------------------------------------------------

    def _on_chunk(self, msg: ActionChunk) -> None:
        if self.rt is None:
            return
        err = self.rt.on_chunk(self.now_s(), **rc.action_chunk_kwargs(msg))
        if err:
            self.get_logger().warning(err, throttle_duration_sec=2.0)

    def _on_joint_state(self, msg: JointState) -> None:
        if self.rt is not None:
            self.rt.on_joint_state(rc.stamp_s(msg.header.stamp), msg.name, msg.position, self.now_s())

    def _on_estop(self, msg: Bool) -> None:
        if self.rt is None:
            return
        text = self.rt.on_estop(bool(msg.data), self.now_s())
        if msg.data:
            self.get_logger().error(text)

    def _on_urdf(self, msg: String) -> None:
        if self.rt is None:
            return
        err = self.rt.on_robot_description(msg.data, self.now_s())
        if err:
            self.get_logger().error(err)
        else:
            self.get_logger().info("joint limits merged from robot_description")

    def _tick(self) -> None:
        if self.rt is None or not self.active:
            return
        now = self.now_s()
        out = self.rt.tick(now)
        for line in self.rt.pop_notices():  # e.g. the clock went back (bag loop, simulator reset)
            self.get_logger().warning(line)
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
        if self.rt is None:
            stat.summary(rc.DiagnosticStatus.WARN, "unconfigured")
            return stat
        try:
            d = self.rt.diagnostics(self.now_s())[0]
            if not self.active:
                d.escalate(1, "inactive (lifecycle): not commanding")
            return rc.fill_diagnostic(stat, d)
        except Exception as exc:  # noqa: BLE001 - diagnostics never take the node down
            stat.summary(rc.DiagnosticStatus.ERROR, f"diagnostics failed: {type(exc).__name__}: {exc}")
            return stat

    def _srv_enable(self, req, resp):
        if self.rt is None:
            resp.success, resp.message = False, "not configured"
            return resp
        resp.success, resp.message = self.rt.set_enabled(bool(req.data), self.now_s())
        return resp

    def _srv_reset(self, req, resp):
        if self.rt is None:
            resp.success, resp.message = False, "not configured"
            return resp
        resp.success, resp.message = True, self.rt.reset(self.now_s())
        return resp


def main() -> None:
    spin_node(ControllerNode, "controller_node")


if __name__ == "__main__":
    main()
