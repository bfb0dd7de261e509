"""Chunk ⇄ message fields, as plain dicts and arrays (the shells copy them into ROS messages).

Conventions: a chunk is ``positions`` [H, J] (rad / m) for ``joint_names`` (J), step k meant for
``stamp_s + k * step_period_s``. ROS stamps are ``(sec, nanosec)`` pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def split_stamp(t_s: float) -> tuple[int, int]:
    """Seconds (float) → (sec, nanosec) with 0 <= nanosec < 1e9 (ROS ``builtin_interfaces/Time``)."""
    if not np.isfinite(t_s):
        raise ValueError(f"stamp {t_s!r} is not finite")
    ns = int(round(float(t_s) * 1e9))
    sec, nsec = divmod(ns, 1_000_000_000)
    return int(sec), int(nsec)


def join_stamp(sec: int, nanosec: int) -> float:
    """(sec, nanosec) → seconds."""
    return float(sec) + float(nanosec) * 1e-9


def split_duration(d_s: float) -> tuple[int, int]:
    """Seconds → ``builtin_interfaces/Duration`` (sec, nanosec)."""
    return split_stamp(d_s)


def finite_difference_velocities(positions: np.ndarray, step_period_s: float) -> np.ndarray:
    """[H, J] positions → [H, J] velocities (units/s): central differences, one-sided at the ends."""
    p = np.asarray(positions, dtype=np.float64)
    if p.shape[0] < 2:
        return np.zeros_like(p)
    return np.gradient(p, float(step_period_s), axis=0)


@dataclass
class ChunkFields:
    """Everything an ``fastwam_ros/ActionChunk`` message carries, as plain values."""

    stamp: tuple[int, int]
    frame_id: str
    chunk_id: int
    step_period_s: float
    joint_names: list[str]
    num_steps: int
    positions: list[float]
    velocities: list[float]
    committed_steps: int
    latency_s: float
    inference_s: float
    model_id: str
    rtc_mode: str = "off"
    guided_steps: int = 0

    def positions_array(self) -> np.ndarray:
        return np.asarray(self.positions, dtype=np.float64).reshape(self.num_steps, len(self.joint_names))


def chunk_fields(
    positions: np.ndarray,
    joint_names: Sequence[str],
    *,
    stamp_s: float,
    chunk_id: int,
    step_period_s: float,
    latency_s: float = 0.0,
    inference_s: float = 0.0,
    model_id: str = "",
    committed_steps: int = 0,
    frame_id: str = "",
    with_velocities: bool = True,
    rtc_mode: str = "off",
    guided_steps: int = 0,
) -> ChunkFields:
    p = np.asarray(positions, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(joint_names):
        raise ValueError(f"chunk of shape {p.shape} does not match {len(joint_names)} joint names")
    if step_period_s <= 0:
        raise ValueError("step_period_s must be > 0")
    v = finite_difference_velocities(p, step_period_s) if with_velocities else np.zeros((0,))
    return ChunkFields(
        stamp=split_stamp(stamp_s),
        frame_id=frame_id,
        chunk_id=int(chunk_id),
        step_period_s=float(step_period_s),
        joint_names=list(joint_names),
        num_steps=int(p.shape[0]),
        positions=p.reshape(-1).tolist(),
        velocities=v.reshape(-1).tolist(),
        committed_steps=int(committed_steps),
        latency_s=float(latency_s),
        inference_s=float(inference_s),
        model_id=model_id,
        rtc_mode=str(rtc_mode),
        guided_steps=int(guided_steps),
    )


@dataclass
class ParsedChunk:
    """A received ActionChunk, checked: positions [H, J], velocities [H, J] or None."""

    stamp_s: float
    chunk_id: int
    step_period_s: float
    joint_names: list[str]
    positions: np.ndarray
    velocities: np.ndarray | None
    committed_steps: int
    latency_s: float
    model_id: str
    rtc_mode: str = "off"
    guided_steps: int = 0

    def core_chunk(self):
        """The control cores' :class:`fastwam_ros.control.Chunk` (ChunkController, RowExecutor)."""
        from fastwam_ros.control import Chunk

        return Chunk(stamp_s=self.stamp_s, step_period_s=self.step_period_s, joint_names=self.joint_names,
                     positions=self.positions, velocities=self.velocities, chunk_id=self.chunk_id)


class ChunkFormatError(ValueError):
    """An incoming chunk message is malformed (counted as a rejection by the controller)."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        super().__init__(f"{reason}: {detail}")


def _chunk_rows(values, h: int, j: int, what: str) -> np.ndarray:
    """Flat row-major ``values`` -> finite [h, j] array, or ChunkFormatError (bad_shape / non_finite)."""
    a = np.asarray(values, dtype=np.float64)
    if a.size != h * j:
        raise ChunkFormatError("bad_shape", f"{a.size} {what} for {h} steps x {j} joints")
    a = a.reshape(h, j)
    if not np.all(np.isfinite(a)):
        raise ChunkFormatError("non_finite", f"{what} contain NaN/inf")
    return a


def parse_chunk(
    *,
    stamp: tuple[int, int],
    chunk_id: int,
    step_period_s: float,
    joint_names: Sequence[str],
    num_steps: int,
    positions: Sequence[float],
    velocities: Sequence[float] = (),
    committed_steps: int = 0,
    latency_s: float = 0.0,
    model_id: str = "",
    rtc_mode: str = "off",
    guided_steps: int = 0,
) -> ParsedChunk:
    """Check an ActionChunk's fields and reshape; raises :class:`ChunkFormatError` with a reason key."""
    names = list(joint_names)
    j = len(names)
    if j == 0:
        raise ChunkFormatError("no_joint_names", "joint_names is empty")
    if len(set(names)) != j:
        raise ChunkFormatError("duplicate_joint_names", f"{names}")
    h = int(num_steps)
    if h < 1:
        raise ChunkFormatError("empty_chunk", f"num_steps={h}")
    if not (np.isfinite(step_period_s) and step_period_s > 0):
        raise ChunkFormatError("bad_step_period", f"step_period_s={step_period_s}")
    p = _chunk_rows(positions, h, j, "positions")
    v = _chunk_rows(velocities, h, j, "velocities") if len(velocities) else None
    return ParsedChunk(
        stamp_s=join_stamp(*stamp), chunk_id=int(chunk_id), step_period_s=float(step_period_s),
        joint_names=names, positions=p, velocities=v, committed_steps=int(committed_steps),
        latency_s=float(latency_s), model_id=model_id, rtc_mode=str(rtc_mode), guided_steps=int(guided_steps),
    )


