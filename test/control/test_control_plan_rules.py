"""The plan's rules one by one (mutation testing, issue 21): each test pins one rule of ``control/plan.py`` with
values computed independently (closed forms, finite differences, hand-written weights), fast enough to run once
per mutant. The controller executes what these sources return, so a wrong weight, window edge or derivative is
a wrong command."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastwam_ros.control.plan import (
    ChunkSpline,
    EnsembleMember,
    EnsembleSource,
    HoldSource,
    Source,
    cap_members,
)


def _s(x: float) -> float:
    """Quintic smoothstep written out independently (10x³ − 15x⁴ + 6x⁵ on [0, 1])."""
    x = min(max(x, 0.0), 1.0)
    return 10 * x ** 3 - 15 * x ** 4 + 6 * x ** 5


def _const(value: float, t0: float = 0.0, n: int = 11, dt: float = 0.1, j: int = 2) -> ChunkSpline:
    return ChunkSpline(t0, dt, np.full((n, j), value))


class _Line(Source):
    """A source with only ``eval``: p = t·[1, 2], v = [1, 2], a = 0 (exercises the default ``eval_many``)."""

    def eval(self, t):
        assert isinstance(t, float)
        return np.array([t, 2 * t]), np.array([1.0, 2.0]), np.zeros(2)


def test_the_default_eval_many_stacks_eval_row_by_row():
    ts = np.array([0.0, 0.25, 1.5])
    P, V, A = _Line().eval_many(ts)
    assert P.shape == V.shape == A.shape == (3, 2)
    np.testing.assert_array_equal(P, np.stack([ts, 2 * ts], axis=1))
    np.testing.assert_array_equal(V, np.tile([1.0, 2.0], (3, 1)))
    np.testing.assert_array_equal(A, np.zeros((3, 2)))


def test_hold_source_is_a_float64_copy_of_the_positions_at_rest():
    given = [1, 2, 3]  # integers in, radians (float64) out
    h = HoldSource(given)
    p, v, a = h.eval(0.3)
    assert p.dtype == np.float64 and p.tolist() == [1.0, 2.0, 3.0]
    assert v.tolist() == [0.0, 0.0, 0.0] and a.tolist() == [0.0, 0.0, 0.0]
    p[0] = 99.0  # the caller's copy: the hold does not move
    assert h.eval(0.4)[0].tolist() == [1.0, 2.0, 3.0]
    P, V, A = h.eval_many(np.array([0.0, 1.0]))
    assert P.dtype == np.float64 and P.tolist() == [[1.0, 2.0, 3.0]] * 2
    assert V.tolist() == A.tolist() == [[0.0, 0.0, 0.0]] * 2


@pytest.mark.parametrize("log_weight", [0.0, -40.0, 800.0])
def test_ensemble_without_fades_is_the_weighted_average_whatever_the_weight_scale(log_weight):
    """Blend window 0 (members switch at their windows' edges): inside both windows the plan is
    Σ e^{lwᵢ}·qᵢ / Σ e^{lwᵢ}. Only the weights' ratio may matter: log-weights grow with the stamp
    (−decay·(stamp − anchor)/dt: 900 after 30 s at decay −1, 30 Hz), so e^{−40}, e^{800} are normalised by
    the largest first, not underflowed (to "no member") or overflowed."""
    a, b = _const(0.0), _const(1.0)
    src = EnsembleSource([EnsembleMember(a, log_weight, 0.0, a.end_s),
                          EnsembleMember(b, log_weight - 1.0, 0.0, b.end_s)], 0.0, 2)
    want = math.exp(-1.0) / (1.0 + math.exp(-1.0))
    np.testing.assert_allclose(src.eval(0.5)[0], want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(src.eval_many(np.array([0.25, 0.5]))[0], want, rtol=0, atol=1e-12)
    assert src.weights_at(0.5) == pytest.approx([1.0, math.exp(-1.0)], rel=1e-12)


def test_ensemble_without_fades_counts_a_member_on_both_edges_of_its_window():
    """Window [start, end] is closed: at t == start and t == end the member is in the average."""
    early = _const(0.0, t0=0.0, n=11)  # window [0, 1]
    late = _const(1.0, t0=0.5, n=11)  # window [0.5, 1.5]
    src = EnsembleSource([EnsembleMember(early, 0.0, 0.0, 1.0), EnsembleMember(late, 0.0, 0.5, 1.5)], 0.0, 2)
    ts = np.array([0.25, 0.5, 1.0, 1.25])
    want = np.array([0.0, 0.5, 0.5, 1.0])  # late only from 0.5 on, early until 1.0 inclusive
    for k, t in enumerate(ts):
        np.testing.assert_allclose(src.eval(float(t))[0], want[k], rtol=0, atol=1e-12)
    np.testing.assert_allclose(src.eval_many(ts)[0], np.tile(want[:, None], (1, 2)), rtol=0, atol=1e-12)
    assert src.weights_at(0.5) == [1.0, 1.0] and src.weights_at(0.49) == [1.0, 0.0]


def test_ensemble_weights_are_the_fade_in_times_fade_out_products():
    """weights_at: e^{lw − max lw} · s((t − start)/w) · s((end + w − t)/w), each member unnormalised."""
    w = 0.2
    a, b = _const(0.0), _const(1.0)
    members = [EnsembleMember(a, -0.5, 0.0, 0.3), EnsembleMember(b, 0.25, 0.1, 1.0)]
    src = EnsembleSource(members, w, 2)
    for t in (0.05, 0.15, 0.25, 0.35, 0.45, 0.6):
        want = [math.exp(m.log_weight - 0.25) * _s((t - m.start_s) / w) * _s((m.end_s + w - t) / w) for m in members]
        assert src.weights_at(t) == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert EnsembleSource([], w, 2).weights_at(0.3) == []


@pytest.mark.parametrize("many", [False, True])
def test_ensemble_velocity_and_acceleration_are_the_derivatives_of_its_position(many):
    """Also where a short member fades in and out at once (both weight derivatives non-zero: the 2·a′·b′
    term of the weight's second derivative): v and a match central finite differences of p."""
    rng = np.random.default_rng(3)
    a = ChunkSpline(0.0, 0.05, np.cumsum(rng.normal(0, 0.1, size=(30, 2)), axis=0))
    b = ChunkSpline(0.3, 0.05, np.cumsum(rng.normal(0, 0.1, size=(3, 2)), axis=0))  # window [0.3, 0.4] < w
    src = EnsembleSource([EnsembleMember(a, 0.0, 0.0, a.end_s), EnsembleMember(b, 0.7, 0.3, b.end_s)], 0.25, 2)
    h = 1e-5

    def ev(t):
        if many:
            return tuple(x[0] for x in src.eval_many(np.array([t])))
        return src.eval(t)

    for t in (0.362, 0.417, 0.488, 0.571, 0.613):  # between the knots (the jerk jumps there)
        pm, pp = ev(t - h)[0], ev(t + h)[0]
        _, v, acc = ev(t)
        np.testing.assert_allclose(v, (pp - pm) / (2 * h), rtol=0, atol=1e-6)
        vm, vp = ev(t - h)[1], ev(t + h)[1]
        np.testing.assert_allclose(acc, (vp - vm) / (2 * h), rtol=1e-5, atol=1e-4)


def test_ensemble_times_are_evaluated_in_float64_whatever_their_dtype():
    rng = np.random.default_rng(5)
    a = ChunkSpline(0.0, 1 / 30, np.cumsum(rng.normal(size=(32, 2)), 0))
    b = ChunkSpline(0.3, 1 / 30, np.cumsum(rng.normal(size=(32, 2)), 0))
    src = EnsembleSource([EnsembleMember(a, 0.0, 0.0, a.end_s), EnsembleMember(b, -0.2, 0.3, b.end_s)], 0.2, 2)
    ts32 = np.linspace(0.05, 1.2, 23, dtype=np.float32)
    for x, y in zip(src.eval_many(ts32), src.eval_many(ts32.astype(np.float64))):
        np.testing.assert_array_equal(x, y)


def _members(weights_at_th, t_h=1.0):
    """Old members whose weight at ``t_h`` is 1 (window open) or 0 (not yet started); then the newest."""
    out = []
    for i, on in enumerate(weights_at_th):
        sp = _const(float(i))
        out.append(EnsembleMember(sp, 0.0, 0.0 if on else t_h + 0.5, 5.0))
    new = _const(99.0)
    out.append(EnsembleMember(new, -3.0, t_h + 0.5, 5.0))  # the newest weighs nothing at t_h: still kept
    return out


def test_cap_members_keeps_the_newest_and_the_heaviest_old_ones_in_order():
    members = _members([0, 1, 0, 1, 1, 0])
    kept = cap_members(members, 4, 1.0, 0.0, 2)
    assert [m.spline.p[0, 0] for m in kept] == [1.0, 3.0, 4.0, 99.0]
    # heaviest by weight at the hand-off, not by position in the list
    kept = cap_members(members, 3, 1.0, 0.0, 2)
    assert [m.spline.p[0, 0] for m in kept] == [1.0, 3.0, 99.0]
    assert cap_members(members, 7, 1.0, 0.0, 2) is members  # under the cap: untouched
    assert cap_members(members, 1, 1.0, 0.0, 2) == [members[-1]]
    # the member just before the newest is a candidate like the others
    kept = cap_members(_members([0, 1, 0, 1]), 3, 1.0, 0.0, 2)
    assert [m.spline.p[0, 0] for m in kept] == [1.0, 3.0, 99.0]


def test_cap_members_breaks_ties_towards_the_older_members():
    """Equal weights: the earlier members are kept (a stable order; the same plan on every machine)."""
    kept = cap_members(_members([0, 1, 1, 1, 1, 1, 1, 1]), 6, 1.0, 0.0, 2)
    assert [m.spline.p[0, 0] for m in kept] == [1.0, 2.0, 3.0, 4.0, 5.0, 99.0]


def test_an_empty_ensemble_is_zero_over_all_joints():
    src = EnsembleSource([], 0.2, 3)
    for x in src.eval(0.5):
        assert x.tolist() == [0.0, 0.0, 0.0]
    for x in src.eval_many(np.array([0.0, 0.5])):
        assert x.tolist() == [[0.0, 0.0, 0.0]] * 2


def test_an_ensemble_member_without_weight_does_not_hide_the_later_ones():
    """A member whose window has not opened (weight 0 at every time asked) is skipped, not the end of the sum."""
    later, now = _const(5.0, t0=2.0), _const(1.0, t0=0.0)
    src = EnsembleSource([EnsembleMember(later, 0.0, 2.0, later.end_s), EnsembleMember(now, 0.0, 0.0, now.end_s)],
                         0.1, 2)
    np.testing.assert_allclose(src.eval_many(np.array([0.5, 0.6]))[0], 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(src.eval(0.5)[0], 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("windows, want", [(((0.0, 4.5), (5.3, 9.0)), 2.0),  # the second one's start is nearer
                                           (((0.0, 4.8), (5.5, 9.0)), 1.0)])  # the first one's end is nearer
def test_between_windows_the_ensemble_follows_the_member_whose_window_is_nearest(windows, want):
    """No member covers t (total weight 0): the plan follows the member whose window edge is nearest in time."""
    members = [EnsembleMember(_const(float(i + 1), t0=s, n=2, dt=e - s), 0.0, s, e) for i, (s, e) in enumerate(windows)]
    src = EnsembleSource(members, 0.0, 2)
    assert src.eval(5.0)[0].tolist() == [want, want]
    assert src.eval_many(np.array([5.0]))[0].tolist() == [[want, want]]


def test_with_a_tiny_total_weight_the_ensemble_follows_the_heaviest_member():
    """0 < Σw ≤ 1e-9 (every member at the very edge of its fades): the heaviest member is followed — not the
    nearest window, not the one whose weight grows fastest, not the first in the list."""
    w, t = 0.01, 1.0
    y, x = 4e-4, 2e-4  # fade coordinates: weights 10y³ = 6.4e-10 (heaviest, fading out), 10x³ = 8e-11 (fading in)
    nearest = EnsembleMember(_const(7.0), 0.0, t + 1e-6, 9.0)  # opens 1 µs after t: weight 0, nearest edge
    fading_out = EnsembleMember(_const(1.0), 0.0, 0.0, t - w + y * w)
    fading_in = EnsembleMember(_const(2.0), 0.0, t - x * w, 9.0)
    src = EnsembleSource([nearest, fading_in, fading_out], w, 2)
    ws = src.weights_at(t)
    assert 0.0 < sum(ws) <= 1e-9 and max(ws) == ws[2]
    assert src.eval(t)[0].tolist() == [1.0, 1.0]
    assert src.eval_many(np.array([t]))[0].tolist() == [[1.0, 1.0]]


def _sources():
    """Every kind of plan the controller evaluates, with times on and around every edge."""
    from fastwam_ros.control.plan import BlendSource

    rng = np.random.default_rng(11)

    def walk(h, j=3, scale=0.3):
        return np.cumsum(rng.normal(0, scale, size=(h, j)), axis=0)

    a = ChunkSpline(0.0, 0.1, walk(12))  # natural, C2
    b = ChunkSpline(0.35, 0.1, walk(9), rng.normal(size=(9, 3)))  # Hermite
    c = ChunkSpline(0.6, 0.05, walk(2), rng.normal(size=(2, 3)))  # two knots with velocities
    one = ChunkSpline(0.7, 0.1, walk(1))  # a one-step chunk: a hold
    d = ChunkSpline(0.8, 0.1, walk(10))
    srcs = {
        "natural": a, "hermite": b, "two_knots": c, "one": one,
        "blend": BlendSource(a, b, 0.45, 0.2),
        "chain": BlendSource(BlendSource(BlendSource(a, b, 0.45, 0.2), c, 0.62, 0.05), d, 0.85, 0.3),
        "chain_w0": BlendSource(BlendSource(a, b, 0.45, 0.0), d, 0.85, 0.0),
        "chain_one": BlendSource(BlendSource(a, one, 0.72, 0.1), d, 0.85, 0.1),
    }
    for w in (0.0, 0.15):
        srcs[f"ensemble_w{w}"] = EnsembleSource(
            [EnsembleMember(s, -0.4 * i, s.t0 + 0.02, s.end_s) for i, s in enumerate((a, b, c, one, d))], w, 3)
    edges = [0.0, 0.1, 0.35, 0.45, 0.6, 0.62, 0.65, 0.67, 0.7, 0.72, 0.8, 0.82, 0.85, 1.1, 1.15, 1.7, 1.75]
    ts = np.sort(np.concatenate([edges, np.nextafter(edges, 9.0), np.nextafter(edges, -9.0),
                                 np.linspace(-0.8, 2.6, 137)]))
    return srcs, ts


@pytest.mark.parametrize("name", ["natural", "hermite", "two_knots", "one", "blend", "chain", "chain_w0",
                                  "chain_one", "ensemble_w0.0", "ensemble_w0.15"])
def test_the_fast_position_velocity_paths_equal_the_plan_everywhere(name):
    """``eval_pv`` / ``eval_pv_many`` (the tick's batched path) return what ``eval`` / ``eval_many`` return:
    positions and velocities at every time, knots, blend edges and extrapolation limits included."""
    from fastwam_ros.control.plan import eval_pv, eval_pv_many

    srcs, ts_all = _sources()
    src = srcs[name]
    # all times; after the first blends are over (the batched path skips what they hide); far after
    for ts in (ts_all, ts_all[ts_all > 0.66], ts_all[ts_all > 0.68], ts_all[ts_all > 1.2]):
        P, V, _ = src.eval_many(ts)
        Pf, Vf = eval_pv_many(src, ts)
        np.testing.assert_allclose(Pf, P, rtol=0, atol=1e-12)
        np.testing.assert_allclose(Vf, V, rtol=0, atol=1e-11)
        Po, none = eval_pv_many(src, ts, with_velocity=False)
        assert none is None
        np.testing.assert_allclose(Po, P, rtol=0, atol=1e-12)
    ts = ts_all
    ts32 = ts.astype(np.float32)  # times are evaluated in float64 whatever their dtype
    for x, y in zip(eval_pv_many(src, ts32), eval_pv_many(src, ts32.astype(np.float64))):
        np.testing.assert_array_equal(x, y)
    for t in ts[::3]:
        p, v, _ = src.eval(float(t))
        pf, vf = eval_pv(src, float(t))
        np.testing.assert_allclose(pf, p, rtol=0, atol=1e-12)
        np.testing.assert_allclose(vf, v, rtol=0, atol=1e-11)


def test_batched_splines_evaluate_only_the_pairs_asked_for():
    from fastwam_ros.control.plan import splines_pv_many

    srcs, ts = _sources()
    sp = [srcs["natural"], srcs["hermite"], srcs["one"]]
    need = np.zeros((3, ts.shape[0]), dtype=bool)
    need[0, ::2] = need[1, 1::3] = need[2, 5:9] = True
    P, V = splines_pv_many(sp, ts, need=need)
    for c, s in enumerate(sp):
        p, v, _ = s.eval_many(ts)
        np.testing.assert_allclose(P[c][need[c]], p[need[c]], rtol=0, atol=1e-12)
        np.testing.assert_allclose(V[c][need[c]], v[need[c]], rtol=0, atol=1e-11)
        assert not P[c][~need[c]].any() and not V[c][~need[c]].any()
    Po, none = splines_pv_many(sp, ts, need=need, with_velocity=False)
    assert none is None and np.array_equal(Po, P)


def test_a_zero_or_tiny_blend_window_raises_no_floating_point_warning():
    """blend_window_s = 0 is allowed (a switch at the hand-off), and so is any tiny positive window: the batched
    path divides by it (and cubes the quotient) under errstate, so a node running with warnings shown does not
    log a warning per tick."""
    import warnings

    from fastwam_ros.control.plan import BlendSource, eval_pv_many

    srcs, ts = _sources()
    a, b, d = srcs["natural"], srcs["hermite"], ChunkSpline(0.8, 0.1, np.ones((10, 3)))
    tiny = 1e-300
    chain = BlendSource(BlendSource(a, b, 0.45, tiny), d, 0.85, tiny)
    # (1e-150: below ~1e-162 the scalar ensemble's w² underflows to 0 and Python's float division raises)
    ens = EnsembleSource([EnsembleMember(s, 0.0, s.t0, s.end_s) for s in (a, b, d)], 1e-150, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for src in (srcs["chain_w0"], srcs["ensemble_w0.0"], chain, ens):
            eval_pv_many(src, ts)


def test_every_source_evaluates_times_in_float64_whatever_their_dtype():
    srcs, _ = _sources()
    ts32 = np.linspace(-0.2, 1.9, 41, dtype=np.float32)
    for name, src in srcs.items():
        for x, y in zip(src.eval_many(ts32), src.eval_many(ts32.astype(np.float64))):
            np.testing.assert_array_equal(x, y, err_msg=name)


def test_a_two_knot_hermite_spline_ends_on_its_last_knot():
    p = np.array([[0.0, 1.0], [0.5, -1.0]])
    v = np.array([[3.0, -2.0], [-1.0, 4.0]])
    s = ChunkSpline(0.0, 0.1, p, v)
    P, V, _ = s.eval_many(np.array([0.1, 0.2]))
    np.testing.assert_allclose(P[0], p[1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(V[0], v[1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(P[1], p[1] + 0.1 * v[1], rtol=0, atol=1e-15)  # then linear extrapolation


def test_a_chunk_extrapolates_half_a_second_past_its_ends_then_holds():
    p = np.array([[0.0], [0.1], [0.3]])
    s = ChunkSpline(1.0, 0.1, p, np.array([[1.0], [1.5], [2.0]]))
    for t, want_p, want_v in ((1.2 + 0.3, 0.3 + 2.0 * 0.3, 2.0), (1.2 + 0.5, 0.3 + 2.0 * 0.5, 0.0),
                              (1.2 + 2.0, 0.3 + 2.0 * 0.5, 0.0), (1.0 - 0.3, -0.3, 1.0), (1.0 - 3.0, -0.5, 0.0)):
        pe, ve, _ = s.eval(t)
        P, V, _ = s.eval_many(np.array([t]))
        assert pe[0] == pytest.approx(want_p, abs=1e-12) and ve[0] == want_v
        assert P[0, 0] == pytest.approx(want_p, abs=1e-12) and V[0, 0] == want_v


def test_chunk_spline_input_checks_name_the_problem():
    with pytest.raises(ValueError, match=r"positions: expected \[H>=1, J\], got shape \(0, 2\)"):
        ChunkSpline(0.0, 0.1, np.zeros((0, 2)))
    with pytest.raises(ValueError, match=r"positions: expected \[H>=1, J\], got shape \(3,\)"):
        ChunkSpline(0.0, 0.1, np.zeros(3))
    ChunkSpline(0.0, 0.1, np.zeros((3, 0)))  # no joints: nothing to plan, not an error
    for dt in (0.0, -0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="dt_s: expected > 0"):
            ChunkSpline(0.0, dt, np.zeros((3, 2)))


def test_chunk_velocities_are_used_in_float64_whatever_their_dtype():
    rng = np.random.default_rng(2)
    p = rng.normal(size=(6, 2))
    v = rng.normal(size=(6, 2)).astype(np.float32)
    a, b = ChunkSpline(0.0, 0.1, p, v), ChunkSpline(0.0, 0.1, p, v.astype(np.float64))
    ts = np.linspace(0.0, 0.5, 11)
    for x, y in zip(a.eval_many(ts), b.eval_many(ts)):
        np.testing.assert_array_equal(x, y)
