"""Everything the controller node does, without ROS: chunk intake, latching e-stop, enable/reset,
URDF limits, per-group commands in the configured output mode, the executing plan (for real-time chunking),
diagnostics.

Time: every method takes ``now_s`` (ROS time, seconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastwam_ros.control import ChunkController, ControlOutput

from .chunks import ChunkFields, TrajectoryFields, chunk_fields, parse_chunk_counted, split_stamp
from .clock import ClockWatch
from .diagnostics import DiagStatus, hold_explanation
from .stats import LatencyStats, RateMeter, ReasonCounter


@dataclass
class GroupCommand:
    """One group's command for this tick; exactly one of the payloads is set (per output mode)."""

    group: str
    topic_key: str
    trajectory: TrajectoryFields | None = None
    positions: list[float] | None = None  # position mode (Float64MultiArray.data)
    joint_names: list[str] = field(default_factory=list)  # joint_state mode
    velocities: list[float] | None = None  # joint_state mode


@dataclass
class TickOutputs:
    commands: list[GroupCommand]
    prefix: ChunkFields | None
    modes: dict[str, str]


def group_command(mode: str, name: str, g: Any, period_s: float) -> GroupCommand | None:
    """A core ``GroupOutput`` → a command in ``mode``; None when the group has nothing valid to send."""
    if not g.valid or g.positions is None:
        return None
    pos = np.asarray(g.positions, dtype=np.float64)
    vel = np.zeros_like(pos) if g.velocities is None else np.asarray(g.velocities, dtype=np.float64)
    if mode == "trajectory":
        tr = g.trajectory
        if tr is not None and len(tr.time_from_start_s):
            fields = TrajectoryFields(
                stamp=split_stamp(tr.start_stamp_s), frame_id="", joint_names=list(tr.joint_names),
                positions=np.asarray(tr.positions).tolist(), velocities=np.asarray(tr.velocities).tolist(),
                times_from_start=[split_stamp(float(t)) for t in tr.time_from_start_s],
            )
        else:  # single point one period ahead ("start now" stamp), positions only: a stock JTC rejects a
            # last point with non-zero velocity, and interpolates positions-only points linearly
            fields = TrajectoryFields(stamp=(0, 0), frame_id="", joint_names=list(g.joint_names),
                                      positions=[pos.tolist()], velocities=[[]],
                                      times_from_start=[split_stamp(period_s)])
        return GroupCommand(name, name, trajectory=fields)
    if mode == "position":
        return GroupCommand(name, name, positions=pos.tolist())
    if mode == "joint_state":
        return GroupCommand(name, name, positions=pos.tolist(), joint_names=list(g.joint_names),
                            velocities=vel.tolist())
    raise ValueError(f"unknown output mode {mode!r}")


