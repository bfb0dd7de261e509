"""Each rule of the limiter (control/limits.py), pinned by what the robot sees: commanded positions sampled at
the control period, differentiated by finite differences, never exceed a velocity or acceleration limit.

These are small deterministic scenarios (milliseconds each); the mutation run (scripts/mutation_safety.sh)
uses them to show that removing any one rule makes a test fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastwam_ros.control.config import JointLimits
from fastwam_ros.control.limits import LimitArrays, brake_velocity, braking_tail, limiter_step
from fastwam_ros.control.stress import finite_difference_motion


def _lim(lower=-1.0, upper=1.0, vmax=2.0, amax=5.0, jerk=None, n=1) -> LimitArrays:
    names = [f"j{i}" for i in range(n)]
    jl = JointLimits(lower=lower, upper=upper, max_velocity=vmax, max_acceleration=amax, max_jerk=jerk)
    return LimitArrays.from_limits(names, dict.fromkeys(names, jl))


def _run(lim, p0, v0, p_ref, dt, n, v_ref=0.0, track=True, brake=None):
    """n limiter steps from (p0, v0) towards a constant reference; returns times, P, V, A [n+1, J]."""
    J = lim.lower.shape[0]
    p, v, a = np.full(J, p0, float), np.full(J, v0, float), np.zeros(J)
    P, V, A = [p], [v], [a]
    tr = np.full(J, track)
    decel = lim.max_acceleration if brake is None else np.full(J, brake)
    for _ in range(n):
        r = limiter_step(p, v, a, dt, lim, tr, np.full(J, p_ref, float), np.full(J, v_ref, float), decel)
        p, v, a = r.p, r.v, r.a
        P.append(p)
        V.append(v)
        A.append(a)
    return np.arange(n + 1) * dt, np.array(P), np.array(V), np.array(A)


def _assert_seen_within_limits(t, P, lim):
    vel, acc, slack = finite_difference_motion(P, t)
    assert np.all(P >= lim.lower - 1e-12) and np.all(P <= lim.upper + 1e-12)
    assert np.all(np.abs(vel) <= lim.max_velocity * (1 + 1e-9) + 1e-12), np.abs(vel).max()
    assert np.all(np.abs(acc) <= lim.max_acceleration * (1 + 1e-9) + slack), np.abs(acc).max()


def _moving_reference(lim, p0, v0, stop_at, dt, n):
    """A reference moving at v0 from p0 that stops dead at ``stop_at`` (its velocity jumps to 0 there)."""
    J = lim.lower.shape[0]
    p, v, a = np.full(J, p0, float), np.full(J, v0, float), np.zeros(J)
    P, V = [p], [v]
    for k in range(1, n + 1):
        ref = p0 + v0 * k * dt
        vr = v0
        if (ref - stop_at) * np.sign(v0) >= 0:
            ref, vr = stop_at, 0.0
        r = limiter_step(p, v, a, dt, lim, np.ones(J, bool), np.full(J, ref), np.full(J, vr),
                         lim.max_acceleration)
        p, v, a = r.p, r.v, r.a
        P.append(p)
        V.append(v)
    return np.arange(n + 1) * dt, np.array(P), np.array(V)


@pytest.mark.parametrize("dt", [0.002, 0.01, 0.02])
@pytest.mark.parametrize("side", [1.0, -1.0])
def test_a_holding_joint_heading_for_its_position_limit_brakes_in_time(dt, side):
    """Hold (gentle deceleration, 0.5 of a_max ... here 0.3 rad/s²) at full speed towards a limit it cannot
    stop before at that rate: the position-braking bound brakes harder, early enough to stop at the limit
    within a_max; the robot never sees a one-tick stop (v/dt) at the limit."""
    lim = _lim(vmax=2.0, amax=5.0)
    t, P, V, _ = _run(lim, p0=0.2 * side, v0=2.0 * side, p_ref=np.nan, dt=dt, n=int(1.5 / dt), track=False,
                      brake=0.3)
    _assert_seen_within_limits(t, P, lim)
    limit = lim.upper[0] if side > 0 else lim.lower[0]
    assert abs(P[-1, 0] - limit) < 0.02 and abs(V[-1, 0]) < 1e-9


@pytest.mark.parametrize("dt", [0.002, 0.01, 0.02])
@pytest.mark.parametrize("side", [1.0, -1.0])
def test_a_reference_that_stops_dead_at_the_limit_is_followed_within_limits(dt, side):
    """The reference runs at max velocity into a point just inside the limit and stops dead: the command
    cannot follow the stop within a_max, so only the braking bound keeps it from running into the limit."""
    lim = _lim(vmax=2.0, amax=5.0)
    t, P, V = _moving_reference(lim, p0=-0.5 * side, v0=2.0 * side, stop_at=0.999 * side, dt=dt,
                                n=int(2.0 / dt))
    _assert_seen_within_limits(t, P, lim)
    assert abs(P[-1, 0] - 0.999 * side) < 1e-3


@pytest.mark.parametrize("dt", [0.002, 0.01, 0.02])
@pytest.mark.parametrize("side", [1.0, -1.0])
def test_a_joint_driven_into_its_position_limit_brakes_in_time(dt, side):
    """Cruising at max velocity towards a limit with the reference far beyond it (clamped to the limit): the
    joint stops at the limit within the acceleration limit, not in one tick."""
    lim = _lim(vmax=2.0, amax=5.0)
    t, P, V, _ = _run(lim, p0=-0.5 * side, v0=2.0 * side, p_ref=50.0 * side, dt=dt, n=int(2.0 / dt))
    _assert_seen_within_limits(t, P, lim)
    limit = lim.upper[0] if side > 0 else lim.lower[0]
    assert abs(P[-1, 0] - limit) < 1e-3  # it does get there (the bound is not over-cautious) ...
    assert abs(V[-1, 0]) < 1e-9  # ... and rests there
    # braking started before the limit: the velocity decreases over the last 0.3 s before arrival
    arrive = int(np.argmax(np.abs(P[:, 0] - limit) < 1e-3))
    assert abs(V[arrive - int(0.3 / dt), 0]) > abs(V[arrive - 1, 0])


def test_both_position_bounds_apply_to_their_own_side_only():
    """Near the upper limit moving down (away from it) the joint may still accelerate at full rate, and near the
    lower limit moving up likewise: each braking bound constrains only motion towards its limit."""
    lim = _lim(vmax=2.0, amax=5.0)
    dt = 0.01
    for p0, ref in ((0.999, -1.0), (-0.999, 1.0)):
        t, P, V, _ = _run(lim, p0=p0, v0=0.0, p_ref=ref, dt=dt, n=5)
        assert np.allclose(np.abs(V[1:, 0]), 5.0 * dt * np.arange(1, 6)), V[:, 0]
        _assert_seen_within_limits(t, P, lim)


def test_braking_bound_formula_keeps_the_stopping_distance_invariant():
    """After every step the state can still stop before the limit: U − p ≥ v²/(2·a_max) + v·dt/2."""
    lim = _lim(lower=-0.3, upper=0.3, vmax=3.0, amax=4.0)
    for dt in (0.004, 0.01, 0.03):
        t, P, V, _ = _run(lim, p0=0.0, v0=0.0, p_ref=10.0, dt=dt, n=int(1.5 / dt))
        d = V[:, 0] ** 2 / (2 * 4.0) + V[:, 0] * dt / 2
        assert np.all(0.3 - P[:, 0] >= d - 1e-9)
        assert P[:, 0].max() > 0.29  # and it gets close


def test_velocity_and_acceleration_limits_hold_on_a_jump_and_the_ramp_is_time_optimal_ish():
    lim = _lim(lower=-10, upper=10, vmax=1.5, amax=3.0)
    dt = 0.01
    t, P, V, A = _run(lim, p0=0.0, v0=0.0, p_ref=4.0, dt=dt, n=400)
    _assert_seen_within_limits(t, P, lim)
    assert np.isclose(np.abs(V[:, 0]).max(), 1.5)  # cruises at v_max
    assert np.isclose(np.abs(A[1:, 0]).max(), 3.0)  # accelerates at a_max
    assert abs(P[-1, 0] - 4.0) < 1e-6 and abs(V[-1, 0]) < 1e-6  # settles on the target
    # without overshoot
    assert P[:, 0].max() <= 4.0 + 1e-9
    # time-optimal-ish: a bang-coast-bang profile needs 4/1.5 + 1.5/3 = 3.17 s; allow 25 % for the tail
    assert np.argmax(np.abs(P[:, 0] - 4.0) < 1e-3) * dt < 1.25 * (4.0 / 1.5 + 1.5 / 3.0)


def test_linear_region_removes_half_the_predicted_error_per_tick():
    """Small errors: v' = v_ref + (TRACK_GAIN/dt)·e with e the error predicted at the end of the tick."""
    lim = _lim(lower=-10, upper=10, vmax=100.0, amax=1e6)
    dt = 0.01
    e = 1e-6
    r = limiter_step(np.zeros(1), np.zeros(1), np.zeros(1), dt, lim, np.ones(1, bool), np.full(1, e),
                     np.zeros(1), np.full(1, 1e6))
    assert np.isclose(r.v[0], 0.5 * e / dt, rtol=1e-12)
    assert np.isclose(r.p[0], 0.5 * r.v[0] * dt, rtol=1e-12)
    assert np.isclose(r.a[0], r.v[0] / dt, rtol=1e-12)
    assert not (r.clamped_velocity[0] or r.clamped_acceleration[0] or r.clamped_position[0])


