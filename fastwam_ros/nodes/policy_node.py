"""policy_node: managed lifecycle node running Fast-WAM on one dedicated worker thread.

configure = validate parameters, build the observation pipeline, load the model on the worker thread, fill the
instruction cache, check the normalisation statistics, warm up (a non-finite output fails); activate = start
handing observations over and publishing; deactivate = stop; cleanup = stop the worker and free the model.
With ``autostart`` the node configures and activates itself once at start. Every failure of configure is logged
with its cause (fastwam_ros.runtime.policy_setup); no callback raises into the executor; an unavailable
transition request is refused, not fatal. All logic lives in fastwam_ros.runtime.
"""

from __future__ import annotations

from diagnostic_updater import Updater
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from fastwam_ros.msg import ActionChunk
from fastwam_ros.nodes import ros_conversions as rc
from fastwam_ros.nodes.shell import (
    TeardownOnCleanup,
    guard,
    guard_change_state,
    release,
    spin_node,
    start_autostart,
)
from fastwam_ros.runtime.policy_runtime import PolicyRuntime
from fastwam_ros.runtime.policy_setup import configure_policy
from fastwam_ros.runtime.schemas import POLICY_SCHEMA


class PolicyNode(TeardownOnCleanup, LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("policy_node", **kwargs)
        self.params = rc.declare_schema(self, POLICY_SCHEMA)
        rc.guard_updates(self, POLICY_SCHEMA, self.params, self._on_params)
        self.rt: PolicyRuntime | None = None
        self.active = False
        self._subs, self._timers = [], []
        self.updater = Updater(self)
        self.updater.setHardwareID("fastwam_policy")
        self.updater.add("policy cameras", lambda s: self._diag(s, 0))
        self.updater.add("policy inference", lambda s: self._diag(s, 1))
        self.create_service(SetBool, "~/enable", guard(self, self._srv_enable, "~/enable", "response"))
        self.create_service(Trigger, "~/reset", guard(self, self._srv_reset, "~/reset", "response"))
        self.create_service(Trigger, "~/request_chunk", guard(self, self._srv_request, "~/request_chunk",
                                                               "response"))
        guard_change_state(self)
        start_autostart(self, self.params["autostart"])

    def now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # -- lifecycle ---------------------------------------------------------------------------------

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        p = self.params
        self.get_logger().info(f"configuring: model {p['model.checkpoint']} on {p['model.device']} "
                               f"({p['model.dtype']})")
        try:
            res = configure_policy(p)
            for e in res.errors:  # a contract mismatch lists every differing field on its own line
                for k, line in enumerate(e.splitlines()):
                    self.get_logger().error(f"configure failed: {line}" if k == 0 else line)
            for d in res.details:
                self.get_logger().debug(d)
            if not res.ok:
                return TransitionCallbackReturn.FAILURE
            self.rt, self.robot = res.runtime, res.robot
            r = res.robot
            self.get_logger().info(f"robot {r.name} ({r.source}): cameras {list(r.camera_names)}, "
                                   f"{len(r.joints)} joints; model ready: {res.load_timing_s}")
            self._create_io(p, r)
        except Exception as exc:  # noqa: BLE001 - rclpy would swallow it without a word
            self.get_logger().error(f"configure failed while creating ROS interfaces: {type(exc).__name__}: {exc}")
            self._teardown()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def _create_io(self, p, robot) -> None:
        # publishers (lifecycle: silent until activated)
        self.pub_chunk = self.create_lifecycle_publisher(ActionChunk, p["chunk.topic"], rc.command_qos(10))
        self.pub_preview = {g.name: self.create_lifecycle_publisher(JointTrajectory, f"~/preview/{g.name}", 10)
                            for g in robot.groups}
        self.pub_image = self.create_lifecycle_publisher(Image, p["debug.tiled_image_topic"], 1)
        self.pub_markers = self.create_lifecycle_publisher(MarkerArray, "~/chunk_markers", 1)
        self.pub_ghost = self.create_lifecycle_publisher(JointState, "~/predicted_end_state", 1)
        # subscriptions
        for cam in robot.cameras:
            topic = cam.topic
            msg_type = CompressedImage if cam.transport == "compressed" else Image
            if cam.transport == "compressed" and not topic.endswith("/compressed"):
                topic += "/compressed"
            self._subs.append(self.create_subscription(
                msg_type, topic, guard(self, lambda m, c=cam.name: self._on_image(c, m), f"image {cam.name}"),
                rc.qos(cam.qos)))
        self._subs.append(self.create_subscription(JointState, robot.joint_states_topic,
                                                   guard(self, self._on_joint_state, "joint_states"),
                                                   rc.qos(robot.joint_states_qos, depth=50)))
        instr_qos = rc.latched_qos() if p["instruction_qos"] == "transient_local" else rc.command_qos(1)
        self._subs.append(self.create_subscription(String, p["instruction_topic"],
                                                   guard(self, self._on_instruction, "instruction"), instr_qos))
        self._subs.append(self.create_subscription(ActionChunk, p["rtc.prefix_topic"],
                                                   guard(self, self._on_prefix, "committed prefix"),
                                                   rc.command_qos(1)))
        self._timers.append(self.create_timer(1.0 / p["tick_rate_hz"], guard(self, self._tick, "tick")))

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        if self.rt is None:
            self.get_logger().error("activate refused: not configured")
            return TransitionCallbackReturn.FAILURE
        self.active = True
        if self.params["enable_on_activate"]:
            self.rt.set_enabled(True)
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self.active = False
        if self.rt is not None:
            self.rt.set_enabled(False)
        return super().on_deactivate(state)

    def _teardown(self) -> None:
        release(self, self._timers, self._subs,
                [getattr(self, "pub_chunk", None), getattr(self, "pub_image", None),
                 getattr(self, "pub_markers", None), getattr(self, "pub_ghost", None),
                 *getattr(self, "pub_preview", {}).values()])
        self._timers, self._subs = [], []
        self.pub_preview = {}
        self.pub_chunk = self.pub_image = self.pub_markers = self.pub_ghost = None
        if self.rt is not None:
            if not self.rt.worker.stop(timeout_s=5.0):
                self.get_logger().warning("the policy worker did not stop within 5 s (a hung inference); its "
                                          "thread is abandoned")
            self.rt = None

    # -- callbacks (convert and hand over; no torch here) -----------------------------------------

    def _on_image(self, camera: str, msg) -> None:
        if self.rt is not None:
            self.rt.on_image(camera, msg, rc.stamp_s(msg.header.stamp), self.now_s())

    def _on_joint_state(self, msg: JointState) -> None:
        if self.rt is not None:
            self.rt.on_joint_state(rc.stamp_s(msg.header.stamp), msg.name, msg.position, self.now_s())

    def _on_instruction(self, msg: String) -> None:
        if self.rt is not None:
            err = self.rt.on_instruction(msg.data)
            if err:
                self.get_logger().warning(err)

    def _on_prefix(self, msg: ActionChunk) -> None:
        if self.rt is None or msg.num_steps == 0 or not msg.joint_names:
            return
        import numpy as np

        pos = np.asarray(msg.positions, dtype=np.float64)
        if pos.size != msg.num_steps * len(msg.joint_names):
            return
        self.rt.on_committed_prefix(rc.stamp_s(msg.header.stamp), list(msg.joint_names),
                                    pos.reshape(msg.num_steps, len(msg.joint_names)), self.now_s(),
                                    msg.step_period_s, chunk_id=int(msg.chunk_id))

    def _on_params(self, changes) -> None:
        if self.rt is None:
            return
        if "instruction" in changes:
            err = self.rt.on_instruction(changes["instruction"])
            if err:
                self.get_logger().warning(err)
        if "inference_timeout_s" in changes:
            self.rt.supervisor.cfg.inference_timeout_s = float(changes["inference_timeout_s"])
        if "output.max_first_step_distance" in changes:
            self.rt.limits.max_first_step_distance = float(changes["output.max_first_step_distance"])
        if "trigger.mode" in changes or "trigger.rate_hz" in changes:
            self.rt.trigger.configure(self.params["trigger.mode"], self.params["trigger.rate_hz"])

    def _tick(self) -> None:
        if self.rt is None or not self.active:
            return
        now = self.now_s()
        self.rt.step(now)
        for event in self.rt.pop_events():
            self.get_logger().error(event)
        for notice in self.rt.pop_notices():  # e.g. the clock went back (bag loop, simulator reset)
            self.get_logger().warning(notice)
        stamp = self.get_clock().now().to_msg()
        for out in self.rt.collect(now):
            self.pub_chunk.publish(rc.fill_action_chunk(ActionChunk(), out.chunk))
            for arm, tf in out.previews.items():
                self.pub_preview[arm].publish(rc.joint_trajectory(tf))
            if self.params["debug.ghost_joint_state"]:
                self.pub_ghost.publish(rc.joint_state(stamp, out.ghost_names, out.ghost_positions))
            if out.markers:
                self.pub_markers.publish(rc.marker_array(out.markers, stamp, self.params["debug.marker_frame"]))
        rgb = self.rt.tiled_image_due(now)
        if rgb is not None:
            self.pub_image.publish(rc.rgb8_image(rgb, stamp))

    def _diag(self, stat, index: int):
        if self.rt is None:
            stat.summary(rc.DiagnosticStatus.WARN, "unconfigured")
            return stat
        try:
            return rc.fill_diagnostic(stat, self.rt.diagnostics(self.now_s(), active=self.active)[index])
        except Exception as exc:  # noqa: BLE001 - diagnostics never take the node down
            stat.summary(rc.DiagnosticStatus.ERROR, f"diagnostics failed: {type(exc).__name__}: {exc}")
            return stat

    # -- services ----------------------------------------------------------------------------------

    def _srv_enable(self, req, resp):
        if self.rt is None:
            resp.success, resp.message = False, "not configured"
        else:
            resp.success, resp.message = True, self.rt.set_enabled(req.data)
        return resp

    def _srv_reset(self, req, resp):
        if self.rt is None:
            resp.success, resp.message = False, "not configured"
            return resp
        try:
            self.rt.reset()  # queued on the worker thread; returns at once even while an inference hangs
            resp.success, resp.message = True, "policy reset (model reset queued on the worker thread)"
        except Exception as exc:  # noqa: BLE001 - report, keep running
            resp.success, resp.message = False, f"reset failed: {exc}"
        return resp

    def _srv_request(self, req, resp):
        if self.rt is None:
            resp.success, resp.message = False, "not configured"
        else:
            resp.success, resp.message = True, self.rt.request()
        return resp


def _stop_worker(node: PolicyNode) -> None:
    if node.rt is not None:
        node.rt.worker.stop(timeout_s=5.0)


def main() -> None:
    spin_node(PolicyNode, "policy_node", on_exit=_stop_worker)


if __name__ == "__main__":
    main()
