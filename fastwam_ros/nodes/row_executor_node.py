"""row_executor_node: one action row per step for robot files with ``command.output: rows`` (e.g. LIBERO).

A timer at the chunk step period publishes exactly one row per step (std_msgs/Float64MultiArray per command
topic, the row kind in ``layout.dim[0].label``), asks the policy for the next chunk through its
``~/request_chunk`` service when a block ends, and takes ActionChunks only between blocks. All logic lives in
fastwam_ros.runtime.row_runtime (core: fastwam_ros.control.row_executor).
"""

from __future__ import annotations

from diagnostic_updater import Updater
from rclpy.node import Node
from std_msgs.msg import Bool, Float64MultiArray, MultiArrayDimension
from std_srvs.srv import Trigger

from fastwam_ros.msg import ActionChunk
from fastwam_ros.nodes import ros_conversions as rc
from fastwam_ros.nodes.shell import spin_node
from fastwam_ros.runtime.params import ParameterError, validate
from fastwam_ros.runtime.row_runtime import RowRuntime
from fastwam_ros.runtime.schemas import ROW_EXECUTOR_SCHEMA


class RowExecutorNode(Node):
    def __init__(self, **kwargs):
        super().__init__("row_executor_node", **kwargs)
        p = self.params = rc.declare_schema(self, ROW_EXECUTOR_SCHEMA)
        rc.guard_updates(self, ROW_EXECUTOR_SCHEMA, self.params)
        errors = validate(ROW_EXECUTOR_SCHEMA, p)
        if errors:
            raise ParameterError(self.get_name(), errors)
        from fastwam_ros.robot import load_robot

        self.rt = RowRuntime(p, load_robot(p["robot_file"]))  # ConfigError names the file and field
        self.pubs = {t: self.create_publisher(Float64MultiArray, t, rc.command_qos(10)) for t in self.rt.topics}
        self.create_subscription(ActionChunk, p["chunk_topic"], self._on_chunk, rc.command_qos(10))
        self.create_subscription(Bool, p["estop_topic"], self._on_estop, rc.command_qos(1))
        self.client = self.create_client(Trigger, p["request_service"]) if p["request_service"] else None
        self.create_service(Trigger, "~/reset", self._srv_reset)
        self.updater = Updater(self)
        self.updater.setHardwareID("fastwam_row_executor")
        self.updater.add("row executor", self._diag)
        self.create_timer(self.rt.step_period_s, self._step)

    def now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_chunk(self, msg: ActionChunk) -> None:
        err = self.rt.on_chunk(self.now_s(), **rc.action_chunk_kwargs(msg))
        if err:
            self.get_logger().info(err, throttle_duration_sec=2.0)

    def _on_estop(self, msg: Bool) -> None:
        text = self.rt.on_estop(bool(msg.data), self.now_s())
        if msg.data:
            self.get_logger().error(text)

    def _step(self) -> None:
        out = self.rt.step(self.now_s())
        for line in self.rt.pop_notices():  # e.g. the clock went back (bag loop, simulator reset)
            self.get_logger().warning(line)
        for m in out.messages:
            msg = Float64MultiArray(data=m.values)
            msg.layout.dim = [MultiArrayDimension(label=m.label, size=len(m.values), stride=len(m.values))]
            self.pubs[m.topic].publish(msg)
        if out.request and self.client is not None:
            if self.client.service_is_ready():
                self.client.call_async(Trigger.Request()).add_done_callback(self._on_request_done)
            else:
                self.rt.count("request:service_unavailable")
                self.get_logger().warning(f"{self.params['request_service']} is not available; waiting for a "
                                          "chunk anyway", throttle_duration_sec=5.0)

    def _on_request_done(self, future) -> None:
        try:
            res = future.result()
        except Exception:  # noqa: BLE001 - a failed call is counted, never raised into the executor
            res = None
        if res is None or not res.success:
            self.rt.count("request:refused")
            self.get_logger().warning(f"chunk request refused: {getattr(res, 'message', 'no response')}",
                                      throttle_duration_sec=5.0)

    def _diag(self, stat):
        return rc.fill_diagnostic(stat, self.rt.diagnostics(self.now_s())[0])

    def _srv_reset(self, req, resp):
        resp.success, resp.message = True, self.rt.reset(self.now_s())
        return resp


def main() -> None:
    spin_node(RowExecutorNode, "row_executor_node")


if __name__ == "__main__":
    main()