def test_square_root_region_and_its_continuity():
    """Far from the reference the correction is sqrt(2·a_c·(|e| − e0/2)), a_c = a_max/2; it meets the linear
    region at |e| = e0 = a_c/k² (k = TRACK_GAIN/dt) with the same value."""
    amax, dt = 4.0, 0.01
    lim = _lim(lower=-100, upper=100, vmax=1e6, amax=amax)
    lim_big = _lim(lower=-100, upper=100, vmax=1e6, amax=1e9)  # acceleration not binding
    k = 0.5 / dt
    e0 = 0.5 * amax / k ** 2
    for e in (3 * e0, 50 * e0, -7 * e0):
        lim_big.accel_c = lim.accel_c
        lim_big.two_accel_c = lim.two_accel_c
        lim_big._per_dt = {dt: (1e9 * dt, (1e9 * dt) ** 2, k, e0, 0.5 * e0)}
        r = limiter_step(np.zeros(1), np.zeros(1), np.zeros(1), dt, lim_big, np.ones(1, bool), np.full(1, e),
                         np.zeros(1), np.full(1, 1.0))
        assert np.isclose(r.v[0], np.sign(e) * np.sqrt(2 * 0.5 * amax * (abs(e) - 0.5 * e0)), rtol=1e-12)
    # continuity at e0: linear k·e0 == sqrt(2·a_c·e0/2)
    assert np.isclose(k * e0, np.sqrt(2 * 0.5 * amax * 0.5 * e0))


