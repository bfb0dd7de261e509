"""Plan sources: spline interpolation (C2 / C1), blends and the ensemble, checked against finite differences
and values computed independently."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastwam_ros.control.plan import (
    BlendSource,
    ChunkSpline,
    EnsembleMember,
    EnsembleSource,
    HoldSource,
    smoothstep5,
)


def _fd(src, t, h=1e-6):
    """Central finite differences of the position (independent of the analytic derivatives)."""
    pm, p0, pp = src.eval(t - h)[0], src.eval(t)[0], src.eval(t + h)[0]
    return (pp - pm) / (2 * h), (pp - 2 * p0 + pm) / h ** 2


def _chunk(seed=0, h=32, j=3):
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(0, 0.02, size=(h, j)), axis=0)


def test_spline_passes_through_knots_and_is_c2():
    P = _chunk()
    s = ChunkSpline(1.0, 1 / 30, P)
    for k in range(32):
        np.testing.assert_allclose(s.eval(1.0 + k / 30)[0], P[k], atol=1e-12)
    for k in range(1, 31):  # interior knots: p, v, a continuous from both sides
        t = 1.0 + k / 30
        lo, hi = s.eval(t - 1e-9), s.eval(t + 1e-9)
        for x, y in zip(lo, hi):
            np.testing.assert_allclose(x, y, atol=1e-5)
    # analytic derivatives match finite differences between knots
    for t in np.linspace(1.01, 2.0, 17):
        v_fd, a_fd = _fd(s, t, 1e-5)
        _, v, a = s.eval(t)
        np.testing.assert_allclose(v, v_fd, atol=1e-5)
        np.testing.assert_allclose(a, a_fd, rtol=1e-3, atol=2e-3)
    # natural ends: zero acceleration, so the linear extrapolation beyond the end is C2
    assert np.allclose(s.eval(s.end_s - 1e-9)[2], 0, atol=1e-5)


def test_spline_is_not_piecewise_linear():
    P = np.array([[0.0], [1.0], [0.0], [1.0]])
    s = ChunkSpline(0.0, 1.0, P)
    p_mid = s.eval(0.5)[0][0]
    assert abs(p_mid - 0.5) > 1e-3  # a linear interpolation would give exactly 0.5
    v_left, v_right = s.eval(1.0 - 1e-9)[1], s.eval(1.0 + 1e-9)[1]
    np.testing.assert_allclose(v_left, v_right, atol=1e-6)


def test_hermite_with_velocities_matches_given_velocities():
    P = _chunk(1)
    V = np.random.default_rng(2).normal(size=P.shape)
    s = ChunkSpline(0.0, 0.1, P, V)
    for k in range(31):
        np.testing.assert_allclose(s.eval(k * 0.1 + 1e-12)[1], V[k], atol=1e-6)


def test_smoothstep5_endpoints():
    assert smoothstep5(0.0) == (0.0, 0.0, 0.0) and smoothstep5(1.0) == (1.0, 0.0, 0.0)
    for x in np.linspace(0.01, 0.99, 9):
        s, ds, dds = smoothstep5(x)
        h = 1e-6
        assert ds == pytest.approx((smoothstep5(x + h)[0] - smoothstep5(x - h)[0]) / (2 * h), abs=1e-6)
        assert dds == pytest.approx((smoothstep5(x + h)[1] - smoothstep5(x - h)[1]) / (2 * h), abs=1e-4)


def test_blend_is_continuous_in_position_velocity_and_acceleration():
    a = ChunkSpline(0.0, 1 / 30, _chunk(3))
    b = ChunkSpline(0.2, 1 / 30, _chunk(4) + 0.1)  # disagrees by ~0.1
    t_h, w = 0.4, 0.2
    bl = BlendSource(a, b, t_h, w)
    for t, left, right in ((t_h, a, bl), (t_h + w, bl, b)):
        for x, y in zip(left.eval(t - 1e-9), right.eval(t + 1e-9)):
            np.testing.assert_allclose(x, y, atol=1e-5)
    for t in np.linspace(t_h + 0.01, t_h + w - 0.01, 7):
        v_fd, a_fd = _fd(bl, t, 1e-5)
        np.testing.assert_allclose(bl.eval(t)[1], v_fd, atol=1e-5)
        np.testing.assert_allclose(bl.eval(t)[2], a_fd, rtol=1e-3, atol=5e-3)


def test_ensemble_is_the_act_weighted_average_where_weights_are_steady():
    c0 = ChunkSpline(0.0, 0.1, np.zeros((20, 2)))
    c1 = ChunkSpline(0.0, 0.1, np.ones((20, 2)))
    k = 0.3
    src = EnsembleSource([EnsembleMember(c0, -k * 0, 0.0, c0.end_s), EnsembleMember(c1, -k * 1, 0.0, c1.end_s)],
                         w=0.2, n_joints=2)
    w0, w1 = 1.0, math.exp(-k)
    p, v, a = src.eval(1.0)
    np.testing.assert_allclose(p, w1 / (w0 + w1), atol=1e-12)
    np.testing.assert_allclose(v, 0.0, atol=1e-12)
    # while the newer member fades in, velocity still matches the finite difference of the position
    src2 = EnsembleSource([EnsembleMember(c0, 0.0, 0.0, c0.end_s), EnsembleMember(c1, 0.0, 0.5, c1.end_s)],
                          w=0.2, n_joints=2)
    for t in (0.55, 0.6, 0.65):
        v_fd, a_fd = _fd(src2, t, 1e-5)
        np.testing.assert_allclose(src2.eval(t)[1], v_fd, atol=1e-5)
        np.testing.assert_allclose(src2.eval(t)[2], a_fd, rtol=1e-3, atol=5e-3)
    assert src2.eval(0.5)[0][0] == pytest.approx(0.0) and src2.eval(0.8)[0][0] == pytest.approx(0.5)


def test_an_ensemble_carried_by_one_member_is_that_member_to_the_bit_even_at_a_fade_edge():
    """Where one member carries all the weight (u = 1, u' = u'' = 0 exactly) the ensemble is that member, also in
    acceleration and at the very start of its fade-in, where the summed weight W is tiny. The expanded u'' (terms
    of size (W'/W)² cancelling) left ~5e-9 rad/s² there and made eval and eval_many disagree on NumPy 1.26."""
    rng = np.random.default_rng(3)
    s = ChunkSpline(0.0, 1 / 30, 10 * np.cumsum(rng.normal(size=(20, 5)), 0))
    late = ChunkSpline(0.0, 1 / 30, rng.normal(size=(20, 5)))  # fades in from 0.5 s: weight exactly 0 before
    ens = EnsembleSource([EnsembleMember(s, 0.0, 0.1, s.end_s), EnsembleMember(late, -0.5, 0.5, late.end_s)],
                         w=0.2, n_joints=5)
    ts = 0.1 + 0.2 * np.array([1e-3, 3e-3, 1e-2, 0.05, 0.3, 0.9])  # fade-in positions: W = 10x³ - ...
    P, V, A = ens.eval_many(ts)
    for k, t in enumerate(ts):
        assert 0.0 < ens.weights_at(float(t))[0] < 1.0 and ens.weights_at(float(t))[1] == 0.0
        want = s.eval(float(t))
        for got in (ens.eval(float(t)), (P[k], V[k], A[k])):
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w)


def test_eval_many_equals_eval_at_every_time():
    """The vectorised plan evaluation used by the trajectory and the committed prefix (issue 17) returns, row by
    row, what ``eval`` returns: splines (with and without velocities, single knot), chains of blends,
    ensembles (with and without fades) and holds; times inside, on and beyond the knots and blend windows."""
    rng = np.random.default_rng(7)
    a = ChunkSpline(0.0, 1 / 30, np.cumsum(rng.normal(size=(32, 5)), 0))
    b = ChunkSpline(0.3, 1 / 30, np.cumsum(rng.normal(size=(20, 5)), 0), rng.normal(size=(20, 5)))
    one = ChunkSpline(0.5, 1 / 30, rng.normal(size=(1, 5)))
    chain = BlendSource(BlendSource(a, b, 0.35, 0.2), one, 0.5, 0.1)
    splines = [ChunkSpline(0.1 * i, 1 / 30, np.cumsum(rng.normal(size=(20, 5)), 0)) for i in range(6)]
    ens = [EnsembleSource([EnsembleMember(s, -0.3 * i, 0.1 * i + 0.02, s.end_s) for i, s in enumerate(splines)], w, 5)
           for w in (0.2, 0.0)]
    ts = np.sort(np.concatenate([rng.uniform(-1, 3, size=200), [0.0, 0.35, 0.5, 0.55, 0.6, 31 / 30, 0.02, 0.12]]))
    for src in [a, b, one, chain, HoldSource(np.ones(5)), *ens]:
        P, V, A = src.eval_many(ts)
        for k, t in enumerate(ts):
            p, v, acc = src.eval(float(t))
            np.testing.assert_allclose(P[k], p, rtol=0, atol=1e-13)
            np.testing.assert_allclose(V[k], v, rtol=0, atol=1e-12)
            np.testing.assert_allclose(A[k], acc, rtol=0, atol=1e-10)
