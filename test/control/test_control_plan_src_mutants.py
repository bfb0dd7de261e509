"""The plan's evaluation rules at their edges (mutation testing, issue 21): which path ``eval_pv`` /
``eval_pv_many`` take and what they return for every kind of source, knot times exactly at the ends, blend
windows exactly at their ends. Values are computed independently (hand-picked holds, the knots themselves, the
natural spline's end condition); each test runs in milliseconds."""

from __future__ import annotations

import numpy as np
import pytest

from fastwam_ros.control.plan import (
    BlendSource,
    ChunkSpline,
    EnsembleSource,
    HoldSource,
    eval_pv,
    eval_pv_many,
)


def _walk(h: int, j: int = 3, seed: int = 3) -> np.ndarray:
    return np.cumsum(np.random.default_rng(seed).normal(size=(h, j)), axis=0)


class _PieceOnly(ChunkSpline):
    """A chunk spline that refuses to be evaluated through its own ``eval_many``, or through ``eval`` strictly
    between its knots: the tick's fast paths compute those themselves (batched, or the cubic piece without its
    acceleration), so reaching them means the slow per-source path was taken."""

    def eval_many(self, ts):
        raise AssertionError("the batched path evaluated a chunk spline source by source")

    def eval(self, t):
        x = (t - self.t0) / self.dt
        if self.n > 1 and 0.0 < x < self.n - 1:
            raise AssertionError(f"eval_pv evaluated a chunk through eval at x = {x} (between its knots)")
        return super().eval(t)


def test_splice_chains_of_chunk_splines_take_the_batched_path():
    """``eval_pv_many`` evaluates a chunk, or a chain of splice blends whose sides are chunks, with every spline
    gathered at once (issue 14: the tick cost), never chunk by chunk; the values are the plan's."""
    a, b, c = (ChunkSpline(t0, 0.1, _walk(8, seed=i)) for i, t0 in enumerate((0.0, 0.3, 0.55)))
    fa, fb, fc = (_PieceOnly(s.t0, s.dt, s.p) for s in (a, b, c))
    ts = np.linspace(-0.1, 1.4, 61)
    for src, ref in ((fa, a), (BlendSource(fa, fb, 0.35, 0.1), BlendSource(a, b, 0.35, 0.1)),
                     (BlendSource(BlendSource(fa, fb, 0.35, 0.1), fc, 0.6, 0.2),
                      BlendSource(BlendSource(a, b, 0.35, 0.1), c, 0.6, 0.2))):
        P, V, _ = ref.eval_many(ts)
        Pf, Vf = eval_pv_many(src, ts)
        np.testing.assert_allclose(Pf, P, rtol=0, atol=1e-12)
        np.testing.assert_allclose(Vf, V, rtol=0, atol=1e-11)


@pytest.mark.parametrize("n", [2, 3, 9])
def test_eval_pv_computes_the_cubic_piece_itself_between_the_knots(n):
    """Between the knots ``eval_pv`` evaluates the Hermite piece without its acceleration (the tick does not use
    it) instead of the full ``eval``; on and outside the knots it is ``eval``'s value. Both equal ``eval``."""
    ref = ChunkSpline(0.2, 0.1, _walk(n))
    src = _PieceOnly(ref.t0, ref.dt, ref.p)
    knots = ref.t0 + ref.dt * np.arange(n)
    ts = np.concatenate([knots, knots + 0.03, knots - 0.07, [ref.t0 - 1.0, ref.end_s + 1.0]])
    for t in ts:
        p, v, _ = ref.eval(float(t))
        pf, vf = eval_pv(src, float(t))
        np.testing.assert_allclose(pf, p, rtol=0, atol=1e-12)
        np.testing.assert_allclose(vf, v, rtol=0, atol=1e-11)


def test_eval_pv_many_of_any_other_source_is_its_eval_many():
    """A hold, a blend into or out of a hold, an empty ensemble: not batchable, so ``eval_pv_many`` returns the
    source's own ``eval_many`` positions and velocities (velocities None when not asked for)."""
    chunk = ChunkSpline(0.0, 0.1, _walk(6))
    hold = HoldSource(np.array([0.5, -1.0, 2.0]))
    ts = np.array([-0.2, 0.0, 0.12, 0.3, 0.41, 0.5, 0.9])
    for src in (hold, BlendSource(chunk, hold, 0.2, 0.15), BlendSource(hold, chunk, 0.1, 0.2),
                BlendSource(BlendSource(chunk, hold, 0.2, 0.1), chunk, 0.35, 0.1), EnsembleSource([], 0.1, 3)):
        P, V, _ = src.eval_many(ts)
        Pf, Vf = eval_pv_many(src, ts)
        np.testing.assert_array_equal(Pf, P)
        np.testing.assert_array_equal(Vf, V)
        Po, none = eval_pv_many(src, ts, with_velocity=False)
        assert none is None
        np.testing.assert_array_equal(Po, P)