def test_reference_velocity_is_fed_forward():
    """Tracking a reference that moves at constant velocity: the command moves with it, no lag in steady state."""
    lim = _lim(lower=-100, upper=100, vmax=2.0, amax=10.0)
    dt = 0.01
    p, v, a = np.zeros(1), np.full(1, 1.0), np.zeros(1)
    for k in range(1, 200):
        r = limiter_step(p, v, a, dt, lim, np.ones(1, bool), np.full(1, 1.0 * k * dt), np.ones(1), np.ones(1))
        p, v, a = r.p, r.v, r.a
    assert np.isclose(p[0], 199 * dt, atol=1e-9) and np.isclose(v[0], 1.0, atol=1e-9)


def test_reference_outside_the_range_is_clamped_counted_and_its_velocity_dropped():
    lim = _lim(lower=-1, upper=1, vmax=2.0, amax=5.0)
    r = limiter_step(np.full(1, 0.999999), np.zeros(1), np.zeros(1), 0.01, lim, np.ones(1, bool),
                     np.full(1, 3.0), np.full(1, 2.0), np.full(1, 5.0))
    assert r.clamped_position[0]
    assert r.p[0] <= 1.0 and r.v[0] < 2.0 * 0.5  # no feed-forward of the clamped reference's velocity
    r2 = limiter_step(np.zeros(1), np.zeros(1), np.zeros(1), 0.01, lim, np.ones(1, bool),
                      np.full(1, 0.5), np.zeros(1), np.full(1, 5.0))
    assert not r2.clamped_position[0]


