"""ChunkController: action chunks in, limited per-group setpoints out — all in explicit time (seconds).

Lifecycle of a chunk: ``submit_chunk`` validates it (rejections are counted by reason), then — depending on
``splice_mode`` — splices it into the plan at a hand-off time ``t_h = max(now + handoff_margin_s, stamp)``
(steps before t_h are skipped: latency compensation), ensembles it, or (``replace``) executes its first N
steps open-loop. ``tick(now)`` evaluates the plan at ``now``, applies per-group modes (enable ramp, hold,
e-stop) and the limiter, and returns setpoints, a short trajectory, the committed prefix and metrics.

Modes per group (``GroupOutput.mode``):
  ``no_state``  no joint state yet for the group: output invalid (positions None) — publish nothing.
  ``disabled``  not enabled: decelerate (hold_decel_fraction·a_max) to a hold of the commanded position.
  ``stopping``  enable requested while the command is still moving: brake first, then anchor.
  ``hold``      enabled but no usable plan (``reason``: no_plan, waiting_handoff, exhausted, stale_chunk,
                stale_state, anchored):
                decelerate to a hold; resumes with a blend-in ramp when the reason clears.
  ``ramp``      blending in from the anchor pose (enable: measured pose over enable_ramp_s; resume after a
                hold: the held pose over blend_window_s, except in ``replace``).
  ``running``   following the plan.
  ``estop``     latched: brake at the full acceleration limit, then freeze; only ``reset`` clears it
                (all groups come back ``disabled`` and the plan is dropped).

Tracking-error watchdog: when an enabled group's joint stays further than ``tracking_error_rad`` from the
positions commanded during the last ``tracking_lag_s`` for ``tracking_error_s`` (the robot does not follow),
the group *faults*: it is disabled (``disabled``,
reason ``tracking_error``, ``GroupOutput.fault`` set), so the command decelerates to a hold, and only an explicit
``enable(..., clear_faults=True)`` (the default) re-enables it, re-anchored to the measured pose.

The short trajectory (trajectory output) is the limited command over ``trajectory_horizon_s`` followed by a
braking tail at the full acceleration limit down to velocity 0, so its last point is at rest: a stock
joint_trajectory_controller accepts it with its defaults (``allow_nonzero_velocity_at_trajectory_end: false``),
and should commands stop arriving the robot stops within its limits. The next tick's trajectory replaces it
long before the tail is reached, so tracking is unaffected.

Enable anchors the command to the *measured* pose (clipped into the position range) once the command is
at rest: that is the one place the command may jump (to where the robot actually is); ``GroupOutput.anchored``
flags the tick.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from fastwam_ros.joint_state import JointStateError, check_joint_state

from .config import ControllerConfig
from .gripper import postprocess_gripper
from .limits import CLAMP_KINDS, LimitArrays, StepResult, braking_tail, limiter_rollout, limiter_step
from .plan import (
    BlendSource,
    ChunkSpline,
    EnsembleMember,
    EnsembleSource,
    Source,
    cap_members,
    eval_pv,
    eval_pv_many,
    smoothstep5,
    smoothstep5_many,
    trim_blend,
)
from .types import (  # noqa: F401 - re-exported: the public names live here too
    FLOAT32_MAX,
    REJECT_REASONS,
    Chunk,
    CommittedPrefix,
    ControlOutput,
    GroupOutput,
    Metrics,
    SubmitResult,
    Trajectory,
)
from .watchdog import TrackingWatchdog


@dataclass
class _GroupState:
    idx: np.ndarray
    enabled: bool = False
    pending_anchor: bool = False
    ramp_start_s: float = -math.inf
    ramp_dur_s: float = 0.0
    ramp_from: np.ndarray | None = None
    pending_ramp_s: float = 0.0
    running: bool = False
    mode: str = "no_state"
    reason: str | None = None
    fault: str | None = None
    valid: bool = False  # every joint of the group has had a joint state


class ChunkController:
    """See the module docstring. Not thread-safe: call from one thread (or hold a lock in the node)."""

    def __init__(self, config: ControllerConfig) -> None:
        self.cfg = config
        self.names = config.joint_names
        self.J = len(self.names)
        self._col = {n: i for i, n in enumerate(self.names)}
        self._gripper_cols = np.array([self._col[j] for g in config.groups if g.kind == "gripper" for j in g.joints],
                                      dtype=np.intp)
        self.lim = LimitArrays.from_limits(self.names, config.limits)
        self._groups: dict[str, _GroupState] = {
            g.name: _GroupState(idx=np.array([self._col[j] for j in g.joints], dtype=np.intp)) for g in config.groups
        }
        self._grp_order = np.concatenate([st.idx for st in self._groups.values()])
        self._grp_starts = np.cumsum([0] + [st.idx.size for st in self._groups.values()][:-1])
        self.p = np.full(self.J, np.nan)
        self.v = np.zeros(self.J)
        self.a = np.zeros(self.J)
        self.initialised = np.zeros(self.J, dtype=bool)
        self._all_initialised = False
        self.meas_p = np.full(self.J, np.nan)
        self.meas_stamp = np.full(self.J, -np.inf)
        self.estopped = False
        self._source: Source | None = None
        self._plan_end_s = -math.inf
        self._plan_start_s = -math.inf
        self._members: list[EnsembleMember] = []
        self._ens_anchor: float | None = None
        self._newest_stamp = -math.inf
        self._newest_dt: float | None = None
        self._newest_id: int | None = None
        self._last_tick: float | None = None
        self._last_output: ControlOutput | None = None
        self.metrics = Metrics(joint_names=self.names, rejections={r: 0 for r in REJECT_REASONS},
                               clamps={k: np.zeros(self.J, dtype=np.int64) for k in CLAMP_KINDS},
                               tracking_error=np.zeros(self.J))
        thr, dur = np.empty(self.J), np.empty(self.J)
        for g in config.groups:
            i = self._groups[g.name].idx
            if g.tracking_error_rad is not None:
                thr[i] = np.asarray(g.tracking_error_rad)
            else:  # grippers grasp (stop short of their command): watched only when the group says so
                thr[i] = np.inf if g.kind == "gripper" else config.tracking_error_rad
            dur[i] = config.tracking_error_s if g.tracking_error_s is None else g.tracking_error_s
        self.watchdog = TrackingWatchdog(thr, dur, lag_ticks=int(round(config.tracking_lag_s * config.control_rate_hz)) + 1)
        self._traj_out: ControlOutput | None = None  # the last tick's output (its trajectories, if any: read after a gap)
        self._tick_gap_s = config.tick_gap_s

    # ------------------------------------------------------------------ inputs

    def _reject(self, reason: str, detail: str) -> SubmitResult:
        self.metrics.rejections[reason] = self.metrics.rejections.get(reason, 0) + 1
        return SubmitResult(False, reason, detail)

    def submit_chunk(self, chunk: Chunk, now_s: float) -> SubmitResult:
        """Validate ``chunk`` and merge it into the plan. Never raises for bad chunks: returns the reason."""
        if not _finite_number(now_s):
            return self._reject("bad_time", f"now_s={now_s!r} is not a finite number")
        now = float(now_s)
        if not isinstance(chunk, Chunk):
            return self._reject("bad_type", f"expected Chunk, got {type(chunk).__name__}")
        if not _finite_number(chunk.stamp_s):
            return self._reject("bad_stamp", f"stamp_s={chunk.stamp_s!r} is not a finite number")
        if not _finite_number(chunk.step_period_s) or not 0 < chunk.step_period_s <= self.cfg.max_step_period_s:
            return self._reject("bad_step_period", f"step_period_s={chunk.step_period_s!r} not in "
                                                   f"(0, {self.cfg.max_step_period_s}]")
        stamp, dt = float(chunk.stamp_s), float(chunk.step_period_s)
        try:
            names = [str(n) for n in chunk.joint_names]
            pos = np.asarray(chunk.positions, dtype=np.float64)
            vel = None if chunk.velocities is None else np.asarray(chunk.velocities, dtype=np.float64)
        except (TypeError, ValueError) as e:
            return self._reject("bad_shape", f"positions/velocities/joint_names not numeric arrays ({e})")
        if pos.ndim != 2 or pos.shape[0] < 1 or pos.shape[1] != len(names):
            return self._reject("bad_shape", f"positions shape {pos.shape} is not [H>=1, {len(names)} joint_names]")
        if pos.shape[0] > self.cfg.max_chunk_steps:
            return self._reject("too_long", f"{pos.shape[0]} steps > max_chunk_steps={self.cfg.max_chunk_steps}")
        if vel is not None and vel.shape != pos.shape:
            return self._reject("bad_shape", f"velocities shape {vel.shape} != positions shape {pos.shape}")
        if not np.isfinite(pos).all() or (vel is not None and not np.isfinite(vel).all()):
            return self._reject("non_finite", "positions/velocities contain NaN or inf")
        if len(set(names)) != len(names):
            return self._reject("duplicate_joint", "joint_names has duplicates")
        unknown = [n for n in names if n not in self._col]
        if unknown:
            return self._reject("unknown_joint", f"unknown joints {unknown[:5]}")
        missing = [n for n in self.names if n not in set(names)]
        if missing:
            return self._reject("missing_joint", f"missing joints {missing[:5]}")
        if stamp > now + self.cfg.max_future_s:
            return self._reject("future_stamp", f"stamp {stamp:.6f} is {stamp - now:.3f} s in the future "
                                                f"(max_future_s={self.cfg.max_future_s})")
        if now - stamp > self.cfg.stale_chunk_s:
            return self._reject("stale_chunk", f"observation is {now - stamp:.3f} s old "
                                               f"(stale_chunk_s={self.cfg.stale_chunk_s})")
        if stamp <= self._newest_stamp:
            return self._reject("non_increasing_stamp",
                                f"stamp {stamp:.6f} <= newest accepted {self._newest_stamp:.6f}")
        t_h = max(now + self.cfg.handoff_margin_s, stamp)
        end = stamp + (pos.shape[0] - 1) * dt
        if end <= t_h:
            return self._reject("expired", f"chunk ends at {end:.6f}, before the hand-off {t_h:.6f}")
        if self.estopped:
            return self._reject("estopped", "e-stop latched; reset first")
        mode = self.cfg.splice_mode
        if mode == "replace" and self._plan_usable(now) is None:
            return self._reject("busy", "replace mode: still executing the previous chunk's first N steps")

        order = np.array([names.index(n) for n in self.names], dtype=np.intp)
        pos = pos[:, order]
        vel = None if vel is None else vel[:, order]
        if self.cfg.gripper_postprocess != "none" and self._gripper_cols.size:
            # the robot's gripper convention (a step command: its velocity is left to the limiter)
            pos[:, self._gripper_cols] = postprocess_gripper(pos[:, self._gripper_cols], self.cfg.gripper_postprocess)
            if vel is not None:
                vel[:, self._gripper_cols] = 0.0
        old = self._source if self._plan_usable(now) is None else None
        if mode == "splice":
            new_spline = ChunkSpline(stamp, dt, pos, vel)
            src: Source = new_spline if old is None else BlendSource(
                trim_blend(old, self.cfg.max_plan_chunks - 1), new_spline, t_h, self.cfg.blend_window_s)
            self._plan_end_s = new_spline.end_s
        elif mode == "ensemble":
            new_spline = ChunkSpline(stamp, dt, pos, vel)
            if self._ens_anchor is None:
                self._ens_anchor = stamp
            members = [m for m in self._members if m.end_s + self.cfg.blend_window_s > now] if old is not None else []
            members.append(EnsembleMember(new_spline, -self.cfg.ensemble_decay * (stamp - self._ens_anchor) / dt,
                                          t_h, new_spline.end_s))
            members = cap_members(members, self.cfg.max_plan_chunks, t_h, self.cfg.blend_window_s, self.J)
            self._members = members
            src = EnsembleSource(members, self.cfg.blend_window_s, self.J)
            self._plan_end_s = max(m.end_s for m in members)
        else:  # replace: official loop — the first N steps, retimed to start at the hand-off, no blending
            n = min(self.cfg.replace_execute_steps, pos.shape[0])
            new_spline = ChunkSpline(t_h, dt, pos[:n], None if vel is None else vel[:n])
            src = new_spline
            self._plan_end_s = max(new_spline.end_s, t_h + dt)
        if old is not None or (mode == "replace" and self.initialised.all() and self._newest_dt is not None):
            # seam: the executed plan just after vs. just before the hand-off. In replace mode a chunk starts
            # after a wait, so "before" is the current command (the limiter alone absorbs the step); in the
            # other modes a chunk with no plan to splice into is not a seam (the enable/resume ramp blends it)
            po, vo = (old.eval(t_h)[:2]) if old is not None else (self.p, self.v)
            pn, vn, _ = src.eval(t_h)
            pr, _, _ = new_spline.eval(t_h)
            m = self.metrics
            m.seams += 1
            m.last_seam_position_jump = float(np.max(np.abs(pn - po)))
            m.last_seam_velocity_jump = float(np.max(np.abs(vn - vo)))
            m.max_seam_position_jump = max(m.max_seam_position_jump, m.last_seam_position_jump)
            m.max_seam_velocity_jump = max(m.max_seam_velocity_jump, m.last_seam_velocity_jump)
            m.max_seam_disagreement = max(m.max_seam_disagreement, float(np.max(np.abs(pr - po))))
        if old is None:
            self._plan_start_s = t_h  # nothing to splice into: the new plan starts at the hand-off
        self._source = src
        self._newest_stamp, self._newest_dt, self._newest_id = stamp, dt, int(chunk.chunk_id)
        self.metrics.chunks_accepted += 1
        return SubmitResult(True, None, None, t_h)

    def update_joint_state(self, stamp_s: float, names: Sequence[str], positions: Sequence[float],
                           now_s: float | None = None) -> SubmitResult:
        """Measured joint positions at ``stamp_s``. Unknown names are ignored (joint_states often carry more
        joints); entries that are non-finite or outside the float32 range (a JointState carries float64, but
        1e300 is no joint position) and stamps older than the last one for that joint are skipped and counted;
        a message naming a joint twice is rejected whole (``duplicate_joint``: neither value is trusted, the
        same rule as perception's); with ``now_s``, stamps more than ``max_future_s`` ahead are rejected."""
        if not _finite_number(stamp_s):
            self.metrics.state_rejections += 1
            return SubmitResult(False, "bad_stamp", f"stamp_s={stamp_s!r}")
        if now_s is not None and _finite_number(now_s) and stamp_s > now_s + self.cfg.max_future_s:
            self.metrics.state_rejections += 1
            return SubmitResult(False, "future_stamp", f"stamp {stamp_s} is ahead of now {now_s}")
        try:  # the message's structure: the one rule perception applies too (fastwam_ros.joint_state)
            names, vals = check_joint_state(names if isinstance(names, (str, bytes)) else list(names), positions)
        except (JointStateError, TypeError) as e:
            self.metrics.state_rejections += 1
            reason = "duplicate_joint" if getattr(e, "reason", "") == "duplicate_joint" else "bad_shape"
            return SubmitResult(False, reason, str(e))
        skipped = 0
        for n, x in zip(names, vals):
            i = self._col.get(n)
            if i is None:
                continue
            if not abs(x) <= FLOAT32_MAX or stamp_s < self.meas_stamp[i]:
                skipped += 1
                continue
            self.meas_p[i] = x
            self.meas_stamp[i] = stamp_s
            if not self.initialised[i]:
                self.p[i] = min(max(x, self.lim.lower[i]), self.lim.upper[i])
                self.v[i] = 0.0
                self.a[i] = 0.0
                self.initialised[i] = True
                self._refresh_initialised()
        if skipped:
            self.metrics.state_rejections += skipped
            return SubmitResult(True, "partial", f"{skipped} entries skipped (non-finite or out of order)")
        return SubmitResult(True)

    # ------------------------------------------------------------------ modes

    def _resolve_groups(self, groups: Iterable[str] | str | None) -> list[str]:
        if groups is None:
            return list(self._groups)
        if isinstance(groups, str):
            groups = [groups]
        return list(groups)

    def enable(self, now_s: float, groups: Iterable[str] | str | None = None,
               clear_faults: bool = True) -> dict[str, str | None]:
        """Enable groups (all by default). Returns {group: None if enabled else the reason}.

        A group with a latched fault (``tracking_error``) is enabled only with ``clear_faults`` (an explicit
        operator request); an automatic enable passes False and the fault stays."""
        out: dict[str, str | None] = {}
        for g in self._resolve_groups(groups):
            st = self._groups.get(g)
            if st is None:
                out[g] = "unknown_group"
            elif self.estopped:
                out[g] = "estopped"
            elif st.fault is not None and not clear_faults:
                out[g] = st.fault
            else:
                if st.fault is not None:
                    st.fault = None
                    self.watchdog.clear(st.idx)
                if not st.enabled:
                    st.enabled = True
                    st.pending_anchor = True
                out[g] = None
        return out

    def disable(self, now_s: float, groups: Iterable[str] | str | None = None) -> dict[str, str | None]:
        """Disable groups (all by default): they decelerate to a hold."""
        out: dict[str, str | None] = {}
        for g in self._resolve_groups(groups):
            st = self._groups.get(g)
            if st is None:
                out[g] = "unknown_group"
                continue
            st.enabled = False
            st.pending_anchor = False
            out[g] = None
        return out

    def estop(self, now_s: float) -> None:
        """Latch the e-stop: every group brakes at its full acceleration limit to a stop and freezes there.
        (Braking rather than freezing the command at once: a frozen command with the arm moving would be an
        infinite deceleration.) Chunks and enables are refused until ``reset``."""
        self.estopped = True

    def reset(self, now_s: float) -> None:
        """Clear the e-stop. All groups come back disabled; the plan is dropped (chunks must come anew)."""
        self.estopped = False
        for st in self._groups.values():
            st.enabled = False
            st.pending_anchor = False
            st.running = False
            st.fault = None
        self.watchdog.clear(np.arange(self.J))
        self._source = None
        self._members = []
        self._plan_end_s = -math.inf

    def rebase_clock(self, now_s: float) -> None:
        """The caller's clock was reset to ``now_s`` (s), behind the last tick (a bag replayed in a loop, a
        simulator reset): everything stamped in the old time base goes. The plan is dropped (running groups
        decelerate to a hold, as when chunks stop), the newest chunk stamp and the joint-state stamps are
        forgotten (joint states and chunks stamped in the new time base are accepted again; until a joint state
        arrives the groups hold for ``stale_state``), the tracking watchdog restarts its timers and the next tick
        is one period long. The commanded state (positions, velocities, accelerations), enables, faults and the
        e-stop are kept: the command stays continuous. Counted in ``metrics.clock_jumps``."""
        now = float(now_s)
        m = self.metrics
        m.clock_jumps += 1
        m.last_clock_jump_s = (self._last_tick - now) if self._last_tick is not None else 0.0
        self._source = None  # (the plan's start and end are read only while there is one)
        self._members = []  # (frees the old members: read only with an ensemble plan)
        self._ens_anchor = None  # the ensemble's weights count stamps from the first chunk of the new time base
        self._newest_stamp, self._newest_dt, self._newest_id = -math.inf, None, None
        self.meas_stamp[:] = -math.inf
        self.watchdog.restart_timing()
        self._last_tick = None

    # ------------------------------------------------------------------ tick

    def _plan_usable(self, now: float) -> str | None:
        """None if the plan can be followed at ``now``, else why not."""
        if self._source is None:
            return "no_plan"
        if now < self._plan_start_s:
            return "waiting_handoff"
        if now >= self._plan_end_s:
            return "exhausted"
        if now - self._newest_stamp > self.cfg.stale_chunk_s:
            return "stale_chunk"
        return None

    def _collapse(self, src: Source, now: float) -> Source:
        if isinstance(src, BlendSource):
            if now >= src.t_h + src.w:
                return self._collapse(src.new, now)
            src.old = self._collapse(src.old, now)
        return src

    def _reference(self, t: float, run: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p, v = eval_pv(self._source, t)  # type: ignore[arg-type]
        for st in self._groups.values():
            if not run[st.idx[0]] or st.ramp_dur_s <= 0 or st.ramp_from is None:
                continue
            x = (t - st.ramp_start_s) / st.ramp_dur_s
            if x >= 1.0:
                continue
            s, ds, _ = smoothstep5(x)
            ds /= st.ramp_dur_s
            i = st.idx
            d = p[i] - st.ramp_from
            v[i] = ds * d + s * v[i]
            p[i] = st.ramp_from + s * d
        return p, v

    def _reference_many(self, ts: np.ndarray, run: np.ndarray, with_velocity: bool = True,
                        velocity_rows: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`_reference` at K times at once ([K, J] each; row k equals ``_reference(ts[k], run)``);
        ``with_velocity=False``: positions only (velocities None); ``velocity_rows``: velocities wanted at the
        first that many times only (the rows after them are not velocities)."""
        p, v = eval_pv_many(self._source, ts, with_velocity, velocity_rows)  # type: ignore[arg-type]
        for st in self._groups.values():
            if not run[st.idx[0]] or st.ramp_dur_s <= 0 or st.ramp_from is None:
                continue
            x = (ts - st.ramp_start_s) / st.ramp_dur_s
            rows = np.flatnonzero(x < 1.0)
            if rows.size == 0:
                continue
            s, ds, _ = smoothstep5_many(x[rows])
            s, ds = s[:, None], (ds / st.ramp_dur_s)[:, None]
            cell = np.ix_(rows, st.idx)
            d = p[cell] - st.ramp_from
            if v is not None:
                v[cell] = ds * d + s * v[cell]
            p[cell] = st.ramp_from + s * d
        return p, v

    def _brake_decel(self) -> np.ndarray:
        return self.lim.max_acceleration * (1.0 if self.estopped else self.cfg.hold_decel_fraction)

    def tick(self, now_s: float, with_trajectory: bool = True, with_prefix: bool = True,
             prefix_duration_s: float | None = None, prefix_through_plan: bool = False) -> ControlOutput:
        """Advance to ``now_s`` and return the setpoints valid at ``now_s`` (see :meth:`_tick`).

        A tick more than ``tick_gap_s`` after the previous one follows a gap (ticks stopped while the robot went
        on with the last output): the command state is first brought to what the robot was told one period
        before ``now_s`` (:meth:`_resume_after_gap`) and the tick is one period long."""
        last = self._last_tick
        if last is not None and _finite_number(now_s) and float(now_s) - last > self._tick_gap_s:
            now = float(now_s)
            self._resume_after_gap(now, now - last)
            self._last_tick = None  # (the body's first-tick rule: one period long)
        out = self._tick(now_s, with_trajectory, with_prefix, prefix_duration_s, prefix_through_plan)
        if self._last_tick != last:  # (a bad time changes nothing)
            self._traj_out = out  # read only after a gap (with setpoints only it carries no trajectory)
        return out

    def _tick(self, now_s: float, with_trajectory: bool = True, with_prefix: bool = True,
              prefix_duration_s: float | None = None, prefix_through_plan: bool = False) -> ControlOutput:
        """Advance to ``now_s`` and return the setpoints valid at ``now_s``.

        with_trajectory / with_prefix: compute the short trajectory / the committed prefix (skip them to save
        time when they are not published; ``committed_prefix`` is then None). The prefix is what
        ``committed_prefix(now_s, duration_s=d)`` returns after this tick, with d = ``prefix_duration_s``
        (default ``rtc_prefix_s``), or with ``prefix_through_plan`` at least the executing plan's remaining depth
        (the executing plan published for real-time chunking); its plan positions are evaluated together with
        this tick's reference and trajectory (one pass over the plan instead of two).

        A non-finite or non-increasing ``now_s`` changes nothing: the previous output is returned again and
        ``metrics.time_errors`` counts it.
        """
        if not _finite_number(now_s) or (self._last_tick is not None and now_s <= self._last_tick):
            self.metrics.time_errors += 1
            if self._last_output is not None:
                return self._last_output
            now_s = 0.0 if not _finite_number(now_s) else now_s
        now = float(now_s)
        dt = self.cfg.period_s if self._last_tick is None else now - self._last_tick
        self._last_tick = now
        self.metrics.ticks += 1
        if self._source is not None:
            self._source = self._collapse(self._source, now)
            if isinstance(self._source, EnsembleSource):
                self._members = [m for m in self._members if m.end_s > now - self.cfg.blend_window_s]
                if self._members:
                    self._source.members = self._members
        plan_reason = self._plan_usable(now)
        self._watch(now)

        run = np.zeros(self.J, dtype=bool)
        anchored: dict[str, bool] = {}
        # each group's oldest joint-state stamp, all groups in one reduction
        oldest = np.minimum.reduceat(self.meas_stamp[self._grp_order], self._grp_starts).tolist()
        for g_i, (name, st) in enumerate(self._groups.items()):
            i = st.idx
            anchored[name] = False
            was_running = st.running
            st.running = False
            state_age = now - oldest[g_i]
            if self.estopped:
                st.mode, st.reason = "estop", "estop"
            elif not st.valid:
                st.mode, st.reason = "no_state", "no_joint_state"
            elif not st.enabled:
                st.mode, st.reason = "disabled", st.fault
            elif state_age > self.cfg.stale_state_s:
                st.mode, st.reason = "hold", "stale_state"
            elif st.pending_anchor:
                if np.all(self.v[i] == 0.0):
                    self.p[i] = np.clip(self.meas_p[i], self.lim.lower[i], self.lim.upper[i])
                    self.a[i] = 0.0
                    st.pending_anchor = False
                    st.pending_ramp_s = self.cfg.enable_ramp_s
                    anchored[name] = True
                    st.mode, st.reason = "hold", "anchored"
                else:
                    st.mode, st.reason = "stopping", "command_moving"
            elif plan_reason is not None:
                st.mode, st.reason = "hold", plan_reason
            else:
                if not was_running:
                    resume = 0.0 if self.cfg.splice_mode == "replace" else self.cfg.blend_window_s
                    st.ramp_dur_s = max(st.pending_ramp_s, resume)
                    st.pending_ramp_s = 0.0
                    st.ramp_start_s = now - dt
                    st.ramp_from = self.p[i].copy()
                st.running = True
                run[i] = True
                in_ramp = st.ramp_dur_s > 0 and now < st.ramp_start_s + st.ramp_dur_s
                st.mode, st.reason = ("ramp" if in_ramp else "running"), None

        depth = self._plan_end_s - now if plan_reason is None else 0.0
        traj_on = with_trajectory and self.cfg.trajectory_horizon_s > 0
        traj_ts = self._trajectory_times(now) if traj_on else None
        grid = None
        if with_prefix:
            d = self.cfg.rtc_prefix_s if prefix_duration_s is None else float(prefix_duration_s)
            grid = self._prefix_grid(now, None, max(d, depth) if prefix_through_plan else d)
        # this tick's reference, the trajectory's and the prefix's plan positions in one evaluation
        n_traj = 0 if traj_ts is None else traj_ts.shape[0]
        n_pre = grid[3].shape[0] if grid is not None and self._source is not None else 0
        refs = None
        if (n_traj or n_pre) and run.any():
            parts = [np.array([now])]
            if n_traj:
                parts.append(traj_ts)
            if n_pre:
                parts.append(np.maximum(grid[3], now))
            refs = self._reference_many(np.concatenate(parts), run, velocity_rows=1 + n_traj)
        res = self._step(now, dt, run, ref=None if refs is None else (refs[0][0], refs[1][0]))
        m = self.metrics
        for kind, arr in (("position", res.clamped_position), ("velocity", res.clamped_velocity),
                          ("acceleration", res.clamped_acceleration), ("non_finite", res.non_finite)):
            m.clamps[kind] += arr
        if self._all_initialised:
            self.p, self.v, self.a = res.p, res.v, res.a
        else:
            self.p = np.where(self.initialised, res.p, self.p)
            self.v = np.where(self.initialised, res.v, 0.0)
            self.a = np.where(self.initialised, res.a, 0.0)

        m.plan_depth_s = max(depth, 0.0)
        m.time_to_exhaustion_s = 0.0 if plan_reason is not None else \
            max(0.0, min(self._plan_end_s, self._newest_stamp + self.cfg.stale_chunk_s) - now)

        traj = self._trajectory(now, run, None if refs is None else (refs[0][1:1 + n_traj], refs[1][1:1 + n_traj])) \
            if traj_on else {}
        groups: dict[str, GroupOutput] = {}
        for g in self.cfg.groups:
            st = self._groups[g.name]
            i = st.idx
            valid = st.valid
            groups[g.name] = GroupOutput(
                name=g.name, joint_names=g.joints, mode=st.mode, reason=st.reason, valid=valid,
                positions=self.p[i] if valid else None,  # (indexing with an index array copies)
                velocities=self.v[i] if valid else None,
                accelerations=self.a[i] if valid else None,
                trajectory=traj.get(g.name) if valid else None, anchored=anchored[g.name], fault=st.fault)
        out = ControlOutput(stamp_s=now, joint_names=self.names, groups=groups,
                            committed_prefix=None if grid is None else self._prefix_from(
                                now, grid, run, None if refs is None or not n_pre else refs[0][1 + n_traj:]),
                            metrics=m.snapshot(),
                            plan_active=plan_reason is None, plan_reason=plan_reason)
        self._last_output = out
        return out

    def _resume_after_gap(self, now: float, gap: float) -> None:
        """Ticks stopped for ``gap`` s (> ``tick_gap_s``) while the robot went on with the last output: the
        command state becomes what the robot was told at ``now`` − one period -- the last short trajectory
        there (the piecewise cubic through its points and velocities, as a joint_trajectory_controller runs it;
        at rest at its end), or, with setpoints only, the last setpoint at rest. Counted in
        ``metrics.tick_gaps``."""
        m = self.metrics
        m.tick_gaps += 1
        m.max_tick_gap_s = max(m.max_tick_gap_s, gap)
        traj = None if self._traj_out is None else _trajectory_of(self._traj_out, self.names, self._col)
        if traj is None:  # setpoints only (or nothing published): every joint held its setpoint
            self.v = np.zeros(self.J)
        else:  # the joints of groups that published a trajectory are where it took them; the others held
            *curve, ran = traj
            p, v = _hermite_at(now - self.cfg.period_s, *curve)
            ran &= self.initialised
            self.p = np.where(ran, np.minimum(np.maximum(p, self.lim.lower), self.lim.upper), self.p)
            self.v = np.where(ran, np.minimum(np.maximum(v, self.lim.neg_vmax), self.lim.max_velocity), 0.0)
        self.a = np.zeros(self.J)

    def _refresh_initialised(self) -> None:
        """Cache which groups have a joint state for every joint (``_GroupState.valid``) and whether all do."""
        for st in self._groups.values():
            st.valid = bool(self.initialised[st.idx].all())
        self._all_initialised = bool(self.initialised.all())

    def _watch(self, now: float) -> None:
        """Tracking-error watchdog over the joints of enabled groups with fresh state (command = last output)."""
        watched = np.zeros(self.J, dtype=bool)
        for st in self._groups.values():
            if st.enabled and not st.pending_anchor and not self.estopped:
                watched[st.idx] = True
        watched &= self.initialised & (now - self.meas_stamp <= self.cfg.stale_state_s)
        tripped = self.watchdog.update(now, self.p, self.meas_p, watched)
        m = self.metrics
        m.tracking_error = self.watchdog.error
        if watched.any():
            m.max_tracking_error = max(m.max_tracking_error, float(self.watchdog.error.max()))
        if tripped.any():
            for st in self._groups.values():
                if tripped[st.idx].any():
                    st.enabled = False
                    st.pending_anchor = False
                    st.fault = "tracking_error"
                    m.tracking_faults += 1

    def _step(self, t: float, dt: float, run: np.ndarray, state=None, ref=None) -> StepResult:
        """One limiter step to ``t``; ``ref``: the reference (p, v) at ``t`` when already computed."""
        p, v, a = (self.p, self.v, self.a) if state is None else state
        if not run.any():
            p_ref, v_ref = p, np.zeros(self.J)
        elif ref is not None:
            p_ref, v_ref = ref
        else:
            p_ref, v_ref = self._reference(t, run)
        track = run & self.initialised
        p_in = p if self._all_initialised else np.where(self.initialised, p, 0.0)
        return limiter_step(p_in, v, a, dt, self.lim, track, p_ref, v_ref, self._brake_decel())

    def _trajectory_times(self, now: float) -> np.ndarray:
        """The times (s) of the trajectory's limiter steps: one period after ``now``, then every point period."""
        tp = self.cfg.trajectory_point_period_s
        n = max(1, int(round(self.cfg.trajectory_horizon_s / tp)))
        start = now + self.cfg.period_s
        ts = np.empty(n + 1)  # the first step is one period long, then point periods
        ts[0] = start
        ts[1:] = start + np.arange(1, n + 1) * tp
        return ts

    def _trajectory(self, now: float, run: np.ndarray,
                    refs: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Trajectory]:
        """The short trajectory; ``refs``: the reference (positions, velocities) at ``_trajectory_times(now)``
        when already evaluated."""
        period = self.cfg.period_s
        tp = self.cfg.trajectory_point_period_s
        ts = self._trajectory_times(now)
        n = ts.shape[0] - 1
        start = now + period  # (= ts[0])
        dts = np.full(n + 1, tp)
        dts[0] = period
        track = run & self.initialised
        if refs is not None:
            P_ref, V_ref = refs
        elif run.any():
            P_ref, V_ref = self._reference_many(ts, run)
        else:  # nothing tracks: every joint brakes (the references are not used)
            P_ref, V_ref = np.zeros((n + 1, self.J)), np.zeros((n + 1, self.J))
        # the limiter from the current command over the horizon (as n + 1 ``_step`` calls would do it)
        P, V = limiter_rollout(self.p if self._all_initialised else np.where(self.initialised, self.p, 0.0), self.v, self.a, dts, self.lim, track,
                               P_ref, V_ref, self._brake_decel(), self.initialised)
        P, V = P[1:], V[1:]
        P, V = braking_tail(P, V, tp, self.lim)
        tfs = tp * np.arange(1, P.shape[0] + 1)
        return {g.name: Trajectory(joint_names=g.joints, start_stamp_s=start, time_from_start_s=tfs.copy(),
                                   positions=P[:, self._groups[g.name].idx],  # (copies: index arrays)
                                   velocities=V[:, self._groups[g.name].idx])
                for g in self.cfg.groups}

    def committed_prefix(self, now_s: float, obs_stamp_s: float | None = None, duration_s: float | None = None,
                         run: np.ndarray | None = None) -> CommittedPrefix:
        """Planned positions on the grid ``obs_stamp_s + k·dt`` (dt: newest chunk's step period, else
        1/30 s) covering ``[obs_stamp_s, now_s + duration_s]`` (default ``rtc_prefix_s``).

        Running groups: the plan (with any ramp) clipped to the position limits; other groups: where the
        command comes to rest at the hold deceleration."""
        d = self.cfg.rtc_prefix_s if duration_s is None else float(duration_s)
        if run is None:
            run = np.zeros(self.J, dtype=bool)
            for st in self._groups.values():
                if st.running:
                    run[st.idx] = True
        return self._prefix_from(now_s, self._prefix_grid(now_s, obs_stamp_s, d), run)

    def _prefix_grid(self, now_s: float, obs_stamp_s: float | None, d: float
                     ) -> tuple[float, float, float, np.ndarray]:
        """(stamp, step, duration, times) of the committed prefix (see :meth:`committed_prefix`)."""
        stamp = now_s if obs_stamp_s is None else float(obs_stamp_s)
        step = self._newest_dt if self._newest_dt is not None else 1.0 / 30.0
        k = max(0, int(math.ceil((now_s + d - stamp) / step - 1e-9)))
        return stamp, step, d, stamp + step * np.arange(k)

    def _prefix_from(self, now_s: float, grid: tuple[float, float, float, np.ndarray], run: np.ndarray,
                     p_ref: np.ndarray | None = None) -> CommittedPrefix:
        """The committed prefix on ``grid`` (:meth:`_prefix_grid`); ``p_ref``: the plan's positions at
        ``max(times, now_s)`` when already evaluated (else evaluated here)."""
        stamp, step, d, times = grid
        k = times.shape[0]
        decel = self._brake_decel()
        with np.errstate(invalid="ignore"):
            rest = np.clip(self.p + self.v * np.abs(self.v) / (2.0 * decel), self.lim.lower, self.lim.upper)
        pos = np.tile(rest, (k, 1))
        if run.any() and self._source is not None and k > 0:
            if p_ref is None:
                p_ref, _ = self._reference_many(np.maximum(times, now_s), run, with_velocity=False)
            pos = np.where(run, np.clip(p_ref, self.lim.lower, self.lim.upper), rest)
        idx = (times - self._newest_stamp) / step if self._newest_dt is not None else np.full(k, np.nan)
        return CommittedPrefix(stamp_s=stamp, step_period_s=step, duration_s=d, times_s=times, positions=pos,
                               num_steps=k, newest_chunk_id=self._newest_id, newest_chunk_step=idx)


def _hermite_at(t: float, t0: float, p0: np.ndarray, v0: np.ndarray, times: np.ndarray, P: np.ndarray,
                V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions, velocities) [J] at ``t`` (s) of the piecewise cubic Hermite curve through (``t0``, ``p0``,
    ``v0``) and the points (``times[k]``, ``P[k]``, ``V[k]``); before ``t0`` its start, after the last point
    that point at rest."""
    if t <= t0:
        return p0.copy(), v0.copy()
    if t >= times[-1]:
        return P[-1].copy(), np.zeros_like(V[-1])
    k = int(np.searchsorted(times, t, side="right"))  # the segment ends at times[k]; k = 0: it starts at t0
    ta, pa, va = (t0, p0, v0) if k == 0 else (times[k - 1], P[k - 1], V[k - 1])
    tb, pb, vb = times[k], P[k], V[k]
    h = tb - ta
    u = (t - ta) / h
    u2, u3 = u * u, u * u * u
    pos = (2 * u3 - 3 * u2 + 1) * pa + (u3 - 2 * u2 + u) * h * va + (3 * u2 - 2 * u3) * pb + (u3 - u2) * h * vb
    vel = (6 * u2 - 6 * u) / h * (pa - pb) + (3 * u2 - 4 * u + 1) * va + (3 * u2 - 2 * u) * vb
    return pos, vel


def _trajectory_of(out: ControlOutput, names: Sequence[str], col: dict[str, int]
                   ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """The short trajectories ``out`` published (one per group, on the same times), as :func:`_hermite_at` reads
    them: (t0, p0, v0, times, P, V) over all joints' columns, and the mask [J] of the joints they cover (the
    other columns are 0). None when no group published one."""
    trajs = [g for g in out.groups.values() if g.valid and g.trajectory is not None]
    if not trajs:
        return None
    tr0 = trajs[0].trajectory
    n, J = len(tr0.time_from_start_s), len(names)
    p0, v0, P, V = np.zeros(J), np.zeros(J), np.zeros((n, J)), np.zeros((n, J))
    ran = np.zeros(J, dtype=bool)
    for g in trajs:
        idx = [col[j] for j in g.joint_names]
        p0[idx], v0[idx] = g.positions, g.velocities
        P[:, idx], V[:, idx] = g.trajectory.positions, g.trajectory.velocities
        ran[idx] = True
    return out.stamp_s, p0, v0, tr0.start_stamp_s + np.asarray(tr0.time_from_start_s), P, V, ran


def _finite_number(x: object) -> bool:
    """A finite real number. Booleans and text are not times, even when ``float()`` reads them (``"1.0"``): the
    callers compare the value with floats, which a string would make raise."""
    if isinstance(x, (bool, str, bytes)):
        return False
    try:
        return math.isfinite(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return False
