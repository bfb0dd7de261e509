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
_SG = np.array([[-1.0], [1.0]])  # row signs of the [2, J] braking-distance computation


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
        self.lim2 = np.stack([self.upper, -self.lower])  # [2, J]: the position limits as braking distances
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
    half_dt = 0.5 * dt  # (0.5·x)·dt = x·(0.5·dt) exactly: 0.5· only shifts the exponent
    with np.errstate(invalid="ignore", over="ignore"):
        if np.isfinite(p_ref).all() and np.isfinite(v_ref).all():
            bad = np.zeros(track.shape, dtype=bool)
            any_bad = False
        else:
            bad = track & ~(np.isfinite(p_ref) & np.isfinite(v_ref))
            any_bad = bool(bad.any())
        if any_bad:
            track = track & ~bad
        all_track, any_track = (False, False) if any_bad else (bool(track.all()), bool(track.any()))
        if any_track or any_bad:
            # (all_track: the np.where selections below are identities and are skipped)
            pr = p_ref if all_track else np.where(track, p_ref, p)
            vr = v_ref if all_track else np.where(track, v_ref, 0.0)
            # position reference outside the range: clamp it (counted)
            pr_c = np.minimum(np.maximum(pr, lim.lower), lim.upper)
            clamped_pos = (pr_c != pr) if all_track else track & (pr_c != pr)
            vr = np.where(clamped_pos, 0.0, vr)
            # desired next velocity (copysign for sign(e)·: e = 0 takes the linear branch, e0 > 0)
            e = pr_c - (p + (v + vr) * half_dt)
            ae = np.abs(e)
            corr = np.where(ae <= e0, k * e, np.copysign(np.sqrt(lim.two_accel_c * np.maximum(ae - half_e0, 0.0)), e))
            x_track = vr + corr
        else:  # nothing tracks: every joint brakes
            clamped_pos = track
            x_track = None
        if all_track:
            x_des = x_track
        else:
            x_brake = brake_velocity(v, np.minimum(np.where(bad, amax, brake_decel), amax), dt)
            x_des = x_brake if x_track is None else np.where(track, x_track, x_brake)
        # hard constraints; both position limits' braking constraints as one [2, J] computation (the same
        # arithmetic: row 0 is upper − p − v·dt/2, row 1 p − lower + v·dt/2; negations and operand order exact)
        r = np.sqrt(amax_dt2 + lim.two_amax * np.maximum(lim.lim2 + _SG * p + _SG * (v * half_dt), 0.0))
        hi = np.minimum(np.minimum(vmax, v + amax_dt), r[0] - amax_dt)
        lo = np.maximum(np.maximum(lim.neg_vmax, v - amax_dt), amax_dt - r[1])
        if lim.has_jerk:  # soft jerk limit (without any, the interval is unchanged)
            jd = lim.max_jerk * dt
            hi_j = np.minimum(hi, v + (a_prev + jd) * dt)
            lo_j = np.maximum(lo, v + (a_prev - jd) * dt)
            use_j = lo_j <= hi_j
            hi = np.where(use_j, hi_j, hi)
            lo = np.where(use_j, lo_j, lo)
        x = np.minimum(np.maximum(x_des, lo), hi)
        ok = lo <= hi
        if not ok.all():  # (otherwise x is inside [lo, hi] ⊆ [−v_max, v_max] already)
            x = np.where(ok, x, brake_velocity(v, amax, dt))
            x = np.minimum(np.maximum(x, lim.neg_vmax), vmax)
        changed = x != x_des
        clamped_vel = (np.abs(x_des) > vmax) & changed
        clamped_acc = changed & ~clamped_vel
        if not all_track:
            clamped_vel &= track
            clamped_acc &= track
        p_new = np.minimum(np.maximum(p + (v + x) * half_dt, lim.lower), lim.upper)
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
    dp = 0.5 * (np.concatenate([v0[None, :], vt[:-1]]) + vt) * tp
    pt = np.minimum(np.maximum(P[-1] + np.cumsum(dp, axis=0), lim.lower), lim.upper)
    return np.concatenate([P, pt]), np.concatenate([V, vt])