def test_non_finite_references_brake_at_full_deceleration_and_are_counted():
    lim = _lim(lower=-10, upper=10, vmax=2.0, amax=5.0, n=3)
    p, v, a = np.zeros(3), np.full(3, 1.0), np.zeros(3)
    refs = np.array([np.nan, np.inf, 0.5])
    vrefs = np.array([0.0, 0.0, np.nan])
    r = limiter_step(p, v, a, 0.01, lim, np.ones(3, bool), refs, vrefs, np.full(3, 0.1))
    assert r.non_finite.tolist() == [True, True, True]
    assert np.allclose(r.v, 1.0 - 5.0 * 0.01)  # full a_max, not the (gentler) hold deceleration
    assert np.all(np.isfinite(r.p))
    # a tracked finite joint next to a non-finite one still tracks
    r = limiter_step(np.zeros(2), np.zeros(2), np.zeros(2), 0.01, _lim(n=2), np.ones(2, bool),
                     np.array([np.nan, 0.5]), np.zeros(2), np.full(2, 5.0))
    assert r.non_finite.tolist() == [True, False] and r.v[1] > 0 and r.v[0] == 0.0


@pytest.mark.parametrize("v0", [1.7, -1.7])
def test_hold_brakes_at_the_hold_deceleration_then_rests(v0):
    lim = _lim(lower=-100, upper=100, vmax=2.0, amax=5.0)
    dt = 0.01
    t, P, V, A = _run(lim, p0=0.0, v0=v0, p_ref=np.nan, dt=dt, n=200, track=False, brake=2.0)
    _assert_seen_within_limits(t, P, lim)
    assert np.allclose(np.abs(V[1:10, 0]), 1.7 - 2.0 * dt * np.arange(1, 10))
    assert V[-1, 0] == 0.0 and np.all(V[:, 0] * np.sign(v0) >= 0)  # never reverses
    assert np.isclose(abs(P[-1, 0]), 1.7 ** 2 / (2 * 2.0) + 1.7 * dt / 2, rtol=0.02)
    # a hold deceleration above a_max is capped at a_max
    t, P, V, A = _run(lim, p0=0.0, v0=v0, p_ref=np.nan, dt=dt, n=3, track=False, brake=50.0)
    assert np.allclose(np.abs(V[1:, 0]), 1.7 - 5.0 * dt * np.arange(1, 4))


def test_mixed_tracking_and_braking_joints_in_one_step():
    lim = _lim(lower=-10, upper=10, vmax=2.0, amax=5.0, n=2)
    r = limiter_step(np.zeros(2), np.full(2, 1.0), np.zeros(2), 0.01, lim, np.array([True, False]),
                     np.array([5.0, 5.0]), np.zeros(2), np.full(2, 1.0))
    assert np.isclose(r.v[0], 1.05)  # tracking: accelerates towards the reference
    assert np.isclose(r.v[1], 0.99)  # braking at 1.0 rad/s²
    assert not r.clamped_position[1] and not r.clamped_velocity[1] and not r.clamped_acceleration[1]


