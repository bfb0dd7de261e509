"""The control core's data: chunks in, results and setpoints out, metrics (see ``controller.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fastwam_ros.joint_state import FLOAT32_MAX  # noqa: F401  (re-exported; larger |values| are rejected)

from .limits import CLAMP_KINDS

REJECT_REASONS = (
    "bad_type", "bad_time", "bad_stamp", "bad_step_period", "bad_shape", "non_finite", "duplicate_joint",
    "unknown_joint", "missing_joint", "future_stamp", "stale_chunk", "non_increasing_stamp", "expired",
    "estopped", "busy", "too_long",
)


@dataclass
class Chunk:
    """An action chunk: step k of ``positions`` ([H, J]) is meant for ``stamp_s + k·step_period_s``.

    joint_names: column names (any order, must be exactly the configured joints); velocities: optional [H, J].
    """

    stamp_s: float
    step_period_s: float
    joint_names: Sequence[str]
    positions: np.ndarray
    velocities: np.ndarray | None = None
    chunk_id: int = 0


@dataclass(frozen=True)
class SubmitResult:
    accepted: bool
    reason: str | None = None
    detail: str | None = None
    handoff_s: float | None = None


@dataclass
class Trajectory:
    """Short-horizon trajectory for one group: point i is at ``start_stamp_s + time_from_start_s[i]``.

    positions/velocities: [N, Jg]; time_from_start_s strictly positive. Maps 1:1 onto a
    trajectory_msgs/JointTrajectory (header.stamp = start_stamp_s, which is ≥ one control period ahead).
    """

    joint_names: tuple[str, ...]
    start_stamp_s: float
    time_from_start_s: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray


@dataclass
class GroupOutput:
    name: str
    joint_names: tuple[str, ...]
    mode: str
    reason: str | None
    valid: bool
    positions: np.ndarray | None
    velocities: np.ndarray | None
    accelerations: np.ndarray | None
    trajectory: Trajectory | None = None
    anchored: bool = False
    fault: str | None = None  # latched until re-enabled (``tracking_error``)


@dataclass
class CommittedPrefix:
    """What will execute during the next ``duration_s``, sampled on a chunk-step grid.

    times_s[k] = stamp_s + k·step_period_s (absolute, seconds), k = 0..num_steps-1; positions [K, J] in the
    controller's joint order; newest_chunk_step[k]: the same times as (fractional) step indices of the newest
    accepted chunk (NaN before any chunk). For RTC: pass the observation stamp as ``stamp_s`` and the
    steps 0..num_steps-1 of the next chunk should agree with ``positions``.
    """

    stamp_s: float
    step_period_s: float
    duration_s: float
    times_s: np.ndarray
    positions: np.ndarray
    num_steps: int
    newest_chunk_id: int | None
    newest_chunk_step: np.ndarray


@dataclass
class Metrics:
    """Counters and gauges; ``clamps[kind][j]`` counts ticks where joint j was clamped (kinds in CLAMP_KINDS)."""

    joint_names: tuple[str, ...]
    ticks: int = 0
    chunks_accepted: int = 0
    rejections: dict[str, int] = field(default_factory=dict)
    clamps: dict[str, np.ndarray] = field(default_factory=dict)
    state_rejections: int = 0
    time_errors: int = 0
    clock_jumps: int = 0  # re-bases after the clock went back (ChunkController.rebase_clock)
    last_clock_jump_s: float = 0.0  # how far it went back, s
    tick_gaps: int = 0  # ticks after more than ControllerConfig.tick_gap_s (a stalled executor, a paused clock)
    max_tick_gap_s: float = 0.0  # the longest time between two ticks, s
    seams: int = 0
    last_seam_position_jump: float = 0.0
    last_seam_velocity_jump: float = 0.0
    max_seam_position_jump: float = 0.0
    max_seam_velocity_jump: float = 0.0
    max_seam_disagreement: float = 0.0
    plan_depth_s: float = 0.0
    time_to_exhaustion_s: float = 0.0
    tracking_faults: int = 0
    max_tracking_error: float = 0.0  # largest |commanded − measured| seen on a watched joint
    tracking_error: np.ndarray | None = None  # [J] latest |commanded − measured| (0 where not watched)

    def clamp_counts(self) -> dict[str, dict[str, int]]:
        """{joint: {kind: count}}."""
        return {j: {k: int(self.clamps[k][i]) for k in CLAMP_KINDS} for i, j in enumerate(self.joint_names)}

    def snapshot(self) -> Metrics:
        m = object.__new__(type(self))  # a shallow copy (as copy.copy, without its generic machinery)
        m.__dict__.update(self.__dict__)
        m.rejections = dict(self.rejections)
        m.clamps = {k: v.copy() for k, v in self.clamps.items()}
        m.tracking_error = None if self.tracking_error is None else self.tracking_error.copy()
        return m


@dataclass
class ControlOutput:
    stamp_s: float
    joint_names: tuple[str, ...]
    groups: dict[str, GroupOutput]
    committed_prefix: CommittedPrefix | None
    metrics: Metrics
    plan_active: bool
    plan_reason: str | None
