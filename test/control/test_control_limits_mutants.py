"""Sharper rules of the limiter (control/limits.py) found by the mutation run (issue #21): the linear/square-root
boundary, the full-braking fallback with several joints, a chunk whose tracked references are all non-finite,
huge references in the trajectory limiter, and the clamp counters of braking joints.

Each test is a small deterministic scenario (milliseconds); ``limiter_rollout`` is pinned against K
``limiter_step`` calls *exactly* (its docstring: element for element what the K calls return).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from test_control_limiter_rules import _lim  # the rule tests' one-limit-per-joint LimitArrays

from fastwam_ros.control.config import JointLimits
from fastwam_ros.control.limits import TRACK_GAIN, LimitArrays, limiter_rollout, limiter_step


def _steps(p, v, a, dts, lim, track, P_ref, V_ref, decel):
    """K limiter_step calls, the state carried over: the reference for limiter_rollout."""
    P, V = [], []
    for i, dt in enumerate(dts):
        r = limiter_step(p, v, a, float(dt), lim, track, P_ref[i], V_ref[i], decel)
        p, v, a = r.p, r.v, r.a
        P.append(p)
        V.append(v)
    return np.array(P), np.array(V)


def _assert_rollout_is_the_steps(p, v, dts, lim, track, P_ref, V_ref, decel):
    a = np.zeros_like(p)
    P, V = limiter_rollout(p.copy(), v.copy(), a.copy(), dts, lim, track, P_ref, V_ref, decel)
    P1, V1 = _steps(p.copy(), v.copy(), a.copy(), dts, lim, track, P_ref, V_ref, decel)
    assert P.tolist() == P1.tolist() and V.tolist() == V1.tolist()  # exactly, not to a tolerance
    return P, V


def _boundary_state(amax, dt):
    """A state whose predicted position error is exactly the linear region's bound e0 = a_c/k² (k = g/dt):
    p = 0, v = a_max·dt/2 and a reference velocity −v (so p + (v + v_ref)·dt/2 is exactly 0), p_ref = e0."""
    lim = _lim(amax=amax)
    _, _, k, e0, _ = lim.per_dt(dt)
    v = np.full(1, 0.5 * amax * dt)
    return lim, k, e0, np.zeros(1), v, -v, e0.copy()


# a_max values where k·e0 and sqrt(2·a_c·e0/2) (equal in exact arithmetic) differ in the last bit at dt = 0.01
@pytest.mark.parametrize("amax", [2.9, 5.1, 11.4])
def test_the_linear_region_includes_its_boundary_e0(amax):
    """At |e| = e0 the correction is the linear one, k·e (error × g per tick): the boundary belongs to the
    linear region (the square-root branch agrees only to rounding there)."""
    dt = 0.01
    lim, k, e0, p, v, v_ref, p_ref = _boundary_state(amax, dt)
    assert k == TRACK_GAIN / dt
    r = limiter_step(p, v, np.zeros(1), dt, lim, np.ones(1, bool), p_ref, v_ref, lim.max_acceleration)
    assert r.v[0] == v_ref[0] + k * e0[0]
    assert not (r.clamped_velocity.any() or r.clamped_acceleration.any() or r.clamped_position.any())


@pytest.mark.parametrize("amax", [2.9, 5.1, 11.4])
def test_the_rollout_takes_the_linear_branch_at_e0_as_limiter_step_does(amax):
    dt = 0.01
    lim, _, _, p, v, v_ref, p_ref = _boundary_state(amax, dt)
    _assert_rollout_is_the_steps(p, v, np.full(1, dt), lim, np.ones(1, bool), p_ref[None, :], v_ref[None, :],
                                 lim.max_acceleration)


@pytest.mark.parametrize("bad", ["nan_p", "inf_p", "inf_v"])
@pytest.mark.parametrize("track", [[True, False], [True, True]])
def test_a_chunk_whose_tracked_references_are_all_non_finite_brakes_in_the_rollout(bad, track):
    """Every tracked joint's reference non-finite in every row (a model output gone NaN/inf): the trajectory
    brakes those joints at full deceleration, finite, exactly as the limiter steps do; nothing is NaN."""
    lim = _lim(n=2)
    dt, K = 0.02, 6
    track = np.array(track)
    p, v = np.array([0.1, -0.2]), np.array([1.0, -0.5])
    P_ref, V_ref = np.zeros((K, 2)), np.zeros((K, 2))
    col = P_ref if bad.endswith("_p") else V_ref
    col[:, track] = np.nan if bad.startswith("nan") else np.inf
    P, V = _assert_rollout_is_the_steps(p, v, np.full(K, dt), lim, track, P_ref, V_ref, 0.5 * lim.max_acceleration)
    assert np.isfinite(P).all() and np.isfinite(V).all()
    # joint 0 (bad reference): full braking, a_max·dt per point, until rest
    expected = np.maximum(1.0 - 5.0 * dt * np.arange(1, K + 1), 0.0)
    np.testing.assert_allclose(V[:, 0], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("track", [[True, True, True, True], [True, False, True, True]])
def test_huge_references_raise_no_floating_point_warnings_in_the_rollout(track):
    """Huge finite references on continuous joints (the square-root correction's argument overflows to inf)
    and on bounded ones are handled by the trajectory limiter without RuntimeWarnings, like limiter_step."""
    names = ["a", "b", "c", "d"]
    lims = {"a": JointLimits(-1, 1, 2.0, 5.0), "b": JointLimits(-1, 1, 2.0, 5.0),
            "c": JointLimits(-np.inf, np.inf, 2.0, 5.0), "d": JointLimits(-np.inf, np.inf, 2.0, 5.0)}
    lim = LimitArrays.from_limits(names, lims)
    K = 4
    P_ref = np.tile([1.7e308, -1.7e308, 1.7e308, -1.7e308], (K, 1))
    V_ref = np.tile([1e308, -1e308, 1e308, -1e308], (K, 1))
    with warnings.catch_warnings(), np.errstate(all="warn"):
        warnings.simplefilter("error")
        P, V = _assert_rollout_is_the_steps(np.zeros(4), np.zeros(4), np.full(K, 0.02), lim, np.array(track),
                                            P_ref, V_ref, np.full(4, 5.0))
    assert np.isfinite(P).all() and np.isfinite(V).all()
    assert np.all(np.abs(np.diff(np.vstack([np.zeros(4), V]), axis=0)) <= 5.0 * 0.02 + 1e-12)


def _infeasible_pair():
    """Joint 0: a state the limiter never produces (1.9 rad/s at 0.01 rad from its upper limit: no velocity keeps
    every constraint); joint 1: an ordinary tracking joint at rest, far from its limits."""
    lim = _lim(n=2)
    return lim, np.array([0.99, 0.0]), np.array([1.9, 0.0]), np.array([1.0, 0.3]), np.zeros(2)


def test_one_joints_full_braking_fallback_leaves_the_other_joints_alone():
    """The rounding guard (full braking where the feasible interval is empty) applies to that joint only: the
    other joint steps exactly as it does alone."""
    lim, p, v, p_ref, v_ref = _infeasible_pair()
    dt = 0.01
    r = limiter_step(p, v, np.zeros(2), dt, lim, np.ones(2, bool), p_ref, v_ref, lim.max_acceleration)
    assert np.isclose(r.v[0], 1.9 - 5.0 * dt)
    one = _lim(n=1)
    alone = limiter_step(p[1:], v[1:], np.zeros(1), dt, one, np.ones(1, bool), p_ref[1:], v_ref[1:],
                         one.max_acceleration)
    assert r.v[1] == alone.v[0] and r.p[1] == alone.p[0] and r.v[1] > 0.0


def test_the_rollout_falls_back_to_full_braking_exactly_as_limiter_step():
    """From a state with an empty feasible interval, the trajectory limiter brakes at a_max (never harder: the
    acceleration limit holds) and matches the limiter steps element for element."""
    lim, p, v, p_ref, v_ref = _infeasible_pair()
    dt, K = 0.01, 5
    P, V = _assert_rollout_is_the_steps(p, v, np.full(K, dt), lim, np.ones(2, bool), np.tile(p_ref, (K, 1)),
                                        np.tile(v_ref, (K, 1)), lim.max_acceleration)
    dv = np.diff(np.vstack([v, V]), axis=0)
    assert np.all(np.abs(dv) <= 5.0 * dt * (1 + 1e-12))
    assert np.isclose(V[0, 0], 1.9 - 5.0 * dt)


def test_a_braking_joint_that_its_position_limit_makes_brake_harder_counts_no_clamp():
    """A joint that does not track brakes at the hold deceleration; close to its limit the braking constraint
    makes it brake harder than that. That is not a clamp of a reference: with another joint tracking, only the
    tracking joints' clamps are counted."""
    lim = _lim(n=2, lower=-1.5, upper=1.5)
    dt = 0.01
    # joint 1: 1.9 rad/s, 0.3706 rad short of the limit (stopping distance bound D(v) = 0.3705: a valid state)
    p, v = np.array([0.0, 1.5 - 0.3706]), np.array([0.0, 1.9])
    decel = 0.5 * lim.max_acceleration
    r = limiter_step(p, v, np.zeros(2), dt, lim, np.array([True, False]), np.array([0.001, 0.0]), np.zeros(2),
                     decel)
    assert r.v[1] < 1.9 - decel[1] * dt  # braked harder than the hold deceleration asks
    assert r.v[1] >= 1.9 - 5.0 * dt - 1e-12
    assert r.clamped_acceleration.tolist() == [False, False]
    assert r.clamped_velocity.tolist() == [False, False] and r.clamped_position.tolist() == [False, False]