def test_clamp_flags_name_the_binding_limit():
    lim = _lim(lower=-10, upper=10, vmax=1.0, amax=5.0, n=2)
    # joint 0 at v_max wants to go faster: velocity clamp; joint 1 at rest wants 0.13 rad/s at once (within
    # v_max): acceleration clamp
    r = limiter_step(np.zeros(2), np.array([1.0, 0.0]), np.zeros(2), 0.01, lim, np.ones(2, bool),
                     np.array([5.0, 0.004]), np.zeros(2), np.full(2, 5.0))
    assert r.clamped_velocity.tolist() == [True, False]
    assert r.clamped_acceleration.tolist() == [False, True]
    assert r.v[0] == 1.0 and np.isclose(r.v[1], 0.05)
    assert np.isclose(r.a[1], 5.0)


def test_soft_jerk_limit_bounds_the_acceleration_change_when_feasible():
    lim = _lim(lower=-100, upper=100, vmax=5.0, amax=10.0, jerk=100.0)
    dt = 0.01
    t, P, V, A = _run(lim, p0=0.0, v0=0.0, p_ref=5.0, dt=dt, n=300)
    _assert_seen_within_limits(t, P, lim)
    dA = np.abs(np.diff(A[:, 0]))
    assert dA[:5].max() <= 100.0 * dt + 1e-9  # the start ramps the acceleration up at the jerk limit
    assert np.isclose(A[1, 0], 1.0)
    no_jerk = _lim(lower=-100, upper=100, vmax=5.0, amax=10.0)
    _, _, _, A0 = _run(no_jerk, p0=0.0, v0=0.0, p_ref=5.0, dt=dt, n=3)
    assert np.isclose(A0[1, 0], 10.0)  # without a jerk limit: full acceleration at once
    # when the jerk bound conflicts with the hard constraints, the hard constraints win (braking at a limit)
    near = _lim(lower=-1, upper=1, vmax=5.0, amax=10.0, jerk=1.0)
    t, P, V, A = _run(near, p0=0.0, v0=3.0, p_ref=50.0, dt=dt, n=200)
    _assert_seen_within_limits(t, P, near)


def test_rounding_guard_falls_back_to_full_braking():
    """A state that cannot keep every constraint (here: velocity beyond what the limit allows, an input the
    limiter itself never produces) brakes at a_max instead of picking an arbitrary bound."""
    lim = _lim(lower=-1, upper=1, vmax=2.0, amax=5.0)
    r = limiter_step(np.full(1, 0.99), np.full(1, 1.9), np.zeros(1), 0.01, lim, np.ones(1, bool),
                     np.full(1, 1.0), np.zeros(1), np.full(1, 5.0))
    assert np.isclose(r.v[0], 1.9 - 5.0 * 0.01)
    assert r.p[0] <= 1.0
    r = limiter_step(np.full(1, -0.99), np.full(1, -1.9), np.zeros(1), 0.01, lim, np.ones(1, bool),
                     np.full(1, -1.0), np.zeros(1), np.full(1, 5.0))
    assert np.isclose(r.v[0], -1.9 + 5.0 * 0.01)
    assert r.p[0] >= -1.0


def test_brake_velocity_stops_exactly_and_never_reverses():
    v = np.array([1.0, -1.0, 0.01, -0.01, 0.0])
    out = brake_velocity(v, np.full(5, 2.0), 0.1)
    assert out.tolist() == [0.8, -0.8, 0.0, 0.0, 0.0]


