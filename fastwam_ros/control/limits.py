"""Per-joint limiter: whatever the reference, the commanded state respects position, velocity and
acceleration limits.

The limiter owns the commanded state (position p, velocity v) and advances it one tick of length dt with a
constant acceleration a per tick (exact integration: p' = p + v·dt + a·dt²/2 = p + (v + v')·dt/2). The next
velocity v' is chosen as close as possible to a *desired* velocity inside the feasible interval

    |v'| ≤ v_max,   |v' − v| ≤ a_max·dt,   and the braking constraint of each position limit.

Braking constraint (upper limit U; the lower one is symmetric): the state must always be able to stop
before U at full deceleration. With D(v) = v²/(2·a_max) + v·dt/2 — an upper bound on the stopping distance
of this discrete scheme — the invariant ``U − p ≥ D(v)`` is kept: solving it for v' gives

    v' ≤ −a_max·dt + sqrt(a_max²·dt² + 2·a_max·(U − p − v·dt/2)).

Full braking always satisfies all constraints, so the feasible interval is never empty (in exact
arithmetic; if rounding makes it so, full braking is used). Hence the output never exceeds a limit,
whatever the reference does (NaN, inf, jumps): non-finite references make the joint hold.

Desired velocity when tracking a reference (p_ref, v_ref at the tick's time): v_ref + c(e), with e the
position error predicted for the end of the tick and c a "square-root controller": linear (gain g/dt,
error × g per tick, no overshoot) near the reference, sqrt(2·a_c·|e|) far from it, so a jump in the
reference becomes a time-optimal-ish ramp (accelerate, cruise at v_max, brake) instead of a step.
Jerk (optional, soft): the acceleration change per tick is bounded by max_jerk·dt when that keeps the
hard constraints satisfiable, otherwise the hard constraints win.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .config import JointLimits

TRACK_GAIN = 0.5  # fraction of the predicted position error removed per tick in the linear region
SQRT_ACCEL_FRACTION = 0.5  # a_c = fraction of a_max used by the square-root correction
CLAMP_KINDS = ("position", "velocity", "acceleration", "non_finite")


@dataclass
class LimitArrays:
    """Limits as arrays over joints (column order of the controller)."""

    lower: np.ndarray
    upper: np.ndarray
    max_velocity: np.ndarray
    max_acceleration: np.ndarray
    max_jerk: np.ndarray  # inf where none

    def __post_init__(self) -> None:
        # per-limits constants of limiter_step (same arithmetic as written there, computed once)
        self.has_jerk = bool(np.isfinite(self.max_jerk).any())
        self.accel_c = SQRT_ACCEL_FRACTION * self.max_acceleration
        self.two_accel_c = 2.0 * self.accel_c
        self.two_amax = 2.0 * self.max_acceleration
        self.neg_vmax = -self.max_velocity
        self._per_dt: dict[float, tuple[np.ndarray, ...]] = {}

    def per_dt(self, dt: float) -> tuple[np.ndarray, ...]:
        """(amax·dt, (amax·dt)², k = TRACK_GAIN/dt, e0 = a_c/k², 0.5·e0) for a tick of ``dt`` s; the few
        fixed tick lengths (control period, trajectory point period) are kept (at most 8)."""
        c = self._per_dt.get(dt)
        if c is None:
            amax_dt = self.max_acceleration * dt
            k = TRACK_GAIN / dt
            e0 = self.accel_c / (k * k)
            c = (amax_dt, amax_dt ** 2, k, e0, 0.5 * e0)
            if len(self._per_dt) >= 8:
                self._per_dt.clear()
            self._per_dt[dt] = c
        return c

    @classmethod
    def from_limits(cls, names: Sequence[str], limits: Mapping[str, JointLimits]) -> LimitArrays:
        ls = [limits[n] for n in names]
        return cls(
            lower=np.array([x.lower for x in ls], dtype=np.float64),
            upper=np.array([x.upper for x in ls], dtype=np.float64),
            max_velocity=np.array([x.max_velocity for x in ls], dtype=np.float64),
            max_acceleration=np.array([x.max_acceleration for x in ls], dtype=np.float64),
            max_jerk=np.array([np.inf if x.max_jerk is None else x.max_jerk for x in ls], dtype=np.float64),
        )


@dataclass
class StepResult:
    """One limiter step: new state and which joints had something clamped (bool arrays [J])."""

    p: np.ndarray
    v: np.ndarray
    a: np.ndarray
    clamped_position: np.ndarray
    clamped_velocity: np.ndarray
    clamped_acceleration: np.ndarray
    non_finite: np.ndarray


def brake_velocity(v: np.ndarray, decel: np.ndarray, dt: float) -> np.ndarray:
    """Velocity after one tick of braking at ``decel`` (stops exactly at 0, never reverses)."""
    return np.sign(v) * np.maximum(np.abs(v) - decel * dt, 0.0)


def limiter_step(
    p: np.ndarray,
    v: np.ndarray,
    a_prev: np.ndarray,
    dt: float,
    lim: LimitArrays,
    track: np.ndarray,
    p_ref: np.ndarray,
    v_ref: np.ndarray,
    brake_decel: np.ndarray,
) -> StepResult:
    """Advance the commanded state (p, v) by ``dt`` seconds.

    track[j] True: follow (p_ref[j], v_ref[j]) (values at the end of the tick); False: brake at
    ``brake_decel[j]`` (≤ max acceleration) to a stop, then hold. Inputs p, v must come from this limiter
    (or be a rest state inside the range).
    """
    amax, vmax = lim.max_acceleration, lim.max_velocity
    amax_dt, amax_dt2, k, e0, half_e0 = lim.per_dt(dt)
    with np.errstate(invalid="ignore", over="ignore"):
        bad = track & ~(np.isfinite(p_ref) & np.isfinite(v_ref))
        any_bad = bad.any()
        if any_bad:
            track = track & ~bad
        all_track, any_track = (False, False) if any_bad else (bool(track.all()), bool(track.any()))
        if any_track or any_bad:
            # (all_track: the np.where selections below are identities and are skipped)
            pr = p_ref if all_track else np.where(track, p_ref, p)
            vr = v_ref if all_track else np.where(track, v_ref, 0.0)
            # position reference outside the range: clamp it (counted)
            pr_c = np.minimum(np.maximum(pr, lim.lower), lim.upper)
            clamped_pos = track & (pr_c != pr)
            vr = np.where(clamped_pos, 0.0, vr)
            # desired next velocity
            e = pr_c - (p + 0.5 * (v + vr) * dt)
            ae = np.abs(e)
            corr = np.where(ae <= e0, k * e, np.sign(e) * np.sqrt(lim.two_accel_c * np.maximum(ae - half_e0, 0.0)))
            x_track = vr + corr
        else:  # nothing tracks: every joint brakes
            clamped_pos = track
            x_track = None
        if all_track:
            x_des = x_track
        else:
            x_brake = brake_velocity(v, np.minimum(np.where(bad, amax, brake_decel), amax), dt)
            x_des = x_brake if x_track is None else np.where(track, x_track, x_brake)
        # hard constraints
        half_v_dt = 0.5 * v * dt
        hi_pos = -amax_dt + np.sqrt(amax_dt2 + lim.two_amax * np.maximum(lim.upper - p - half_v_dt, 0.0))
        lo_pos = amax_dt - np.sqrt(amax_dt2 + lim.two_amax * np.maximum(p - lim.lower + half_v_dt, 0.0))
        hi = np.minimum(np.minimum(vmax, v + amax_dt), hi_pos)
        lo = np.maximum(np.maximum(lim.neg_vmax, v - amax_dt), lo_pos)
        if lim.has_jerk:  # soft jerk limit (without any, the interval is unchanged)
            jd = lim.max_jerk * dt
            hi_j = np.minimum(hi, v + (a_prev + jd) * dt)
            lo_j = np.maximum(lo, v + (a_prev - jd) * dt)
            use_j = lo_j <= hi_j
            hi = np.where(use_j, hi_j, hi)
            lo = np.where(use_j, lo_j, lo)
        x = np.minimum(np.maximum(x_des, lo), hi)
        empty = ~(lo <= hi)
        if empty.any():
            x = np.where(empty, brake_velocity(v, amax, dt), x)
        x = np.minimum(np.maximum(x, lim.neg_vmax), vmax)
        clamped_vel = track & (np.abs(x_des) > vmax) & (x != x_des)
        clamped_acc = track & (x != x_des) & ~clamped_vel
        p_new = np.minimum(np.maximum(p + 0.5 * (v + x) * dt, lim.lower), lim.upper)
        a = np.minimum(np.maximum((x - v) / dt, -amax), amax)
    return StepResult(p=p_new, v=x, a=a, clamped_position=clamped_pos, clamped_velocity=clamped_vel,
                      clamped_acceleration=clamped_acc, non_finite=bad)


def braking_tail(P: np.ndarray, V: np.ndarray, tp: float, lim: LimitArrays) -> tuple[np.ndarray, np.ndarray]:
    """Extend a trajectory ([N, J] positions/velocities at spacing ``tp``) by braking every joint at its full
    acceleration limit to velocity 0 (closed form: |v| falls by a_max·tp per point, positions integrate the
    velocity exactly, clipped to the position range). The last point's velocity is exactly 0."""
    v0 = V[-1]
    k = int(np.max(np.ceil(np.abs(v0) / (lim.max_acceleration * tp)))) if np.any(v0 != 0.0) else 0
    if k == 0:
        return P, V
    steps = np.arange(1, k + 1)[:, None]
    vt = brake_velocity(v0[None, :], lim.max_acceleration[None, :] * steps, tp)
    vt[-1] = 0.0  # rounding of the point count can leave ~1e-17; the tail ends at rest by construction
    dp = 0.5 * (np.vstack([v0[None, :], vt[:-1]]) + vt) * tp
    pt = np.clip(P[-1] + np.cumsum(dp, axis=0), lim.lower, lim.upper)
    return np.vstack([P, pt]), np.vstack([V, vt])
