"""The rclpy-side half of the conversions: plain fields (fastwam_ros.runtime) → ROS messages,
schema → declared parameters, QoS names → profiles. No decisions here: only copying.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticStatus
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import ColorRGBA, Float64MultiArray, Header
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import Marker, MarkerArray

from fastwam_ros.runtime.chunks import ChunkFields, LineMarker, TrajectoryFields, join_stamp
from fastwam_ros.runtime.params import Schema, check_update, descriptor_fields

_LEVELS = {0: DiagnosticStatus.OK, 1: DiagnosticStatus.WARN, 2: DiagnosticStatus.ERROR, 3: DiagnosticStatus.STALE}
_EMPTY_ARRAY_TYPES = {
    "bool_array": Parameter.Type.BOOL_ARRAY, "int_array": Parameter.Type.INTEGER_ARRAY,
    "double_array": Parameter.Type.DOUBLE_ARRAY, "string_array": Parameter.Type.STRING_ARRAY,
}


# ------------------------------------------------------------------------------------------ parameters


def spin_node(make_node, label: str, on_exit=None) -> None:
    """Kept for callers of ``rc.spin_node``: see :func:`fastwam_ros.nodes.shell.spin_node` (clean exit codes)."""
    from fastwam_ros.nodes.shell import spin_node as _spin

    _spin(make_node, label, on_exit)


def descriptor(spec) -> ParameterDescriptor:
    f = descriptor_fields(spec)
    d = ParameterDescriptor(name=f["name"], type=f["type"], description=f["description"],
                            additional_constraints=f["additional_constraints"], read_only=f["read_only"])
    if f["floating_point_range"] is not None:
        d.floating_point_range = [FloatingPointRange(from_value=f["floating_point_range"][0],
                                                     to_value=f["floating_point_range"][1], step=0.0)]
    if f["integer_range"] is not None:
        d.integer_range = [IntegerRange(from_value=f["integer_range"][0], to_value=f["integer_range"][1], step=0)]
    return d


def _declare(node, spec) -> Any:
    default = spec.default
    if spec.is_array and len(default) == 0:  # an empty list has no ROS type: declare statically typed
        p = node.declare_parameter(spec.name, _EMPTY_ARRAY_TYPES[spec.type], descriptor(spec))
        return [] if p.type_ == Parameter.Type.NOT_SET else list(p.value)
    p = node.declare_parameter(spec.name, default, descriptor(spec))
    v = p.value
    return list(v) if spec.is_array else v


def declare_schema(node, schema: Schema) -> dict[str, Any]:
    """Declare every parameter of ``schema`` (templates after their lists) and return the values."""
    values: dict[str, Any] = {}
    for spec in schema.base_specs():
        values[spec.name] = _declare(node, spec)
    for spec in schema.expanded(values):
        if spec.name not in values:
            values[spec.name] = _declare(node, spec)
    return values


def guard_updates(node, schema: Schema, values: dict[str, Any], on_change=None) -> None:
    """Refuse run-time parameter changes that fail validation; apply accepted ones to ``values``."""

    def callback(params):
        changes = {p.name: (list(p.value) if isinstance(p.value, (list, tuple)) else p.value) for p in params
                   if p.name in values}
        reason = check_update(schema, values, changes) if changes else None
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        values.update(changes)
        if on_change is not None and changes:
            on_change(changes)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(callback)


# ------------------------------------------------------------------------------------------------- QoS


def qos(name: str, depth: int = 5) -> QoSProfile:
    """sensor_data (best effort, keep last 5), reliable (keep last ``depth``), best_effort (keep last 1)."""
    if name == "sensor_data":
        return qos_profile_sensor_data
    if name == "reliable":
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
    if name == "best_effort":
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                          durability=DurabilityPolicy.VOLATILE)
    raise ValueError(f"unknown QoS {name!r}")


def latched_qos() -> QoSProfile:
    """Reliable, transient local, depth 1 (robot_description, status)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def command_qos(depth: int = 1) -> QoSProfile:
    """Commands and e-stop: reliable, volatile, small depth (never transient local)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


# --------------------------------------------------------------------------------------------- messages


def to_time(stamp: tuple[int, int]) -> Time:
    return Time(sec=int(stamp[0]), nanosec=int(stamp[1]))


def to_duration(d: tuple[int, int]) -> Duration:
    return Duration(sec=int(d[0]), nanosec=int(d[1]))


def stamp_s(msg_stamp) -> float:
    return join_stamp(msg_stamp.sec, msg_stamp.nanosec)


def fill_action_chunk(msg, f: ChunkFields):
    msg.header = Header(stamp=to_time(f.stamp), frame_id=f.frame_id)
    msg.chunk_id = int(f.chunk_id)
    msg.step_period_s = float(f.step_period_s)
    msg.joint_names = list(f.joint_names)
    msg.num_steps = int(f.num_steps)
    msg.positions = [float(x) for x in f.positions]
    msg.velocities = [float(x) for x in f.velocities]
    msg.committed_steps = int(f.committed_steps)
    msg.latency_s = float(f.latency_s)
    msg.inference_s = float(f.inference_s)
    msg.model_id = f.model_id
    msg.rtc_mode = f.rtc_mode
    msg.guided_steps = int(f.guided_steps)
    return msg


def action_chunk_kwargs(msg) -> dict[str, Any]:
    """An ActionChunk message → the keyword arguments of ``runtime.chunks.parse_chunk``."""
    return dict(stamp=(msg.header.stamp.sec, msg.header.stamp.nanosec), chunk_id=msg.chunk_id,
                step_period_s=msg.step_period_s, joint_names=list(msg.joint_names), num_steps=msg.num_steps,
                positions=np.asarray(msg.positions, dtype=np.float64),
                velocities=np.asarray(msg.velocities, dtype=np.float64),
                committed_steps=msg.committed_steps, latency_s=msg.latency_s, model_id=msg.model_id,
                rtc_mode=msg.rtc_mode, guided_steps=msg.guided_steps)


def joint_trajectory(f: TrajectoryFields) -> JointTrajectory:
    msg = JointTrajectory()
    msg.header = Header(stamp=to_time(f.stamp), frame_id=f.frame_id)
    msg.joint_names = list(f.joint_names)
    for p, v, t in zip(f.positions, f.velocities, f.times_from_start):
        msg.points.append(JointTrajectoryPoint(positions=[float(x) for x in p], velocities=[float(x) for x in v],
                                               time_from_start=to_duration(t)))
    return msg


def joint_state(stamp: Time, names, positions, velocities=None) -> JointState:
    msg = JointState()
    msg.header = Header(stamp=stamp)
    msg.name = list(names)
    msg.position = [float(x) for x in positions]
    if velocities is not None:
        msg.velocity = [float(x) for x in velocities]
    return msg


def float64_array(values) -> Float64MultiArray:
    return Float64MultiArray(data=[float(x) for x in values])


def rgb8_image(rgb: np.ndarray, stamp: Time, frame_id: str = "") -> Image:
    a = np.ascontiguousarray(rgb, dtype=np.uint8)
    msg = Image()
    msg.header = Header(stamp=stamp, frame_id=frame_id)
    msg.height, msg.width = int(a.shape[0]), int(a.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = int(a.shape[1] * 3)
    msg.data = a.tobytes()
    return msg


def marker_array(lines: list[LineMarker], stamp: Time, frame_id: str) -> MarkerArray:
    from geometry_msgs.msg import Point

    out = MarkerArray()
    for m in lines:
        mk = Marker()
        mk.header = Header(stamp=stamp, frame_id=frame_id)
        mk.ns, mk.id = m.ns, int(m.id)
        mk.type, mk.action = Marker.LINE_STRIP, Marker.ADD
        mk.pose.orientation.w = 1.0
        mk.scale.x = 0.01
        mk.color = ColorRGBA(r=float(m.color[0]), g=float(m.color[1]), b=float(m.color[2]), a=float(m.color[3]))
        mk.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in m.points]
        out.markers.append(mk)
    return out


def fill_diagnostic(stat, d):
    """Copy a ``runtime.diagnostics.DiagStatus`` into a diagnostic_updater ``DiagnosticStatusWrapper``."""
    stat.summary(_LEVELS.get(d.level, DiagnosticStatus.ERROR), d.message)
    for k, v in d.values:
        stat.add(k, v)
    return stat