def test_braking_tail_ends_at_rest_and_respects_the_limits_it_is_given():
    lim = _lim(lower=-1, upper=1, vmax=2.0, amax=4.0, n=2)
    tp = 0.02
    P = np.array([[0.0, 0.0], [0.03, -0.01]])
    V = np.array([[1.5, -0.5], [1.5, -0.5]])
    P2, V2 = braking_tail(P, V, tp, lim)
    k = int(np.ceil(1.5 / (4.0 * tp)))
    assert P2.shape == (2 + k, 2) and V2[-1].tolist() == [0.0, 0.0]
    assert np.allclose(V2[2:, 0], np.maximum(1.5 - 4.0 * tp * np.arange(1, k + 1), 0.0))
    assert np.allclose(V2[2:, 1], np.minimum(-0.5 + 4.0 * tp * np.arange(1, k + 1), 0.0))
    t = tp * np.arange(P2.shape[0])
    _assert_seen_within_limits(t[1:], P2[1:], lim)
    assert np.allclose(np.diff(P2[1:], axis=0), 0.5 * (V2[1:-1] + V2[2:]) * tp)
    # a trajectory already at rest gets no tail
    Z = np.zeros_like(V)
    P3, V3 = braking_tail(P, Z, tp, lim)
    assert P3 is P and V3 is Z


def test_per_dt_constants_are_cached_per_tick_length_and_bounded():
    lim = _lim(amax=5.0)
    c1 = lim.per_dt(0.01)
    assert np.allclose(c1[0], 0.05) and np.allclose(c1[1], 0.0025) and c1[2] == 50.0
    assert np.allclose(c1[3], 2.5 / 2500.0) and np.allclose(c1[4], 0.5 * 2.5 / 2500.0)
    assert lim.per_dt(0.01) is c1
    for k in range(20):
        lim.per_dt(0.001 * (k + 1))
    assert len(lim._per_dt) <= 8
    assert np.allclose(lim.per_dt(0.02)[0], 0.1)


def test_braking_tail_clips_to_the_range_and_stops_a_unit_velocity():
    """The tail's positions are clipped to [lower, upper] even for a state that could not stop in time (a
    guard: limiter states always can), and a velocity of exactly 1 (any non-zero) gets a tail."""
    lim = _lim(lower=-1, upper=1, vmax=2.0, amax=4.0, n=2)
    P = np.array([[0.95, -0.95]])
    V = np.array([[1.9, -1.9]])
    P2, V2 = braking_tail(P, V, 0.02, lim)
    assert P2[:, 0].max() == 1.0 and P2[:, 1].min() == -1.0
    P3, V3 = braking_tail(np.zeros((1, 2)), np.ones((1, 2)), 0.02, lim)
    assert P3.shape[0] > 1 and V3[-1].tolist() == [0.0, 0.0]


def test_non_finite_and_huge_references_raise_no_floating_point_warnings():
    """A NaN/inf reference, or a huge one on a continuous joint, is handled without RuntimeWarnings (at the
    control rate they would flood the log): the limiter computes under its own errstate."""
    import warnings

    names = ["a", "b", "c", "d"]
    lims = {"a": JointLimits(-1, 1, 2.0, 5.0), "b": JointLimits(-1, 1, 2.0, 5.0),
            "c": JointLimits(-np.inf, np.inf, 2.0, 5.0), "d": JointLimits(-np.inf, np.inf, 2.0, 5.0)}
    lim = LimitArrays.from_limits(names, lims)
    with warnings.catch_warnings(), np.errstate(all="warn"):
        warnings.simplefilter("error")
        r = limiter_step(np.zeros(4), np.zeros(4), np.zeros(4), 0.01, lim, np.ones(4, bool),
                         np.array([np.nan, np.inf, 1.7e308, -1.7e308]), np.array([0.0, 0.0, 1e308, -1e308]),
                         np.full(4, 5.0))
    assert np.all(np.isfinite(r.p)) and r.non_finite.tolist() == [True, True, False, False]
    assert np.isclose(r.v[2], 0.05) and np.isclose(r.v[3], -0.05)


