"""policy_node: managed lifecycle node running Fast-WAM on one dedicated worker thread.

configure = validate parameters, build the observation pipeline, load the model on the worker thread, fill the
instruction cache, warm up; activate = start handing observations over and publishing; deactivate = stop;
cleanup = stop the worker and free the model. All logic lives in fastwam_ros.runtime.policy_runtime.
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
from fastwam_ros.runtime.params import validate
from fastwam_ros.runtime.policy_runtime import PolicyRuntime, PolicyRuntimeConfig, policy_factory
from fastwam_ros.runtime.schemas import POLICY_SCHEMA, require_checkpoint
from fastwam_ros.runtime.worker import PolicyWorker, WorkerError


class PolicyNode(LifecycleNode):
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
        self.create_service(SetBool, "~/enable", self._srv_enable)
        self.create_service(Trigger, "~/reset", self._srv_reset)
        self.create_service(Trigger, "~/request_chunk", self._srv_request)

    def now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # -- lifecycle ---------------------------------------------------------------------------------

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        p = self.params
        errors = validate(POLICY_SCHEMA, p) + require_checkpoint(p)
        if errors:
            for e in errors:
                self.get_logger().error(f"parameter {e}")
            return TransitionCallbackReturn.FAILURE
        from fastwam_ros.errors import ConfigError
        from fastwam_ros.perception import ObservationPipeline
        from fastwam_ros.robot import load_robot

        try:
            robot = load_robot(p["robot_file"])
            perception = robot.perception_config()
        except ConfigError as exc:
            self.get_logger().error(f"robot file: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.robot = robot
        self.get_logger().info(f"robot {robot.name} ({robot.source}): cameras {list(robot.camera_names)}, "
                               f"{len(robot.joints)} joints")
        # the checkpoint's robot contract is checked by the loader before any model is built
        worker = PolicyWorker(policy_factory(p, robot), instruction=p["instruction"], warmup=p["model.warmup"])
        self.get_logger().info(f"loading model {p['model.checkpoint']} on {p['model.device']} ({p['model.dtype']})")
        try:
            worker.start(timeout_s=p["model.load_timeout_s"])
        except WorkerError as exc:
            for line in str(exc).splitlines():
                self.get_logger().error(f"model load failed: {line}" if not line.startswith(" ") else line)
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f"model ready: {worker.load_timing_s}")
        model_id = f"{p['model.variant']}:{p['model.checkpoint'].rstrip('/').split('/')[-1]}"
        self.rt = PolicyRuntime(PolicyRuntimeConfig.from_params(p, robot, model_id), ObservationPipeline(perception),
                                worker, instruction=p["instruction"], enabled=False)
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
                msg_type, topic, lambda m, c=cam.name: self._on_image(c, m), rc.qos(cam.qos)))
        self._subs.append(self.create_subscription(JointState, robot.joint_states_topic, self._on_joint_state,
                                                   rc.qos(robot.joint_states_qos, depth=50)))
        instr_qos = rc.latched_qos() if p["instruction_qos"] == "transient_local" else rc.command_qos(1)
        self._subs.append(self.create_subscription(String, p["instruction_topic"], self._on_instruction, instr_qos))
        self._subs.append(self.create_subscription(ActionChunk, p["rtc.prefix_topic"], self._on_prefix,
                                                   rc.command_qos(1)))
        self._timers.append(self.create_timer(1.0 / p["tick_rate_hz"], self._tick))
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
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
        for t in self._timers:
            self.destroy_timer(t)
        for s in self._subs:
            self.destroy_subscription(s)
        self._timers, self._subs = [], []
        for pub in [getattr(self, "pub_chunk", None), getattr(self, "pub_image", None),
                    getattr(self, "pub_markers", None), getattr(self, "pub_ghost", None),
                    *getattr(self, "pub_preview", {}).values()]:
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        self.pub_preview = {}
        self.pub_chunk = self.pub_image = self.pub_markers = self.pub_ghost = None
        if self.rt is not None:
            self.rt.worker.stop(timeout_s=30.0)
            self.rt = None

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

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
            self.rt.on_instruction(changes["instruction"])
        if "trigger.mode" in changes or "trigger.rate_hz" in changes:
            self.rt.trigger.configure(self.params["trigger.mode"], self.params["trigger.rate_hz"])

    def _tick(self) -> None:
        if self.rt is None or not self.active:
            return
        now = self.now_s()
        self.rt.step(now)
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
        return rc.fill_diagnostic(stat, self.rt.diagnostics(self.now_s(), active=self.active)[index])

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
            self.rt.reset()
            resp.success, resp.message = True, "policy reset"
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
    rc.spin_node(PolicyNode, "policy_node", on_exit=_stop_worker)


if __name__ == "__main__":
    main()