class ControllerRuntime:
    """Owns the :class:`ChunkController`; the node shell feeds it and publishes :meth:`tick`'s outputs."""

    PREFIX_PERIOD_S = 0.05  # executing plan published at most at 20 Hz

    def __init__(self, params: Mapping[str, Any], robot: Any, urdf: str | None = None):
        """``params``: the node's deployment parameters; ``robot``: the RobotSpec (groups, limits, rates);
        ``urdf``: a robot_description that narrows the limits (default: the robot file's ``urdf:``)."""
        if robot.output_mode == "rows":
            from fastwam_ros.errors import ConfigError

            raise ConfigError(f"robot file {robot.source}: command output `rows` is executed by row_executor_node "
                              "(one chunk row per step), not controller_node")
        self.p = dict(params)
        self.robot = robot
        self.mode = robot.output_mode
        self.rejections = ReasonCounter()
        self.chunk_rate = RateMeter()
        self.state_rate = RateMeter()
        self.estop_latched = False
        self.enable_requested = bool(self.p["enable_on_start"])
        self.disabled_after_reset = False  # after ~/reset, until ~/enable: groups stay disabled
        self.urdf_used = False
        self.last_chunk: tuple[int, float] | None = None
        self.last_out: ControlOutput | None = None
        self._last_prefix_s: float | None = None
        self.commands_sent = 0
        self.chunk_age = LatencyStats(window=50)  # "age" at arrival, the policy's "policy" latency (s)
        self.notices: list[str] = []  # warnings for the node's log; drained by pop_notices()
        self._build(urdf)
        # the robot file's sync.clock_jump_threshold_s: one setting for every node's idea of a reset clock
        self.clock = ClockWatch(robot.perception_config().clock_jump_threshold_s)

    def _build(self, urdf: str | None) -> None:
        self.config = self.robot.controller_config(urdf)
        self.core = ChunkController(self.config)
        self._gaps_reported = 0  # the core's metrics.tick_gaps at the last diagnostics report
        self.urdf_used = urdf is not None
        if self.estop_latched:
            self.core.estop(0.0)

    # -- inputs --------------------------------------------------------------------------------------

    def _watch_clock(self, now_s: float) -> None:
        """Every entry point's time goes through here: the clock going back by more than the robot file's
        ``sync.clock_jump_threshold_s`` (bag loop, simulator reset) re-bases the core (see
        :meth:`ChunkController.rebase_clock`) and queues one line to log."""
        back = self.clock.went_back(now_s)
        if back is None:
            return
        self.core.rebase_clock(now_s)
        self._last_prefix_s = None
        self.notices.append(f"the clock went back {back:.3f} s (bag loop or simulator reset?): plan dropped, "
                            "arms decelerate to a hold until joint states and chunks stamped in the new time "
                            "base arrive")

    def pop_notices(self) -> list[str]:
        """Warnings for the node's log since the last call (a clock reset)."""
        out, self.notices = self.notices, []
        return out

    def on_robot_description(self, urdf: str, now_s: float) -> str | None:
        """Merge URDF limits (tighter wins). Rebuilds the core: the plan is dropped, state re-read.
        Returns an error text when the URDF is unusable (the parameter limits stay in force)."""
        if self.p["robot_description.source"] == "none":
            return None
        try:
            self.robot.controller_config(urdf)
        except ValueError as exc:
            self.rejections.count("robot_description:invalid")
            return f"robot_description ignored: {exc}"
        enabled = self.enable_requested
        self._build(urdf)
        self.enable_requested = enabled
        return None

    def on_chunk(self, now_s: float, **fields: Any) -> str | None:
        """An ActionChunk's fields (see :func:`parse_chunk`). Returns the rejection text or None."""
        self._watch_clock(now_s)
        self.chunk_rate.tick(now_s)
        pc, err = parse_chunk_counted(self.rejections, **fields)
        if pc is None:
            return err
        self.chunk_age.add("age", now_s - pc.stamp_s)
        self.chunk_age.add("policy", pc.latency_s)
        res = self.core.submit_chunk(pc.core_chunk(), now_s)
        if not res.accepted:
            self.rejections.count(f"chunk:{res.reason}")
            return f"chunk {pc.chunk_id} rejected: {res.reason} ({res.detail})"
        self.last_chunk = (pc.chunk_id, pc.stamp_s)
        self._last_prefix_s = None  # publish the plan containing this chunk at the next tick (RTC waits for it)
        if self.enable_requested and not self.estop_latched:
            self.core.enable(now_s, clear_faults=False)  # automatic: a latched fault needs ~/enable
        return None

    def on_joint_state(self, stamp_s: float, names: Sequence[str], positions: Sequence[float], now_s: float) -> None:
        self._watch_clock(now_s)
        self.state_rate.tick(now_s)
        res = self.core.update_joint_state(stamp_s, names, positions, now_s)
        if not res.accepted:
            self.rejections.count(f"joint_state:{res.reason}")

    def on_estop(self, engaged: bool, now_s: float) -> str:
        """``True`` latches the e-stop; ``False`` does NOT release it (use the reset service)."""
        self._watch_clock(now_s)
        if engaged:
            if not self.estop_latched:
                self.estop_latched = True
                self.core.estop(now_s)
            return "e-stop latched: braking to a hold; call ~/reset to clear"
        return "e-stop stays latched until ~/reset" if self.estop_latched else "e-stop not engaged"

    def set_enabled(self, on: bool, now_s: float) -> tuple[bool, str]:
        self._watch_clock(now_s)
        if on:
            if self.estop_latched:
                return False, "e-stop latched: call ~/reset first"
            self.enable_requested = True
            self.disabled_after_reset = False
            res = self.core.enable(now_s)
            bad = {g: r for g, r in res.items() if r}
            return (not bad), ("enabled" if not bad else f"not enabled: {bad}")
        self.enable_requested = False
        self.core.disable(now_s)
        return True, "disabled: decelerating to a hold"

    def reset(self, now_s: float) -> str:
        """Clear the e-stop; groups come back disabled and stay so until ~/enable, even while chunks stream
        (``enable_on_start`` applies to the first start only: motion after an e-stop needs a deliberate enable)."""
        self._watch_clock(now_s)
        was_latched = self.estop_latched
        self.estop_latched = False
        self.core.reset(now_s)
        self.enable_requested = False
        self.disabled_after_reset = True
        cleared = "e-stop cleared" if was_latched else "no e-stop was latched"
        return f"reset: {cleared}, plan dropped; groups disabled until ~/enable"

    # -- the tick ------------------------------------------------------------------------------------

    def tick(self, now_s: float) -> TickOutputs:
        self._watch_clock(now_s)
        due = self._last_prefix_s is None or now_s < self._last_prefix_s \
            or now_s - self._last_prefix_s >= self.PREFIX_PERIOD_S
        # the executing plan, when due, is computed by the tick itself (one evaluation of the plan for both)
        out = self.core.tick(now_s, with_trajectory=self.mode == "trajectory", with_prefix=due,
                             prefix_duration_s=self.config.rtc_prefix_s, prefix_through_plan=True)
        self.last_out = out
        cmds = []
        modes = {}
        for name, g in out.groups.items():
            modes[name] = g.mode
            c = group_command(self.mode, name, g, self.config.period_s)
            if c is not None:
                cmds.append(c)
        self.commands_sent += len(cmds)
        prefix = None
        if due:
            prefix = self.executing_plan(now_s, out)
            if prefix is not None:
                self._last_prefix_s = now_s
        return TickOutputs(cmds, prefix, modes)

    def executing_plan(self, now_s: float, out: ControlOutput) -> ChunkFields | None:
        """The whole remaining plan from ``now_s`` to its end (at least ``rtc_prefix_s``; where a group is not
        running: where it comes to rest) on the newest chunk's step grid, stamped ``now_s`` (its first row):
        what the policy's real-time chunking aligns the next chunk to. ``committed_steps``: the rows inside
        ``rtc_prefix_s``; ``guided_steps``: all rows. None when there is nothing to publish."""
        cp = out.committed_prefix
        if cp is None or out.stamp_s != now_s or cp.stamp_s != now_s:  # (not computed by the tick at now_s)
            horizon_s = max(self.config.rtc_prefix_s, out.metrics.plan_depth_s if out.plan_active else 0.0)
            cp = self.core.committed_prefix(now_s, duration_s=horizon_s)
        if cp.num_steps <= 0 or not np.all(np.isfinite(cp.positions)):
            return None
        committed = min(cp.num_steps, int(np.ceil(self.config.rtc_prefix_s / cp.step_period_s - 1e-9)))
        f = chunk_fields(np.asarray(cp.positions), list(out.joint_names), stamp_s=cp.stamp_s,
                         chunk_id=-1 if cp.newest_chunk_id is None else int(cp.newest_chunk_id),
                         step_period_s=cp.step_period_s, committed_steps=committed, model_id="committed_prefix",
                         with_velocities=False, rtc_mode="plan", guided_steps=int(cp.num_steps))
        f.chunk_id = max(f.chunk_id, 0)
        return f

    # -- diagnostics ---------------------------------------------------------------------------------

    def diagnostics(self, now_s: float) -> list[DiagStatus]:
        st = DiagStatus("controller", 0, "ok")
        if self.estop_latched:
            st.escalate(2, "E-STOP latched (call ~/reset)")
        elif self.disabled_after_reset:
            # not OK: the arms will not move on their own, however many chunks arrive
            st.escalate(1, "disabled after e-stop reset (call ~/enable)")
        out = self.last_out
        if out is not None:
            holding = {}
            for g, go in out.groups.items():
                st.values.append((f"group {g} mode", go.mode + (f" ({go.reason})" if go.reason else "")))
                if go.fault is not None:
                    st.escalate(2, f"group {g} fault: {go.fault} (robot does not follow; call ~/enable)")
                if go.mode == "hold" and go.reason not in (None, "anchored"):
                    st.escalate(1, f"group {g} holding: {go.reason}")
                    holding[g] = go.reason
                elif go.mode == "disabled" and self.enable_requested and not self.estop_latched:
                    holding[g] = "no chunk accepted yet"  # waiting to enable on the first accepted chunk
            why = hold_explanation(holding, self.rejections.as_dict(), self.chunk_age, self.config.stale_chunk_s)
            if why and st.level <= 1:
                st.level, st.message = 1, why
            m = out.metrics
            if m.tick_gaps > self._gaps_reported:  # ticks stopped since the last report (shown with a hold's reason)
                gaps = (f"{m.tick_gaps - self._gaps_reported} tick gap(s) > max_tick_gap_s "
                        f"{self.config.tick_gap_s:g} s since the last report (longest so far {m.max_tick_gap_s:.3f} "
                        "s): the command restarted from the robot's state; a stalled executor, or under "
                        "use_sim_time a /clock slower than the control rate")
                if st.level == 1:
                    st.message = f"{st.message}; {gaps}"
                st.escalate(1, gaps)
                self._gaps_reported = m.tick_gaps
            st.values += [
                ("plan", "active" if out.plan_active else f"inactive ({out.plan_reason})"),
                ("chunks accepted", str(m.chunks_accepted)),
                ("plan depth (s)", f"{m.plan_depth_s:.3f}"),
                ("time to exhaustion (s)", f"{m.time_to_exhaustion_s:.3f}"),
                ("max seam position jump", f"{m.max_seam_position_jump:.4g}"),
                ("joint-state rejections", str(m.state_rejections)),
                ("tracking faults", str(m.tracking_faults)),
                ("tracking error now (max over joints)",
                 f"{0.0 if m.tracking_error is None else float(np.max(m.tracking_error)):.4g}"),
                ("max tracking error", f"{m.max_tracking_error:.4g}"),
                ("time errors", str(m.time_errors)),
                ("clock resets (time base changes)", str(m.clock_jumps)
                 + (f", last went back {m.last_clock_jump_s:.3f} s" if m.clock_jumps else "")),
                ("tick gaps (ticks stopped: resumed from the robot's state)", str(m.tick_gaps)
                 + (f", longest {m.max_tick_gap_s:.3f} s" if m.tick_gaps else "")),
            ]
            for k, v in sorted((m.rejections or {}).items()):
                if v:
                    st.values.append((f"core rejected {k}", str(v)))
            for kind, per_joint in sorted(m.clamp_counts().items()):
                total = sum(per_joint.values())
                if total:
                    st.values.append((f"clamped {kind} (ticks)", str(total)))
        st.values += [
            ("output mode", self.mode),
            ("limits from robot_description", str(self.urdf_used)),
            ("chunk rate (Hz)", f"{self.chunk_rate.rate_hz(now_s):.2f}"),
            ("joint_states rate (Hz)", f"{self.state_rate.rate_hz(now_s):.2f}"),
            ("commands sent", str(self.commands_sent)),
        ]
        for k, v in sorted(self.rejections.as_dict().items()):
            st.values.append((f"rejected {k}", str(v)))
        return [st]