def test_soft_jerk_limit_also_bounds_the_acceleration_decrease():
    """Accelerating at +5 and asked to stop: the acceleration falls by at most max_jerk·dt per tick (the
    lower jerk bound), rather than jumping to the braking value."""
    lim = _lim(lower=-100, upper=100, vmax=5.0, amax=10.0, jerk=100.0)
    r = limiter_step(np.zeros(1), np.zeros(1), np.full(1, 5.0), 0.01, lim, np.ones(1, bool), np.zeros(1),
                     np.zeros(1), np.full(1, 10.0))
    assert np.isclose(r.v[0], 0.04) and np.isclose(r.a[0], 4.0)


def test_soft_jerk_limit_is_kept_when_it_leaves_exactly_one_velocity():
    """When the jerk bounds and the hard bounds meet in a single velocity (here v_max), that velocity is used:
    feasible means lo ≤ hi, equality included (binary-exact numbers: dt 0.25 s, jerk 4 rad/s³)."""
    lim = _lim(lower=-100, upper=100, vmax=1.0, amax=8.0, jerk=4.0)
    r = limiter_step(np.zeros(1), np.full(1, 0.5), np.full(1, 3.0), 0.25, lim, np.ones(1, bool), np.zeros(1),
                     np.zeros(1), np.full(1, 8.0))
    assert r.v[0] == 1.0  # lower jerk bound 0.5 + (3 − 1)·0.25 = 1.0 = v_max; without the jerk rule it would brake


def test_a_desired_velocity_of_exactly_v_max_limited_by_acceleration_counts_as_an_acceleration_clamp():
    lim = _lim(lower=-100, upper=100, vmax=1.0, amax=2.0)
    # at rest, reference velocity v_max and no position error at the end of the tick (binary-exact numbers)
    r = limiter_step(np.zeros(1), np.zeros(1), np.zeros(1), 0.25, lim, np.ones(1, bool), np.full(1, 0.125),
                     np.ones(1), np.full(1, 2.0))
    assert r.v[0] == 0.5
    assert not r.clamped_velocity[0] and r.clamped_acceleration[0]


def test_per_dt_cache_holds_at_most_eight_tick_lengths():
    lim = _lim()
    for k in range(8):
        lim.per_dt(0.001 * (k + 1))
    assert len(lim._per_dt) == 8
    lim.per_dt(0.5)
    assert len(lim._per_dt) == 1 and 0.5 in lim._per_dt  # the ninth starts over


def test_limit_arrays_are_float64_in_the_given_joint_order_whatever_the_input_types():
    lims = {"a": JointLimits(-1, 2, 3, 4), "b": JointLimits(-5, 6, 7, 8, max_jerk=9)}
    la = LimitArrays.from_limits(["b", "a"], lims)
    for f in ("lower", "upper", "max_velocity", "max_acceleration", "max_jerk"):
        assert getattr(la, f).dtype == np.float64, f
    assert la.lower.tolist() == [-5.0, -1.0] and la.upper.tolist() == [6.0, 2.0]
    assert la.max_velocity.tolist() == [7.0, 3.0] and la.max_acceleration.tolist() == [8.0, 4.0]
    assert la.max_jerk.tolist() == [9.0, np.inf] and la.has_jerk
    assert not LimitArrays.from_limits(["a"], lims).has_jerk
    assert LimitArrays.from_limits(["b"], lims).max_jerk.dtype == np.float64  # integer jerk alone, too
    assert la.accel_c.tolist() == [4.0, 2.0] and la.two_accel_c.tolist() == [8.0, 4.0]
    assert la.two_amax.tolist() == [16.0, 8.0] and la.neg_vmax.tolist() == [-7.0, -3.0]