def parse_chunk_counted(rejections, **fields) -> tuple[ParsedChunk | None, str | None]:
    """:func:`parse_chunk` for the runtimes: (chunk, None), or (None, error text) with the reason counted as
    ``chunk:<reason>`` in ``rejections`` (a :class:`~fastwam_ros.runtime.stats.ReasonCounter`)."""
    try:
        return parse_chunk(**fields), None
    except ChunkFormatError as exc:
        rejections.count(f"chunk:{exc.reason}")
        return None, str(exc)


@dataclass
class TrajectoryFields:
    """``trajectory_msgs/JointTrajectory`` as plain values; point times are relative to ``stamp``.

    ``stamp`` (0, 0) means "start now" for ros2_control's joint_trajectory_controller.
    """

    stamp: tuple[int, int]
    frame_id: str
    joint_names: list[str]
    positions: list[list[float]]
    velocities: list[list[float]]
    times_from_start: list[tuple[int, int]]


def column_indices(joint_names: Sequence[str], subset: Sequence[str]) -> list[int]:
    idx = {n: i for i, n in enumerate(joint_names)}
    missing = [n for n in subset if n not in idx]
    if missing:
        raise KeyError(f"joints {missing} are not in {list(joint_names)}")
    return [idx[n] for n in subset]


def trajectory_fields(
    positions: np.ndarray,
    joint_names: Sequence[str],
    subset: Sequence[str],
    *,
    step_period_s: float,
    stamp_s: float | None,
    velocities: np.ndarray | None = None,
    first_step: int = 0,
    time_offset_s: float = 0.0,
    frame_id: str = "",
) -> TrajectoryFields:
    """One arm's part of a chunk as a JointTrajectory.

    Point k (k >= ``first_step``) gets ``time_from_start = time_offset_s + (k - first_step)·dt``.
    ``stamp_s=None`` gives the zero stamp ("now"). Velocities are finite differences unless given.
    """
    p = np.asarray(positions, dtype=np.float64)
    cols = column_indices(joint_names, subset)
    v = finite_difference_velocities(p, step_period_s) if velocities is None else np.asarray(velocities)
    p, v = p[first_step:, cols], v[first_step:, cols]
    times = [split_duration(time_offset_s + k * step_period_s) for k in range(p.shape[0])]
    return TrajectoryFields(
        stamp=(0, 0) if stamp_s is None else split_stamp(stamp_s),
        frame_id=frame_id,
        joint_names=list(subset),
        positions=p.tolist(),
        velocities=v.tolist(),
        times_from_start=times,
    )


def end_pose(positions: np.ndarray, joint_names: Sequence[str], prefix: str = "") -> tuple[list[str], list[float]]:
    """The predicted end state (last chunk row) as JointState names/positions, names optionally prefixed
    (for a second ``robot_state_publisher`` drawing a ghost robot)."""
    p = np.asarray(positions, dtype=np.float64)
    return [prefix + n for n in joint_names], p[-1].tolist()


@dataclass
class LineMarker:
    """One ``visualization_msgs/Marker`` LINE_STRIP: id, namespace, points [N, 3] (m), rgba."""

    ns: str
    id: int
    points: list[tuple[float, float, float]]
    color: tuple[float, float, float, float]
    text: str = ""


def chunk_plot_markers(
    positions: np.ndarray,
    joint_names: Sequence[str],
    *,
    step_period_s: float,
    seconds_to_m: float = 0.5,
    lane_spacing_m: float = 0.25,
    units_to_m: float = 0.1,
    origin: tuple[float, float, float] = (0.0, 0.0, 1.0),
) -> list[LineMarker]:
    """The chunk as a 3-D strip chart for rviz (no forward kinematics needed).

    One line per joint: x = time (s) · ``seconds_to_m``, y = lane (joint index) · ``lane_spacing_m``,
    z = position · ``units_to_m``, all relative to ``origin`` in the marker frame. The left half
    of the joints is drawn in blue shades, the right half in orange shades.
    """
    p = np.asarray(positions, dtype=np.float64)
    h, j = p.shape
    out = []
    for c in range(j):
        shade = 0.4 + 0.6 * (c % max(1, j // 2)) / max(1, j // 2)
        color = (0.1, 0.3 * shade, shade, 1.0) if c < j / 2 else (shade, 0.5 * shade, 0.05, 1.0)
        pts = [
            (origin[0] + k * step_period_s * seconds_to_m,
             origin[1] - c * lane_spacing_m,
             origin[2] + float(p[k, c]) * units_to_m)
            for k in range(h)
        ]
        out.append(LineMarker("fastwam_chunk", c, pts, color, joint_names[c]))
    return out