def limiter_rollout(p: np.ndarray, v: np.ndarray, a_prev: np.ndarray, dts: np.ndarray, lim: LimitArrays,
                    track: np.ndarray, P_ref: np.ndarray, V_ref: np.ndarray, brake_decel: np.ndarray,
                    initialised: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """K consecutive :func:`limiter_step` calls (tick lengths ``dts`` [K] s, references ``P_ref``/``V_ref``
    [K, J] at the end of each, the same ``track`` mask throughout), the state carried from one to the next;
    returns the positions and velocities after each step ([K, J] each), element for element what the K calls
    return. ``initialised`` [J]: joints outside it start every step from position 0 (as the controller feeds
    them). What does not depend on the state (the reference checks and clamps, the per-dt constants, the
    braking deceleration) is done once for all K steps and the clamp counters are not kept: this is the
    limiter for the published trajectory, where only the states are needed."""
    K, J = P_ref.shape
    amax, vmax = lim.max_acceleration, lim.max_velocity
    with np.errstate(invalid="ignore", over="ignore"):
        bad = track & ~(np.isfinite(P_ref) & np.isfinite(V_ref))
    init_all = initialised is None or bool(initialised.all())
    if lim.has_jerk or bad.any():
        P, V = np.empty((K, J)), np.empty((K, J))  # the jerk limit needs the accelerations: step by step
        a = a_prev
        for i in range(K):
            p_in = p if init_all else np.where(initialised, p, 0.0)
            r = limiter_step(p_in, v, a, float(dts[i]), lim, track, P_ref[i], V_ref[i], brake_decel)
            p, v, a = r.p, r.v, r.a
            P[i], V[i] = p, v
        return P, V
    all_track, any_track = bool(track.all()), bool(track.any())
    with np.errstate(invalid="ignore", over="ignore"):
        if any_track:  # untracked joints' references are never used (their velocity is the braking one)
            PR = P_ref if all_track else np.where(track, P_ref, 0.0)
            VR = V_ref if all_track else np.where(track, V_ref, 0.0)
            PRc = np.minimum(np.maximum(PR, lim.lower), lim.upper)
            VR = np.where(track & (PRc != PR), 0.0, VR)
        decel = None if all_track else np.minimum(brake_decel, amax)
        Ps, Vs = [], []
        # both position limits' braking constraints as one [2, J] computation (the same arithmetic: row 0 is
        # upper − p − v·dt/2, row 1 p − lower + v·dt/2; negations and operand order are exact)
        for i in range(K):
            dt = float(dts[i])
            half_dt = 0.5 * dt  # (0.5·x)·dt = x·(0.5·dt): 0.5· only shifts the exponent
            amax_dt, amax_dt2, k, e0, half_e0 = lim.per_dt(dt)
            if not init_all:
                p = np.where(initialised, p, 0.0)
            if any_track:
                vr = VR[i]
                e = PRc[i] - (p + (v + vr) * half_dt)
                ae = np.abs(e)
                # (copysign for sign(e)·: e = 0 takes the linear branch, e0 > 0)
                corr = np.where(ae <= e0, k * e,
                                np.copysign(np.sqrt(lim.two_accel_c * np.maximum(ae - half_e0, 0.0)), e))
                x_des = vr + corr
                if not all_track:
                    x_des = np.where(track, x_des, brake_velocity(v, decel, dt))
            else:
                x_des = brake_velocity(v, decel, dt)
            r = np.sqrt(amax_dt2 + lim.two_amax * np.maximum(lim.lim2 + _SG * p + _SG * (v * half_dt), 0.0))
            hi = np.minimum(np.minimum(vmax, v + amax_dt), r[0] - amax_dt)
            lo = np.maximum(np.maximum(lim.neg_vmax, v - amax_dt), amax_dt - r[1])
            x = np.minimum(np.maximum(x_des, lo), hi)
            ok = lo <= hi
            if not ok.all():  # (otherwise x is inside [lo, hi] ⊆ [−v_max, v_max] already)
                x = np.where(ok, x, brake_velocity(v, amax, dt))
                x = np.minimum(np.maximum(x, lim.neg_vmax), vmax)
            p = np.minimum(np.maximum(p + (v + x) * half_dt, lim.lower), lim.upper)
            v = x
            Ps.append(p)
            Vs.append(v)
    return np.array(Ps), np.array(Vs)