def _rollout_case(seed, jerk, refs, track_kind, init_kind):
    rng = np.random.default_rng(seed)
    J, K = 5, 12
    names = [f"j{i}" for i in range(J)]
    lims = {n: JointLimits(lower=-1.0 - i * 0.1, upper=0.8 + i * 0.2, max_velocity=1.0 + i * 0.3,
                           max_acceleration=4.0 + i, max_jerk=(200.0 if jerk and i % 2 else None))
            for i, n in enumerate(names)}
    lim = LimitArrays.from_limits(names, lims)
    p = rng.uniform(-0.9, 0.7, J)
    v = rng.uniform(-1.0, 1.0, J)
    a_prev = rng.uniform(-3.0, 3.0, J)
    dts = np.r_[0.01, np.full(K - 1, 0.02)]
    P_ref = np.cumsum(rng.normal(0, 0.05, (K, J)), axis=0) + p
    V_ref = rng.normal(0, 0.5, (K, J))
    P_ref[2, 1] = 5.0  # outside the range: clamped
    if refs == "nan_p":
        P_ref[3:, 2] = np.nan  # a position NaN with a finite velocity: that joint brakes
    elif refs == "inf_v":
        V_ref[:, 3] = np.inf
    track = {"all": np.ones(J, bool), "some": np.array([1, 0, 1, 1, 0], bool), "none": np.zeros(J, bool)}[track_kind]
    initialised = {"none": None, "all": np.ones(J, bool), "some": np.array([1, 1, 0, 1, 1], bool)}[init_kind]
    if init_kind == "some":
        p[2] = np.nan  # the controller's state before a joint's first joint state
    return lim, p, v, a_prev, dts, track, P_ref, V_ref, np.minimum(0.5 * lim.max_acceleration, lim.max_acceleration), \
        initialised


@pytest.mark.parametrize("jerk", [False, True])
@pytest.mark.parametrize("refs", ["finite", "nan_p", "inf_v"])
@pytest.mark.parametrize("track_kind, init_kind", [("all", "none"), ("all", "all"), ("some", "some"),
                                                   ("none", "none"), ("some", "none")])
def test_the_trajectory_rollout_is_k_limiter_steps(jerk, refs, track_kind, init_kind):
    """limiter_rollout (the published trajectory's limiter) returns exactly what K limiter_step calls return:
    non-finite references, clamped references, joints not tracking, joints without a state (fed from 0), jerk."""
    from fastwam_ros.control.limits import limiter_rollout

    lim, p, v, a, dts, track, P_ref, V_ref, decel, init = _rollout_case(3, jerk, refs, track_kind, init_kind)
    P, V = limiter_rollout(p.copy(), v.copy(), a.copy(), dts, lim, track, P_ref, V_ref, decel, init)
    for i, dt in enumerate(dts):
        p_in = p if init is None else np.where(init, p, 0.0)
        r = limiter_step(p_in, v, a, float(dt), lim, track, P_ref[i], V_ref[i], decel)
        p, v, a = r.p, r.v, r.a
        np.testing.assert_allclose(P[i], p, rtol=0, atol=1e-12, err_msg=f"step {i}")
        np.testing.assert_allclose(V[i], v, rtol=0, atol=1e-12, err_msg=f"step {i}")
    assert np.isfinite(P).all() and np.isfinite(V).all()


def test_only_tracking_joints_count_clamps():
    """A joint that does not track counts no clamp, even where its state is outside the range (a joint without
    a joint state is fed from 0, which a range may exclude) or its braking is limited; a tracking joint whose
    step is not limited counts none either."""
    lim = _lim(lower=0.5, upper=1.5, n=3)
    p = np.array([0.0, 1.0, 1.0])  # joint 0: outside the range (not tracking)
    v = np.array([0.0, 0.0, 1.9])  # joint 2: fast, not tracking (brakes)
    r = limiter_step(p, v, np.zeros(3), 0.01, lim, np.array([False, True, False]), np.array([1.0, 1.001, 1.0]),
                     np.zeros(3), lim.max_acceleration)
    assert not r.clamped_position.any() and not r.clamped_velocity.any() and not r.clamped_acceleration.any()
