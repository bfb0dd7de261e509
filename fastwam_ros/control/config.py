"""Controller configuration: joint groups, rates, splice mode, watchdog times and per-joint limits.

``ControllerConfig.from_dict`` validates a plain dict (the ``controller:`` section of the robot YAML) and
raises :class:`ConfigError` naming the offending field. ``parse_urdf_limits`` reads ``<limit>`` tags from a
``robot_description`` string; URDF carries no acceleration limits, so those always come from the config.

Units: seconds, hertz, and the joint's own units (rad, rad/s, rad/s² for revolute joints; m, m/s, m/s² for
prismatic joints and grippers).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from fastwam_ros.errors import ConfigError  # the package's one config error (re-exported here)

from .gripper import GRIPPER_POSTPROCESS

SPLICE_MODES = ("splice", "ensemble", "replace")
ACTION_SPACES = ("joint_positions", "ee_delta")
GROUP_KINDS = ("arm", "gripper")


class URDFError(ValueError):
    """The robot_description could not be parsed."""


@dataclass(frozen=True)
class JointLimits:
    """Limits of one joint.

    lower/upper: position range (±inf for continuous joints); max_velocity (/s), max_acceleration (/s²),
    max_jerk (/s³, optional, applied as a soft limit: safety (position/velocity/acceleration) wins).
    """

    lower: float
    upper: float
    max_velocity: float
    max_acceleration: float
    max_jerk: float | None = None


@dataclass(frozen=True)
class JointGroup:
    """A named set of joints controlled (enabled, held) together, e.g. one arm or one gripper.

    tracking_error_rad / tracking_error_s: this group's tracking-error watchdog thresholds (joint units, s):
    one number, or (threshold only) one per joint; None uses :class:`ControllerConfig`'s. ``inf`` turns the
    watchdog off for a joint (e.g. a gripper that grasps: it is meant to stop short of its command).
    """

    name: str
    joints: tuple[str, ...]
    kind: str = "arm"
    tracking_error_rad: float | tuple[float, ...] | None = None
    tracking_error_s: float | None = None


@dataclass(frozen=True)
class ControllerConfig:
    """Everything the chunk controller needs. Times in seconds, rates in hertz.

    control_rate_hz: nominal tick rate (the period bounds the hand-off margin and the trajectory start).
    splice_mode: ``splice`` (blend the new chunk in over ``blend_window_s``), ``ensemble`` (ACT-style
        exponentially weighted average of overlapping chunks) or ``replace`` (execute the first
        ``replace_execute_steps`` steps open-loop, then wait: the official evaluation loop, for comparison).
        ``replace_execute_steps`` is also the number of rows per chunk of the row executor.
    handoff_margin_s: a new chunk takes over no earlier than ``now + handoff_margin_s`` (≥ one period).
    stale_chunk_s: hold when the newest accepted chunk's observation is older than this.
    stale_state_s: hold a group when its joint state is older than this.
    enable_ramp_s: blend-in time from the measured pose after enable.
    hold_decel_fraction: deceleration used to come to a hold, as a fraction of each joint's max acceleration.
    trajectory_horizon_s / trajectory_point_period_s: the short trajectory published each tick (0 disables).
    rtc_prefix_s: duration of the committed prefix published for real-time chunking.
    ensemble_decay: ACT weight exp(-decay · Δstamp/step) — positive favours older chunks (ACT's choice).
    max_future_s: chunks stamped further than this into the future are rejected.
    max_step_period_s: chunks whose step period exceeds this are rejected.
    max_chunk_steps: chunks with more steps are refused before any work (``too_long``): bounds the cost of a
        chunk (the model's horizon is 32 steps).
    max_plan_chunks: at most this many chunks make up the plan (bounds the tick cost under chunk floods):
        ``ensemble`` averages at most this many (a new chunk beyond it drops the member with the smallest weight
        at the hand-off); ``splice`` nests at most this many blends (a new chunk arriving while as many blends
        are still in progress drops the oldest chunk from the blend chain). Normal streams (a chunk every few
        hundred ms, blend windows of 0.1-0.3 s) never reach it.
    tracking_error_rad / tracking_error_s / tracking_lag_s: tracking-error watchdog: when an enabled group's
        joint stays further than ``tracking_error_rad`` (joint units) from every position commanded during the
        last ``tracking_lag_s`` (the lag a following robot may have) for ``tracking_error_s``, the group faults:
        it is disabled (decelerates to a hold) and stays so until enabled again; counted in
        ``Metrics.tracking_faults``. ``inf`` turns it off. Threshold and duration are overridable per group
        (:class:`JointGroup`); ``kind: gripper`` groups are not watched unless their group sets a threshold
        (a gripper that grasps stops short of its command).
    gripper_postprocess: how the chunk's values for joints of ``kind: gripper`` groups become commands
        (:mod:`fastwam_ros.control.gripper`): ``none`` or ``libero`` (the official LIBERO evaluation's binary
        command, −1 = open, +1 = close).
    action_space: what the chunk's columns are: ``joint_positions`` (absolute targets: holding the last one is
        safe) or ``ee_delta`` (end-effector deltas, e.g. LIBERO's OSC_POSE input: repeating one keeps moving, so
        these are executed row by row by :class:`~fastwam_ros.control.row_executor.RowExecutor`, whose idle
        action is zero deltas with the gripper held; robot files need ``command.output: rows``).
    warmup_steps: row execution only: no-op steps at the start of an episode before the first row (the
        official LIBERO evaluation waits 30).
    idle_gripper_command: row execution only: the gripper command of no-op / idle rows before any row has been
        executed (LIBERO's no-op action has −1 = open); afterwards idle rows hold the last gripper command.
    max_tick_gap_s: a tick later than this after the previous one (None: three control periods) follows a *gap*:
        the executor stalled, a simulator paused, the clock jumped ahead. The robot did not wait for the limiter:
        it held the last setpoint (position / joint_state output) or ran the last short trajectory into its
        braking tail (trajectory output). The command is first brought to that state and the tick is one period
        long, so no single command moves further than one period at the limits allows (without this, a 0.3 s
        stall let one command move 0.3 s worth of motion at once). Counted in ``Metrics.tick_gaps``.
    """

    groups: tuple[JointGroup, ...]
    limits: Mapping[str, JointLimits]
    control_rate_hz: float = 100.0
    splice_mode: str = "splice"
    blend_window_s: float = 0.3
    handoff_margin_s: float = 0.02
    stale_chunk_s: float = 1.5
    stale_state_s: float = 0.25
    enable_ramp_s: float = 1.0
    hold_decel_fraction: float = 0.5
    trajectory_horizon_s: float = 0.2
    trajectory_point_period_s: float = 0.02
    rtc_prefix_s: float = 0.2
    ensemble_decay: float = 0.01
    replace_execute_steps: int = 16
    max_future_s: float = 0.5
    max_step_period_s: float = 1.0
    max_chunk_steps: int = 128
    max_plan_chunks: int = 8
    tracking_error_rad: float = 0.15
    tracking_error_s: float = 0.5
    tracking_lag_s: float = 0.1
    gripper_postprocess: str = "none"
    action_space: str = "joint_positions"
    warmup_steps: int = 0
    idle_gripper_command: float = 0.0
    max_tick_gap_s: float | None = None

    @property
    def period_s(self) -> float:
        return 1.0 / self.control_rate_hz

    @property
    def tick_gap_s(self) -> float:
        """The longest time (s) between two ticks that is not a gap (``max_tick_gap_s``, default 3 periods)."""
        return 3.0 * self.period_s if self.max_tick_gap_s is None else float(self.max_tick_gap_s)

    @property
    def joint_names(self) -> tuple[str, ...]:
        """All joints in group order: the column order of every array the controller returns."""
        return tuple(j for g in self.groups for j in g.joints)

    def group(self, name: str) -> JointGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(f"unknown group {name!r}; known: {[g.name for g in self.groups]}")

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], urdf_xml: str | None = None) -> ControllerConfig:
        """Build and validate a config from a dict (YAML section).

        Keys: ``groups`` (list of {name, joints, kind: arm|gripper, limits: {...} optional}),
        ``joint_limits`` ({joint: {lower, upper, max_velocity, max_acceleration, max_jerk}}, optional) and
        the scalar fields of this class. Limits for a joint are merged from (1) the URDF (if given),
        (2) the group's ``limits``, (3) ``joint_limits[joint]``; where several sources give a bound the
        tighter one wins (a config can narrow, never widen, the URDF). Unknown keys are errors.
        """
        if not isinstance(d, Mapping):
            raise ConfigError(f"controller config: expected a mapping, got {type(d).__name__}")
        scalar_names = {f.name for f in fields(cls)} - {"groups", "limits"}
        unknown = set(d) - scalar_names - {"groups", "joint_limits"}
        if unknown:
            raise ConfigError(f"{sorted(unknown)[0]}: unknown field (known: {sorted(scalar_names | {'groups', 'joint_limits'})})")
        urdf = parse_urdf_limits(urdf_xml) if urdf_xml is not None else {}

        raw_groups = d.get("groups")
        if not isinstance(raw_groups, (list, tuple)) or not raw_groups:
            raise ConfigError("groups: expected a non-empty list of {name, joints, kind}")
        groups: list[JointGroup] = []
        group_limits: dict[str, Any] = {}
        for i, g in enumerate(raw_groups):
            path = f"groups[{i}]"
            if not isinstance(g, Mapping):
                raise ConfigError(f"{path}: expected a mapping")
            extra = set(g) - {"name", "joints", "kind", "limits", "tracking_error_rad", "tracking_error_s"}
            if extra:
                raise ConfigError(f"{path}.{sorted(extra)[0]}: unknown field")
            name = g.get("name")
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{path}.name: expected a non-empty string")
            joints = g.get("joints")
            if not isinstance(joints, (list, tuple)) or not joints or not all(isinstance(j, str) and j for j in joints):
                raise ConfigError(f"{path}.joints: expected a non-empty list of joint names")
            kind = g.get("kind", "arm")
            if kind not in GROUP_KINDS:
                raise ConfigError(f"{path}.kind: expected one of {GROUP_KINDS}, got {kind!r}")
            thr = g.get("tracking_error_rad")
            groups.append(JointGroup(name=name, joints=tuple(joints), kind=kind,
                                     tracking_error_rad=tuple(thr) if isinstance(thr, (list, tuple)) else thr,
                                     tracking_error_s=g.get("tracking_error_s")))
            if "limits" in g:
                if not isinstance(g["limits"], Mapping):
                    raise ConfigError(f"{path}.limits: expected a mapping")
                group_limits[name] = (f"{path}.limits", g["limits"])

        raw_joint_limits = d.get("joint_limits", {}) or {}
        if not isinstance(raw_joint_limits, Mapping):
            raise ConfigError("joint_limits: expected a mapping {joint: {...}}")
        all_joints = [j for g in groups for j in g.joints]
        for j in raw_joint_limits:
            if j not in all_joints:
                raise ConfigError(f"joint_limits.{j}: joint is in no group")

        limits: dict[str, JointLimits] = {}
        for g in groups:
            for j in g.joints:
                sources: list[tuple[str, Mapping[str, Any]]] = []
                if j in urdf:
                    u = urdf[j]
                    sources.append((f"robot_description joint {j}", {
                        "lower": u.lower, "upper": u.upper, "max_velocity": u.max_velocity}))
                if g.name in group_limits:
                    sources.append(group_limits[g.name])
                if j in raw_joint_limits:
                    jl = raw_joint_limits[j]
                    if not isinstance(jl, Mapping):
                        raise ConfigError(f"joint_limits.{j}: expected a mapping")
                    sources.append((f"joint_limits.{j}", jl))
                limits[j] = _merge_limits(j, sources)

        kwargs: dict[str, Any] = {}
        for name in scalar_names:
            if name in d:
                kwargs[name] = d[name]
        return cls(groups=tuple(groups), limits=limits, **kwargs)

    def with_overrides(self, **kw: Any) -> ControllerConfig:
        """A copy with some scalar fields changed (validated again)."""
        return replace(self, **kw)


_LIMIT_KEYS = ("lower", "upper", "max_velocity", "max_acceleration", "max_jerk")


def _merge_limits(joint: str, sources: list[tuple[str, Mapping[str, Any]]]) -> JointLimits:
    vals: dict[str, float] = {}
    for path, src in sources:
        for k, v in src.items():
            if k not in _LIMIT_KEYS:
                raise ConfigError(f"{path}.{k}: unknown limit field (known: {_LIMIT_KEYS})")
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"{path}.{k}: expected a number, got {v!r}")
            v = float(v)
            if math.isnan(v):
                raise ConfigError(f"{path}.{k}: NaN is not a limit")
            if k == "lower":
                vals[k] = max(vals.get(k, -math.inf), v)
            elif k == "upper":
                vals[k] = min(vals.get(k, math.inf), v)
            else:
                if not (math.isfinite(v) and v > 0):
                    raise ConfigError(f"{path}.{k}: expected a finite number > 0, got {v}")
                vals[k] = min(vals.get(k, math.inf), v)
    where = f"joint_limits.{joint}"
    for k in ("max_velocity", "max_acceleration"):
        if k not in vals:
            hint = " (URDF has no acceleration limits: set it in the group's limits or joint_limits)" \
                if k == "max_acceleration" else ""
            raise ConfigError(f"{where}.{k}: missing{hint}")
    lower = vals.get("lower", -math.inf)
    upper = vals.get("upper", math.inf)
    if not lower < upper:
        raise ConfigError(f"{where}.lower: lower ({lower}) must be < upper ({upper})")
    return JointLimits(lower=lower, upper=upper, max_velocity=vals["max_velocity"],
                       max_acceleration=vals["max_acceleration"], max_jerk=vals.get("max_jerk"))


def _num(name: str, v: Any, *, lo: float | None = None, lo_open: bool = False, hi: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise ConfigError(f"{name}: expected a finite number, got {v!r}")
    v = float(v)
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise ConfigError(f"{name}: must be {'>' if lo_open else '>='} {lo}, got {v}")
    if hi is not None and v > hi:
        raise ConfigError(f"{name}: must be <= {hi}, got {v}")
    return v


def _validate(c: ControllerConfig) -> None:
    if not c.groups:
        raise ConfigError("groups: at least one group is required")
    seen_g: set[str] = set()
    seen_j: dict[str, str] = {}
    for i, g in enumerate(c.groups):
        if not isinstance(g, JointGroup):
            raise ConfigError(f"groups[{i}]: expected a JointGroup")
        if g.name in seen_g:
            raise ConfigError(f"groups[{i}].name: duplicate group name {g.name!r}")
        seen_g.add(g.name)
        if g.kind not in GROUP_KINDS:
            raise ConfigError(f"groups[{i}].kind: expected one of {GROUP_KINDS}, got {g.kind!r}")
        if not g.joints:
            raise ConfigError(f"groups[{i}].joints: empty")
        if isinstance(g.tracking_error_rad, tuple):
            if len(g.tracking_error_rad) != len(g.joints):
                raise ConfigError(f"groups[{i}].tracking_error_rad: needs one value per joint ({len(g.joints)})")
            for x in g.tracking_error_rad:
                _threshold(f"groups[{i}].tracking_error_rad", x)
        elif g.tracking_error_rad is not None:
            _threshold(f"groups[{i}].tracking_error_rad", g.tracking_error_rad)
        if g.tracking_error_s is not None:
            _num(f"groups[{i}].tracking_error_s", g.tracking_error_s, lo=0.0)
        for j in g.joints:
            if j in seen_j:
                raise ConfigError(f"groups[{i}].joints: joint {j!r} is already in group {seen_j[j]!r}")
            seen_j[j] = g.name
    for j in seen_j:
        lim = c.limits.get(j)
        if lim is None:
            raise ConfigError(f"joint_limits.{j}: missing (every joint needs limits)")
        if not (lim.max_velocity > 0 and math.isfinite(lim.max_velocity)):
            raise ConfigError(f"joint_limits.{j}.max_velocity: expected a finite number > 0")
        if not (lim.max_acceleration > 0 and math.isfinite(lim.max_acceleration)):
            raise ConfigError(f"joint_limits.{j}.max_acceleration: expected a finite number > 0")
        if lim.max_jerk is not None and not (lim.max_jerk > 0 and math.isfinite(lim.max_jerk)):
            raise ConfigError(f"joint_limits.{j}.max_jerk: expected a finite number > 0 or None")
        if math.isnan(lim.lower) or math.isnan(lim.upper) or not lim.lower < lim.upper:
            raise ConfigError(f"joint_limits.{j}.lower: lower must be < upper")
    rate = _num("control_rate_hz", c.control_rate_hz, lo=0.0, lo_open=True, hi=10000.0)
    period = 1.0 / rate
    if c.splice_mode not in SPLICE_MODES:
        raise ConfigError(f"splice_mode: expected one of {SPLICE_MODES}, got {c.splice_mode!r}")
    bw = _num("blend_window_s", c.blend_window_s, lo=0.0)
    if 0.0 < bw < 1e-6:  # the ensemble's weight derivatives divide by the window squared
        raise ConfigError(f"blend_window_s: expected 0 (no blend) or at least 1e-6 s, got {bw!r}")
    m = _num("handoff_margin_s", c.handoff_margin_s, lo=0.0)
    if m < period * (1 - 1e-9):
        raise ConfigError(f"handoff_margin_s: must be at least one control period ({period:.6g} s), got {m}")
    _num("stale_chunk_s", c.stale_chunk_s, lo=0.0, lo_open=True)
    if c.max_tick_gap_s is not None:
        _num("max_tick_gap_s", c.max_tick_gap_s, lo=1.5 * period)  # (timer jitter is not a gap)
    _num("stale_state_s", c.stale_state_s, lo=0.0, lo_open=True)
    _num("enable_ramp_s", c.enable_ramp_s, lo=0.0)
    _num("hold_decel_fraction", c.hold_decel_fraction, lo=0.0, lo_open=True, hi=1.0)
    _num("trajectory_horizon_s", c.trajectory_horizon_s, lo=0.0)
    tp = _num("trajectory_point_period_s", c.trajectory_point_period_s, lo=0.0, lo_open=True)
    if c.trajectory_horizon_s > 0 and c.trajectory_horizon_s / tp > 1000:
        raise ConfigError("trajectory_point_period_s: more than 1000 points per trajectory")
    _num("rtc_prefix_s", c.rtc_prefix_s, lo=0.0)
    _num("ensemble_decay", c.ensemble_decay)
    if isinstance(c.replace_execute_steps, bool) or not isinstance(c.replace_execute_steps, int) \
            or c.replace_execute_steps < 1:
        raise ConfigError(f"replace_execute_steps: expected an integer >= 1, got {c.replace_execute_steps!r}")
    _num("max_future_s", c.max_future_s, lo=0.0)
    _num("max_step_period_s", c.max_step_period_s, lo=0.0, lo_open=True)
    _int("max_chunk_steps", c.max_chunk_steps, lo=1, hi=10000)
    _int("max_plan_chunks", c.max_plan_chunks, lo=1, hi=1000)
    _threshold("tracking_error_rad", c.tracking_error_rad)
    _num("tracking_error_s", c.tracking_error_s, lo=0.0)
    _num("tracking_lag_s", c.tracking_lag_s, lo=0.0, hi=10.0)
    if c.gripper_postprocess not in GRIPPER_POSTPROCESS:
        raise ConfigError(f"gripper_postprocess: expected one of {GRIPPER_POSTPROCESS}, got {c.gripper_postprocess!r}")
    if c.action_space not in ACTION_SPACES:
        raise ConfigError(f"action_space: expected one of {ACTION_SPACES}, got {c.action_space!r}")
    if isinstance(c.warmup_steps, bool) or not isinstance(c.warmup_steps, int) or c.warmup_steps < 0:
        raise ConfigError(f"warmup_steps: expected an integer >= 0, got {c.warmup_steps!r}")
    _num("idle_gripper_command", c.idle_gripper_command)


def _int(name: str, v: Any, *, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ConfigError(f"{name}: expected an integer in [{lo}, {hi}], got {v!r}")
    return v


def _threshold(name: str, v: Any) -> float:
    """A watchdog threshold: a number > 0, ``inf`` allowed (off)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(float(v)) or not float(v) > 0:
        raise ConfigError(f"{name}: expected a number > 0 (inf: off), got {v!r}")
    return float(v)


# ---------------------------------------------------------------------------------------------- URDF


@dataclass(frozen=True)
class URDFJointLimits:
    """Limits read from one URDF joint (no acceleration: URDF has none)."""

    lower: float
    upper: float
    max_velocity: float | None
    effort: float | None
    joint_type: str = field(default="revolute")


def parse_urdf_limits(urdf_xml: str) -> dict[str, URDFJointLimits]:
    """Joint limits from a URDF string (``robot_description``).

    revolute / prismatic joints: ``<limit lower upper velocity effort>`` (lower/upper default to 0 as in the
    URDF spec); continuous joints: unbounded position (±inf), velocity from ``<limit>`` if present;
    fixed / floating / planar joints and joints with ``<mimic>`` (driven by another joint) are skipped.
    Raises :class:`URDFError` on malformed XML, a non-``robot`` root, or non-numeric limit attributes.
    """
    if not isinstance(urdf_xml, str):
        raise URDFError(f"robot_description: expected a string, got {type(urdf_xml).__name__}")
    try:
        root = ET.fromstring(urdf_xml)
    except ET.ParseError as e:
        raise URDFError(f"robot_description: malformed XML ({e})") from None
    if root.tag != "robot":
        raise URDFError(f"robot_description: root element is <{root.tag}>, expected <robot>")
    out: dict[str, URDFJointLimits] = {}
    for joint in root.iter("joint"):
        name = joint.get("name")
        jtype = joint.get("type")
        if not name or jtype is None:
            # <joint> inside <transmission> has a name but no type; nameless joints are invalid but harmless
            continue
        if jtype not in ("revolute", "continuous", "prismatic"):
            continue
        if joint.find("mimic") is not None:
            continue
        lim = joint.find("limit")

        def attr(key: str, default: float | None, _lim=lim, _name=name) -> float | None:
            if _lim is None or _lim.get(key) is None:
                return default
            try:
                return float(_lim.get(key))
            except ValueError:
                raise URDFError(f"robot_description: joint {_name!r} <limit {key}={_lim.get(key)!r}> "
                                f"is not a number") from None

        if jtype == "continuous":
            lower, upper = -math.inf, math.inf
        else:
            if lim is None:
                raise URDFError(f"robot_description: {jtype} joint {name!r} has no <limit> (required by URDF)")
            lower, upper = attr("lower", 0.0), attr("upper", 0.0)
        vel = attr("velocity", None)
        if vel is not None and not (vel > 0 and math.isfinite(vel)):
            vel = None  # velocity="0" is common in hand-written URDFs: treat as "not given"
        out[name] = URDFJointLimits(lower=lower, upper=upper, max_velocity=vel, effort=attr("effort", None),
                                    joint_type=jtype)
    return out
