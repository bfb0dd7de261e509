"""The plan's batched evaluation path (``eval_pv_many``: ``splines_pv_many``, ``_chain_pv_many``,
``_ensemble_pv_many``) against its reference, rule by rule (mutation testing, issue 21).

The batched path promises the positions and velocities of ``src.eval_many(ts)`` element for element, for any
splice chain or ensemble of chunk splines, without floating-point warnings. These tests pick the configurations
where a near miss would show: times exactly on knots and hand-offs (binary-exact grids), chunks without
extrapolation, one-step chunks carrying velocities, hand-offs in any order, log-weights far apart, members whose
values are not finite where they carry no weight, fade windows down to the smallest normal float."""

from __future__ import annotations

import gc
import warnings
import weakref

import numpy as np
import pytest

from fastwam_ros.control.plan import (
    BlendSource,
    ChunkSpline,
    EnsembleMember,
    EnsembleSource,
    Source,
    eval_pv_many,
)


def _walk(seed: int, h: int, j: int = 3) -> np.ndarray:
    return np.cumsum(np.random.default_rng(seed).normal(0, 0.3, size=(h, j)), axis=0)


def _same_as_reference(src, ts, ref=None, atol_p=1e-12, atol_v=1e-11):
    """``eval_pv_many`` (with and without velocities, and with velocities at the first rows only, as the tick
    asks when it evaluates the committed prefix with its own reference) equals ``ref.eval_many`` (default:
    ``src``'s own), with floating-point warnings as errors; NaN matches NaN."""
    ref = src if ref is None else ref
    with np.errstate(all="ignore"):
        P, V, _ = ref.eval_many(ts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Pf, Vf = eval_pv_many(src, ts)
        Po, none = eval_pv_many(src, ts, with_velocity=False)
        part = [(n, eval_pv_many(src, ts, velocity_rows=n)) for n in (1, len(ts) // 2)]
    assert none is None
    np.testing.assert_allclose(Pf, P, rtol=0, atol=atol_p)
    np.testing.assert_allclose(Vf, V, rtol=0, atol=atol_v)
    np.testing.assert_allclose(Po, P, rtol=0, atol=atol_p)
    for n, (Pn, Vn) in part:
        np.testing.assert_allclose(Pn, P, rtol=0, atol=atol_p)
        np.testing.assert_allclose(Vn[:n], V[:n], rtol=0, atol=atol_v)


@pytest.mark.parametrize("ext", [0.0, 0.5])
@pytest.mark.parametrize("hermite", [False, True])
def test_a_chunk_is_its_knots_exactly_on_its_knot_times(ext, hermite):
    """On its first and last knot a chunk is at the knot; its velocity there is the knot's slope while the chunk
    extrapolates, and 0 when it does not (``extrapolate_s = 0``: a hold right after the knot), on the batched
    path as in ``eval``. Two-knot chunks (one piece, the last knot at x = 1) included."""
    rng = np.random.default_rng(3)
    for n in (2, 3, 7):
        p = _walk(n, n)
        v = rng.normal(size=(n, 3)) if hermite else None
        s = ChunkSpline(0.25, 0.125, p, v, extrapolate_s=ext)
        ts = 0.25 + 0.125 * np.arange(-2, n + 2, dtype=float)  # every knot time, exact in binary
        _same_as_reference(s, ts)
        P, _ = eval_pv_many(s, ts)
        np.testing.assert_array_equal(P[2], p[0])
        np.testing.assert_array_equal(P[n + 1], p[-1])


def test_a_one_step_chunk_is_a_hold_even_when_it_carries_velocities():
    """A chunk of one step holds its only knot (velocity 0) at every time, also when the model sent a velocity
    with it: the batched path does not extrapolate it (alone, in a splice chain, in an ensemble)."""
    one = ChunkSpline(0.5, 0.125, [[0.1, -0.2, 0.3]], [[2.0, -1.0, 4.0]])
    ts = np.linspace(-0.5, 2.0, 41)
    P, V = eval_pv_many(one, ts)
    np.testing.assert_array_equal(P, np.tile([0.1, -0.2, 0.3], (ts.size, 1)))
    np.testing.assert_array_equal(V, np.zeros((ts.size, 3)))
    a = ChunkSpline(0.0, 0.125, _walk(1, 9))
    _same_as_reference(one, ts)
    _same_as_reference(BlendSource(a, one, 0.5, 0.25), ts)
    _same_as_reference(EnsembleSource([EnsembleMember(a, 0.0, 0.0, a.end_s), EnsembleMember(one, -0.5, 0.5, 1.0)],
                                      0.25, 3), ts)


def test_a_splice_chain_asked_without_velocities_returns_positions_only():
    """Every time before the newest blend ends (the chain's general path): positions as in ``eval_many`` and no
    velocity array."""
    a, b, c = (ChunkSpline(t0, 0.125, _walk(i, 9)) for i, t0 in enumerate((0.0, 0.375, 0.75)))
    chain = BlendSource(BlendSource(a, b, 0.5, 0.25), c, 0.875, 0.25)
    ts = np.linspace(0.0, 1.0, 33)  # the newest blend ends at 1.125
    _same_as_reference(chain, ts)


def test_up_to_its_hand_off_a_splice_is_the_old_plan_whatever_the_new_chunk_holds():
    """At and before the hand-off instant t_h the plan is the old chunk alone: the new chunk has no influence
    there, even where its values are not finite (after t_h they are blended in, as in ``eval``)."""
    a = ChunkSpline(0.0, 0.125, _walk(4, 9))
    bad = _walk(5, 9)
    bad[3, 1] = np.nan
    new = ChunkSpline(0.25, 0.125, bad)
    chain = BlendSource(BlendSource(a, new, 0.5, 0.25), ChunkSpline(0.5, 0.125, _walk(6, 9)), 0.625, 0.25)
    ts = np.array([0.0, 0.125, 0.375, 0.5, 0.5625, 0.625, 0.75])  # 0.5: the first hand-off, exactly
    _same_as_reference(chain, ts)
    P, V = eval_pv_many(chain, ts)
    pa, va, _ = a.eval_many(ts[:4])
    np.testing.assert_array_equal(P[:4], pa)
    np.testing.assert_array_equal(V[:4], va)


def test_splice_chains_with_hand_offs_in_any_order_equal_the_reference():
    """``eval_pv_many`` is ``eval_many`` for any chain of blends, also one whose newer blend hands off before an
    older one (a blend that has not begun at any asked time is skipped, not the end of the chain)."""
    a, b, c, d = (ChunkSpline(t0, 0.125, _walk(10 + i, 10)) for i, t0 in enumerate((0.0, 0.5, 0.125, 0.25)))
    chains = [BlendSource(BlendSource(a, b, 1.0, 0.25), c, 0.25, 0.25),
              BlendSource(BlendSource(BlendSource(a, b, 1.0, 0.25), c, 0.25, 0.5), d, 0.375, 0.125),
              BlendSource(BlendSource(BlendSource(a, c, 0.25, 0.125), b, 1.0, 0.25), d, 0.5, 0.25)]
    for ts in (np.linspace(0.0, 0.875, 29), np.linspace(0.0, 1.5, 49)):
        for chain in chains:
            _same_as_reference(chain, ts)


class _RowByRow(Source):
    """``src`` through the scalar ``eval`` only (``Source.eval_many`` stacks it row by row)."""

    def __init__(self, src: Source) -> None:
        self.src = src

    def eval(self, t):
        return self.src.eval(t)


def _ensemble(log_weights, w, splines=None):
    splines = splines or [ChunkSpline(0.25 * i, 0.125, _walk(20 + i, 10)) for i in range(len(log_weights))]
    return EnsembleSource([EnsembleMember(s, lw, s.t0, s.end_s) for s, lw in zip(splines, log_weights)], w, 3)


@pytest.mark.parametrize("offset", [-800.0, 0.0, 800.0])
def test_an_ensemble_is_the_same_whatever_the_offset_of_its_log_weights(offset):
    """Only differences of log-weights matter (the weights are normalised against the heaviest member), so
    log-weights in the hundreds (−decay·stamp/dt with large stamps) neither overflow nor change the plan."""
    ts = np.linspace(-0.25, 2.5, 45)
    lw = [0.0, -0.4, -0.8, -1.2]
    ref = _ensemble(lw, 0.125)
    src = _ensemble([x + offset for x in lw], 0.125)
    _same_as_reference(src, ts, ref=ref)


def test_an_ensemble_member_without_weight_has_no_influence_even_where_it_is_not_finite():
    """Where a member's weight and its rate are 0 (before its ramp-in, after its ramp-out) it adds nothing, as
    in the scalar ``eval`` (which skips it): not even a NaN from a chunk whose values are not finite."""
    good = ChunkSpline(0.0, 0.125, _walk(30, 17))
    late = _walk(31, 9)
    late[2, 0] = np.nan  # a natural spline through a NaN knot is NaN everywhere
    bad = ChunkSpline(1.0, 0.125, late)
    src = EnsembleSource([EnsembleMember(good, 0.0, 0.0, good.end_s), EnsembleMember(bad, -0.3, 1.0, bad.end_s)],
                         0.25, 3)
    ts = np.linspace(0.0, 1.5, 25)  # the NaN member ramps in after 1.0 (then the plan is NaN, as in eval)
    _same_as_reference(src, ts, ref=_RowByRow(src))
    P, V = eval_pv_many(src, ts)
    assert np.isfinite(P[ts <= 1.0]).all() and np.isfinite(V[ts <= 1.0]).all()


def test_an_ensemble_fade_window_down_to_the_smallest_normal_float_raises_no_warning():
    """Any positive fade window is allowed on the batched path: a 3e-308 s window (its square underflows to 0,
    so the weights' second derivative is 0/0 and x/0, the rates overflow) gives, at every time inside the
    members' windows, the plan of the window-less ensemble, without floating-point warnings or errors (the scalar
    ``eval`` cannot divide by that square, so no covered time may fall back to it)."""
    w = 3e-308
    sp = ([ChunkSpline(-0.125, 0.125, _walk(40, 25))] + [ChunkSpline(-0.125, 0.125, _walk(41 + i, 17)) for i in range(3)]
          + [ChunkSpline(0.0, 0.125, _walk(44, 9))])
    lw = [0.0, -0.1, -0.2, -0.3, 0.0]
    tiny, ref = _ensemble(lw, w, sp), _ensemble(lw, 0.0, sp)
    ts = np.linspace(0.0625, 2.8125, 45) + 0.01  # inside, away from every window edge (after 1.875: one member)
    _same_as_reference(tiny, ts, ref=ref)
    # inside the last member's fade-in (x = 0.3 and 0.5 of the window): still no warning, finite positions
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P, _ = eval_pv_many(tiny, np.array([0.3 * w, 0.5 * w]))
    assert np.isfinite(P).all()


def test_an_ensemble_covered_only_by_very_light_members_raises_no_warning():
    """When the heaviest member has faded out and only members about e^-373 (1e-162) times lighter remain
    (their summed weight squared underflows to 0 while the weights' rates do not), the plan follows them as
    ``eval`` does, without floating-point warnings."""
    sp = [ChunkSpline(0.0, 0.125, _walk(50, 9)), ChunkSpline(0.75, 0.125, _walk(51, 17)),
          ChunkSpline(1.375, 0.125, _walk(52, 9))]
    for gap in (370.0, 372.0, 373.0, 374.0, 376.0, 400.0):
        src = _ensemble([0.0, -gap, -gap], 0.25, sp)
        ts = np.linspace(0.0, 2.5, 161)  # 1.375..1.625: the third ramps in while the second is fully in
        _same_as_reference(src, ts)


def test_times_far_outside_a_chunk_hold_its_extrapolated_ends_without_warnings():
    """At times any distance from a chunk (±1e300 s, ±inf) the batched path returns the held extrapolated end
    (velocity 0), as ``eval`` does, without floating-point warnings."""
    s = ChunkSpline(0.0, 0.125, _walk(60, 9))
    ts = np.array([-np.inf, -1e300, -1e6, 0.5, 1e6, 1e300, np.inf])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P, V = eval_pv_many(s, ts)
    for k, t in enumerate(ts):
        p, v, _ = s.eval(float(t))
        np.testing.assert_allclose(P[k], p, rtol=0, atol=1e-12)
        np.testing.assert_allclose(V[k], v, rtol=0, atol=1e-11)
    assert not V[[0, 1, 2, 4, 5, 6]].any()


def test_the_batch_cache_keeps_the_four_most_recent_plans_and_releases_older_chunks():
    """The batched path keeps the constants of the few most recently built plans (a tick and its prefix share
    one), and no more: a chunk that is no longer in any of the last four plans is released (memory stays
    bounded over a long run)."""
    refs = []
    for i in range(5):
        plan = BlendSource(ChunkSpline(0.0, 0.125, _walk(70 + i, 9)), ChunkSpline(0.25, 0.125, _walk(80 + i, 9)),
                           0.5, 0.25)
        eval_pv_many(plan, np.array([0.6]))  # inside the blend: one batch of both chunks
        refs.append(weakref.ref(plan.old))
        del plan
    gc.collect()
    alive = [r() is not None for r in refs]
    assert alive == [False, True, True, True, True]


def test_a_chunk_pieces_are_built_once_and_kept():
    """The per-chunk piece table (knot values of every cubic piece) is built once per chunk and reused by every
    batch containing it (the tick cost, issue 14), and equals the knots it is made of."""
    from fastwam_ros.control.plan import _segments

    a, b = ChunkSpline(0.0, 0.125, _walk(90, 5)), ChunkSpline(0.0, 0.125, _walk(91, 1))
    ga = _segments([a])
    assert _segments([a]) is ga
    np.testing.assert_array_equal(ga[:, 0], a.p[:-1])
    np.testing.assert_array_equal(ga[:, 3], a.m[1:])
    both = _segments([a, b])
    assert both.shape == (5, 4, 3)
    np.testing.assert_array_equal(both[:4], ga)


def test_a_summed_weight_of_exactly_1e_9_follows_the_heaviest_member():
    """The ensemble's "(almost) uncovered" rule is ``W <= 1e-9``, edge included: at a time where the members'
    summed weight is exactly 1e-9 the plan is the heaviest member alone (as in ``eval``), not the normalised
    average of the members that cover it."""
    import math

    c2 = math.exp(-40.0)
    lw1 = math.log(1e-9 - 0.5 * c2)  # the fully-in member weighs just under 1e-9; the fading one tops it up
    one, two = ChunkSpline(0.5, 0.125, np.ones((17, 3))), ChunkSpline(1.0, 0.125, 2 * np.ones((17, 3)))
    src = EnsembleSource([EnsembleMember(ChunkSpline(0.0, 0.125, np.zeros((3, 3))), 0.0, 0.0, 0.25),
                          EnsembleMember(one, lw1, 0.5, one.end_s), EnsembleMember(two, -40.0, 1.0, two.end_s)],
                         0.25, 3)
    lo, hi = 1.0, 1.25  # the fading member's ramp-in: the summed weight crosses 1e-9 in between
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if sum(src.weights_at(mid)) < 1e-9 else (lo, mid)
    t = lo
    for _ in range(64):
        t = float(np.nextafter(t, 0.0))
    hits = []
    for _ in range(128):
        if sum(src.weights_at(t)) == 1e-9:
            hits.append(t)
        t = float(np.nextafter(t, 2.0))
    assert hits, "no time with a summed weight of exactly 1e-9"
    ts = np.array(hits)
    P, V = eval_pv_many(src, ts)
    np.testing.assert_array_equal(P, np.ones((ts.size, 3)))
    np.testing.assert_array_equal(V, np.zeros((ts.size, 3)))
    _same_as_reference(src, ts, ref=_RowByRow(src), atol_p=0.0, atol_v=0.0)