def test_positions_only_inside_the_newest_blend_window_have_no_velocities():
    """``with_velocity=False`` returns None for the velocities also when every time lies before the end of the
    newest blend (the chain path without the newest-chunk-alone shortcut)."""
    a, b, c = (ChunkSpline(t0, 0.1, _walk(8, seed=i)) for i, t0 in enumerate((0.0, 0.3, 0.55)))
    src = BlendSource(BlendSource(a, b, 0.35, 0.1), c, 0.6, 0.2)
    ts = np.linspace(0.0, 0.79, 23)
    P, _, _ = src.eval_many(ts)
    Po, none = eval_pv_many(src, ts, with_velocity=False)
    assert none is None
    np.testing.assert_allclose(Po, P, rtol=0, atol=1e-12)


def test_at_the_end_of_its_window_a_blend_is_the_new_source_exactly():
    """From ``t_h + w`` on, the plan is the new chunk alone, bit for bit: no rounding residue of the old side
    (old + 1·(new − old) is not new in floating point)."""
    old = HoldSource(np.array([1.0, -3.0]))
    new = ChunkSpline(0.0, 0.25, np.array([[1e-20, 7e-18], [2e-20, 5e-18], [3e-20, 1e-18]]))
    blend = BlendSource(old, new, 0.5, 0.25)  # ends at 0.75 = (0.75 − 0.5) / 0.25 = 1 exactly
    for t in (0.75, 0.8):
        pn, vn, an = new.eval(t)
        for got, want in zip(blend.eval(t), (pn, vn, an)):
            np.testing.assert_array_equal(got, want)
        for got, want in zip(eval_pv(blend, t), (pn, vn)):
            np.testing.assert_array_equal(got, want)


def test_a_blend_entirely_before_its_hand_off_is_the_old_source():
    old, new = ChunkSpline(0.0, 0.1, _walk(6, seed=1)), ChunkSpline(0.3, 0.1, _walk(6, seed=2))
    blend = BlendSource(old, new, 0.3, 0.1)
    ts = np.array([-0.1, 0.0, 0.15, 0.3])
    for got, want in zip(blend.eval_many(ts), old.eval_many(ts)):
        np.testing.assert_array_equal(got, want)


def test_a_natural_spline_has_zero_acceleration_exactly_at_its_end_knots():
    """The natural end condition (s'' = 0 at the first and last knot), continued by the linear extrapolation:
    at the end knots themselves the acceleration is exactly 0, from ``eval`` and ``eval_many``."""
    s = ChunkSpline(0.0, 0.25, _walk(7))
    ends = [0.0, s.end_s]  # x = 0 and x = n − 1 exactly
    for t in ends:
        assert s.eval(t)[2].tolist() == [0.0, 0.0, 0.0]
    A = s.eval_many(np.array(ends))[2]
    assert A.tolist() == [[0.0] * 3] * 2
    A = s.eval_many(np.array(ends + [0.3]))[2]  # together with a time between the knots
    assert A[:2].tolist() == [[0.0] * 3] * 2 and A[2].any()


def test_a_two_knot_hermite_spline_evaluates_to_its_last_knot_there():
    p = np.array([[0.0, 1.0], [0.5, -1.0]])
    v = np.array([[3.0, -2.0], [-1.0, 4.0]])
    s = ChunkSpline(0.0, 0.25, p, v)  # the last knot at x = (0.25 − 0) / 0.25 = 1 exactly
    pe, ve, _ = s.eval(0.25)
    np.testing.assert_array_equal(pe, p[1])
    np.testing.assert_array_equal(ve, v[1])
    pf, vf = eval_pv(s, 0.25)
    np.testing.assert_array_equal(pf, p[1])
    np.testing.assert_array_equal(vf, v[1])



@pytest.mark.parametrize("velocities", [False, True])
def test_every_path_holds_at_the_end_knots_of_a_chunk_that_does_not_extrapolate(velocities):
    """``extrapolate_s = 0``: the chunk holds right from its end knots, so at the end knots themselves the
    velocity is 0 (the hold), not the spline's end slope; ``eval_many``, ``eval_pv`` and ``eval_pv_many`` (the tick's
    paths) return what ``eval`` returns there too, and between the knots the spline's velocity."""
    p = _walk(5)
    v = np.random.default_rng(4).normal(size=p.shape) if velocities else None
    s = ChunkSpline(0.0, 0.25, p, v, extrapolate_s=0.0)
    for t in (0.0, s.end_s):  # x = 0 and x = n − 1 exactly
        pe, ve, _ = s.eval(t)
        assert ve.tolist() == [0.0, 0.0, 0.0]
        pf, vf = eval_pv(s, t)
        np.testing.assert_array_equal(pf, pe)
        np.testing.assert_array_equal(vf, ve)
        P, V, _ = s.eval_many(np.array([t, 0.3]))
        np.testing.assert_array_equal(P[0], pe)
        np.testing.assert_array_equal(V[0], ve)
        P, V = eval_pv_many(s, np.array([t, 0.3]))  # the batched path too
        np.testing.assert_array_equal(P[0], pe)
        np.testing.assert_array_equal(V[0], ve)
    assert eval_pv(s, 0.5)[1].any()


def _natural_reference(p: np.ndarray, dt: float, t: float) -> np.ndarray:
    """The natural cubic spline through knots ``p`` (uniform step ``dt``) at ``t`` inside the knots, from a dense
    solve of its slope equations (end rows 2·m0 + m1 = 3·(p1 − p0), inner rows m(k−1) + 4·m(k) + m(k+1) =
    3·(p(k+1) − p(k−1)); slopes per grid unit) and the cubic Hermite basis."""
    n = p.shape[0]
    a = np.zeros((n, n))
    rhs = np.zeros_like(p)
    for k in range(n):
        if k == 0:
            a[0, :2] = (2.0, 1.0)
            rhs[0] = 3.0 * (p[1] - p[0])
        elif k == n - 1:
            a[k, k - 1 :] = (1.0, 2.0)
            rhs[k] = 3.0 * (p[k] - p[k - 1])
        else:
            a[k, k - 1 : k + 2] = (1.0, 4.0, 1.0)
            rhs[k] = 3.0 * (p[k + 1] - p[k - 1])
    m = np.linalg.solve(a, rhs)
    x = t / dt
    k = int(x)
    u = x - k
    return ((2 * u**3 - 3 * u**2 + 1) * p[k] + (u**3 - 2 * u**2 + u) * m[k]
            + (-2 * u**3 + 3 * u**2) * p[k + 1] + (u**3 - u**2) * m[k + 1])


@pytest.mark.parametrize("n", [2, 3, 4, 7])
def test_a_chunk_without_velocities_is_the_natural_cubic_spline_through_its_knots(n):
    """Every knot count, the 2- and 3-knot chunks included (no inner slope rows / one): the spline between the
    knots is the natural cubic spline of a dense solve."""
    dt = 0.1
    p = _walk(n, seed=n)
    s = ChunkSpline(0.0, dt, p)
    for t in np.linspace(0.0, (n - 1) * dt, 4 * n + 1)[1:-1]:
        np.testing.assert_allclose(s.eval(float(t))[0], _natural_reference(p, dt, float(t)), rtol=0, atol=1e-12)


@pytest.mark.parametrize("as_type", [np.float32, np.int64, "list"])
def test_a_chunk_is_evaluated_in_float64_whatever_the_type_of_its_positions(as_type):
    """A float32 chunk (a policy's output), integer positions or a nested list: the spline is built and evaluated
    in float64, exactly as from the same values given as float64 (no float32 arithmetic, no integer truncation of
    the slopes)."""
    p64 = np.array([[0.0, 1.0], [2.0, -1.0], [1.0, 4.0], [5.0, 2.0]])
    given = p64.tolist() if as_type == "list" else p64.astype(as_type)
    ts = np.linspace(-0.05, 0.35, 17)
    for vel in (None, np.array([[0.5, 0.0], [1.0, -2.0], [0.0, 0.0], [3.0, 1.0]], dtype=np.float32)):
        ref = ChunkSpline(0.0, 0.1, p64, None if vel is None else vel.astype(np.float64))
        got = ChunkSpline(0.0, 0.1, given, vel)
        assert got.p.dtype == np.float64
        for a, b in zip(got.eval_many(ts), ref.eval_many(ts)):
            np.testing.assert_array_equal(a, b)
