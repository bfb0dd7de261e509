"""Time-indexed plans built from action chunks.

A *source* maps an absolute time t (seconds) to position, velocity and acceleration arrays over all joints
(``eval(t) -> (p, v, a)``, each shape [J]). Sources compose:

* :class:`ChunkSpline` — one chunk: knots at ``t0 + k·dt``; a natural cubic spline (C2) through the
  positions, or a cubic Hermite spline (C1) when the chunk carries velocities. Outside its knots it extrapolates linearly (C2 for the
  natural spline) for up to ``extrapolate_s``, then holds; the controller never *executes* beyond the last
  knot (that is plan exhaustion), the extrapolation only feeds blends that straddle the end.
* :class:`HoldSource` — a constant position.
* :class:`BlendSource` — from ``old`` to ``new`` over ``[t_h, t_h + w]`` with a quintic smoothstep
  weight s (s, s', s'' vanish at both ends), so position, velocity and acceleration are continuous when
  both sources are: this is what makes ``splice`` seamless.
* :class:`EnsembleSource` — ACT-style weighted average of overlapping chunks with smooth ramp-in/out weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_FLOAT = np.float64


def smoothstep5(x: float) -> tuple[float, float, float]:
    """Quintic smoothstep s(x) = 10x³ − 15x⁴ + 6x⁵ on [0, 1] and its first two derivatives (per unit x)."""
    if x <= 0.0:
        return 0.0, 0.0, 0.0
    if x >= 1.0:
        return 1.0, 0.0, 0.0
    x2 = x * x
    return (x2 * x * (10.0 + x * (-15.0 + 6.0 * x)),
            30.0 * x2 * (1.0 - x) ** 2,
            60.0 * x * (1.0 - x) * (1.0 - 2.0 * x))


def smoothstep5_many(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`smoothstep5` over an array (the same arithmetic, element by element)."""
    x2 = x * x
    s = x2 * x * (10.0 + x * (-15.0 + 6.0 * x))
    ds = 30.0 * x2 * (1.0 - x) ** 2
    dds = 60.0 * x * (1.0 - x) * (1.0 - 2.0 * x)
    lo, hi = x <= 0.0, x >= 1.0
    return (np.where(lo, 0.0, np.where(hi, 1.0, s)), np.where(lo | hi, 0.0, ds), np.where(lo | hi, 0.0, dds))


def natural_spline_slopes(rhs: np.ndarray) -> np.ndarray:
    """Knot slopes·h of the natural cubic spline on a uniform grid: solves the tridiagonal system
    ``[2 1; 1 4 1; …; 1 2] · m = rhs`` (rhs [n ≥ 2, J]) by forward elimination and back substitution
    (Thomas algorithm: O(n·J) time, O(n·J) memory, no cached operator; the system is strictly
    diagonally dominant, so no pivoting is needed)."""
    n = rhs.shape[0]
    sup = np.empty(n)  # eliminated super-diagonal
    d = np.empty_like(rhs)
    sup[0] = 0.5
    d[0] = rhs[0] / 2.0
    for i in range(1, n):
        denom = (2.0 if i == n - 1 else 4.0) - sup[i - 1]
        sup[i] = 1.0 / denom
        d[i] = (rhs[i] - d[i - 1]) / denom
    m = d
    for i in range(n - 2, -1, -1):
        m[i] = d[i] - sup[i] * m[i + 1]
    return m


class Source:
    """Interface: ``eval(t_s) -> (positions, velocities, accelerations)`` over all joints;
    ``eval_many(ts)`` the same at K times at once ([K, J] each, row k equal to ``eval(ts[k])``)."""

    def eval(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError

    def eval_many(self, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = [self.eval(float(t)) for t in ts]
        return tuple(np.array([r[i] for r in rows]).reshape(len(rows), -1) for i in range(3))  # type: ignore


class HoldSource(Source):
    """Constant position (velocity and acceleration zero)."""

    def __init__(self, positions: np.ndarray) -> None:
        self.p = np.array(positions, dtype=_FLOAT)
        self._z = np.zeros_like(self.p)

    def eval(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.p.copy(), self._z.copy(), self._z.copy()

    def eval_many(self, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = len(ts)
        return np.tile(self.p, (k, 1)), np.zeros((k, self.p.size)), np.zeros((k, self.p.size))


class ChunkSpline(Source):
    """Cubic spline through a chunk's knots at ``t0_s + k·dt_s``, k = 0..H-1.

    positions: [H, J]; velocities: optional [H, J] (then Hermite, C1) else natural cubic spline (C2).
    """

    def __init__(self, t0_s: float, dt_s: float, positions: np.ndarray, velocities: np.ndarray | None = None,
                 extrapolate_s: float = 0.5):
        p = np.asarray(positions, dtype=_FLOAT)
        if p.ndim != 2 or p.shape[0] < 1:
            raise ValueError(f"positions: expected [H>=1, J], got shape {p.shape}")
        if not (dt_s > 0 and math.isfinite(dt_s)):
            raise ValueError(f"dt_s: expected > 0, got {dt_s}")
        self.t0 = float(t0_s)
        self.dt = float(dt_s)
        self.extrapolate_s = float(extrapolate_s)
        self.p = p
        self.n = p.shape[0]
        if velocities is not None:
            m = np.asarray(velocities, dtype=_FLOAT) * self.dt  # slopes per unit u
        elif self.n == 1:
            m = np.zeros_like(p)
        else:
            rhs = np.empty_like(p)
            rhs[0] = 3.0 * (p[1] - p[0])
            rhs[-1] = 3.0 * (p[-1] - p[-2])
            if self.n > 2:
                rhs[1:-1] = 3.0 * (p[2:] - p[:-2])
            m = natural_spline_slopes(rhs)
        self.m = m
        self._z = np.zeros(p.shape[1])

    @property
    def end_s(self) -> float:
        return self.t0 + (self.n - 1) * self.dt

    def eval(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = (t - self.t0) / self.dt
        if self.n == 1:
            return self.p[0].copy(), self._z.copy(), self._z.copy()
        if x <= 0.0 or x >= self.n - 1:
            # linear extrapolation (C2 for the natural spline, whose end accelerations are 0) for up to
            # ``extrapolate_s``, then a hold of the extrapolated point
            k = 0 if x <= 0.0 else self.n - 1
            v = self.m[k] / self.dt
            tau = min(max(t - (self.t0 + k * self.dt), -self.extrapolate_s), self.extrapolate_s)
            inside = abs(t - (self.t0 + k * self.dt)) < self.extrapolate_s
            return self.p[k] + v * tau, (v.copy() if inside else self._z.copy()), self._z.copy()
        return self._piece(x, with_acceleration=True)

    def _piece(self, x: float, *, with_acceleration: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The cubic Hermite piece at grid coordinate ``x`` (0 < x < n - 1): position, velocity and, when asked,
        acceleration (else None)."""
        k = min(int(math.floor(x)), self.n - 2)
        u = x - k
        p0, p1, m0, m1 = self.p[k], self.p[k + 1], self.m[k], self.m[k + 1]
        u2, u3 = u * u, u * u * u
        h00, h10, h01, h11 = 2 * u3 - 3 * u2 + 1, u3 - 2 * u2 + u, -2 * u3 + 3 * u2, u3 - u2
        d00, d10, d01, d11 = 6 * u2 - 6 * u, 3 * u2 - 4 * u + 1, -6 * u2 + 6 * u, 3 * u2 - 2 * u
        pos = h00 * p0 + h10 * m0 + h01 * p1 + h11 * m1
        vel = (d00 * p0 + d10 * m0 + d01 * p1 + d11 * m1) / self.dt
        if not with_acceleration:
            return pos, vel, None
        e00, e10, e01, e11 = 12 * u - 6, 6 * u - 4, -12 * u + 6, 6 * u - 2
        acc = (e00 * p0 + e10 * m0 + e01 * p1 + e11 * m1) / (self.dt * self.dt)
        return pos, vel, acc

    def eval_many(self, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ts = np.asarray(ts, dtype=_FLOAT)
        K, J = ts.shape[0], self.p.shape[1]
        if self.n == 1:
            return np.tile(self.p[0], (K, 1)), np.zeros((K, J)), np.zeros((K, J))
        x = (ts - self.t0) / self.dt
        out = (x <= 0.0) | (x >= self.n - 1)
        if not out.any():  # the usual case: every time between the knots
            return self._hermite(x)
        P, V, A = np.empty((K, J)), np.empty((K, J)), np.zeros((K, J))
        # some times outside the knots: linear extrapolation, then hold (as in eval)
        t = ts[out]
        k = np.where(x[out] <= 0.0, 0, self.n - 1)
        v = self.m[k] / self.dt
        knot = self.t0 + k * self.dt
        tau = np.minimum(np.maximum(t - knot, -self.extrapolate_s), self.extrapolate_s)
        inside = np.abs(t - knot) < self.extrapolate_s
        P[out] = self.p[k] + v * tau[:, None]
        V[out] = np.where(inside[:, None], v, 0.0)
        mid = ~out
        if mid.any():
            P[mid], V[mid], A[mid] = self._hermite(x[mid])
        return P, V, A

    def _hermite(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The cubic Hermite pieces at knot coordinates ``x`` (all strictly inside the knots), as in eval."""
        k = np.minimum(np.floor(x).astype(np.intp), self.n - 2)
        u = (x - k)[:, None]
        p0, p1, m0, m1 = self.p[k], self.p[k + 1], self.m[k], self.m[k + 1]
        u2, u3 = u * u, u * u * u
        h00, h10, h01, h11 = 2 * u3 - 3 * u2 + 1, u3 - 2 * u2 + u, -2 * u3 + 3 * u2, u3 - u2
        d00, d10, d01, d11 = 6 * u2 - 6 * u, 3 * u2 - 4 * u + 1, -6 * u2 + 6 * u, 3 * u2 - 2 * u
        e00, e10, e01, e11 = 12 * u - 6, 6 * u - 4, -12 * u + 6, 6 * u - 2
        return (h00 * p0 + h10 * m0 + h01 * p1 + h11 * m1,
                (d00 * p0 + d10 * m0 + d01 * p1 + d11 * m1) / self.dt,
                (e00 * p0 + e10 * m0 + e01 * p1 + e11 * m1) / (self.dt * self.dt))


class BlendSource(Source):
    """``old`` before ``t_h``, ``new`` after ``t_h + w``, quintic-smoothstep blend in between."""

    def __init__(self, old: Source, new: Source, t_h: float, w: float) -> None:
        self.old, self.new, self.t_h, self.w = old, new, float(t_h), float(w)

    def eval(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if t >= self.t_h + self.w:
            return self.new.eval(t)
        if t <= self.t_h:
            return self.old.eval(t)
        s, ds, dds = smoothstep5((t - self.t_h) / self.w)
        ds, dds = ds / self.w, dds / (self.w * self.w)
        po, vo, ao = self.old.eval(t)
        pn, vn, an = self.new.eval(t)
        dp, dv = pn - po, vn - vo
        return (po + s * dp,
                vo + s * dv + ds * dp,
                ao + s * (an - ao) + 2.0 * ds * dv + dds * dp)

    def eval_many(self, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ts = np.asarray(ts, dtype=_FLOAT)
        after = ts >= self.t_h + self.w
        before = ~after & (ts <= self.t_h)
        if after.all():
            return self.new.eval_many(ts)
        if before.all():
            return self.old.eval_many(ts)
        # each side is evaluated once, at every time it contributes to (a chain of blends stays O(depth))
        mid = ~(after | before)
        use_old, use_new = ~after, ~before
        po, vo, ao = self.old.eval_many(ts[use_old])
        pn, vn, an = self.new.eval_many(ts[use_new])
        out = tuple(np.empty((ts.shape[0], po.shape[1])) for _ in range(3))
        for i, (xo, xn) in enumerate(((po, pn), (vo, vn), (ao, an))):
            out[i][before] = xo[before[use_old]]
            out[i][after] = xn[after[use_new]]
        if mid.any():
            mo, mn = mid[use_old], mid[use_new]
            po, vo, ao, pn, vn, an = po[mo], vo[mo], ao[mo], pn[mn], vn[mn], an[mn]
            s, ds, dds = smoothstep5_many((ts[mid] - self.t_h) / self.w)
            ds, dds = (ds / self.w)[:, None], (dds / (self.w * self.w))[:, None]
            s = s[:, None]
            dp, dv = pn - po, vn - vo
            out[0][mid] = po + s * dp
            out[1][mid] = vo + s * dv + ds * dp
            out[2][mid] = ao + s * (an - ao) + 2.0 * ds * dv + dds * dp
        return out  # type: ignore[return-value]


def trim_blend(src: Source, max_chunks: int) -> Source:
    """Bound a chain of splice blends to ``max_chunks`` chunk sources: the newer side of each blend is one chunk,
    the older side the chain before it; past the bound the oldest chunks are dropped (the blend that fades
    them out is replaced by its newer side). Mutates the chain in place and returns its new head."""
    if not isinstance(src, BlendSource):
        return src
    if max_chunks <= 1:
        return trim_blend(src.new, max_chunks)
    src.old = trim_blend(src.old, max_chunks - 1)
    return src


@dataclass
class EnsembleMember:
    spline: ChunkSpline
    log_weight: float  # constant part of the weight (log), e.g. −decay·stamp/dt
    start_s: float  # ramp-in starts here (hand-off time)
    end_s: float  # the chunk's last knot; the ramp-out runs over [end_s, end_s + w]


class EnsembleSource(Source):
    """Weighted average Σ wᵢ(t)·qᵢ(t) / Σ wᵢ(t) of chunk splines (ACT temporal ensembling, made smooth).

    wᵢ(t) = exp(log_weightᵢ) · s((t − startᵢ)/w) · s((endᵢ + w − t)/w), s the quintic smoothstep, so members
    fade in after their hand-off and out after their last knot (following their linear extrapolation) instead
    of switching (which would be a seam jump). Fading out *after* the end keeps the sum of weights away from
    0 while a new member fades in, so the normalisation stays well conditioned.
    Weights are normalised; velocity and acceleration include the derivatives of the normalised weights.
    """

    def __init__(self, members: list[EnsembleMember], w: float, n_joints: int) -> None:
        self.members = list(members)
        self.w = float(w)
        self.n_joints = n_joints

    def _weight(self, m: EnsembleMember, t: float, base: float) -> tuple[float, float, float]:
        c = math.exp(m.log_weight - base)
        if self.w <= 0:
            inside = m.start_s <= t <= m.end_s
            return (c if inside else 0.0), 0.0, 0.0
        a, da, dda = smoothstep5((t - m.start_s) / self.w)
        b, db, ddb = smoothstep5((m.end_s + self.w - t) / self.w)
        da, dda = da / self.w, dda / self.w ** 2
        db, ddb = -db / self.w, ddb / self.w ** 2
        return c * a * b, c * (da * b + a * db), c * (dda * b + 2 * da * db + a * ddb)

    def _weights_many(self, m: EnsembleMember, ts: np.ndarray, base: float
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`_weight` at K times (same arithmetic)."""
        c = math.exp(m.log_weight - base)
        if self.w <= 0:
            inside = (m.start_s <= ts) & (ts <= m.end_s)
            z = np.zeros(ts.shape)
            return np.where(inside, c, 0.0), z, z.copy()
        a, da, dda = smoothstep5_many((ts - m.start_s) / self.w)
        b, db, ddb = smoothstep5_many((m.end_s + self.w - ts) / self.w)
        da, dda = da / self.w, dda / self.w ** 2
        db, ddb = -db / self.w, ddb / self.w ** 2
        return c * a * b, c * (da * b + a * db), c * (dda * b + 2 * da * db + a * ddb)

    def eval_many(self, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ts = np.asarray(ts, dtype=_FLOAT)
        K = ts.shape[0]
        if not self.members:
            z = np.zeros((K, self.n_joints))
            return z, z.copy(), z.copy()
        base = max(m.log_weight for m in self.members)
        ws = [self._weights_many(m, ts, base) for m in self.members]
        W, W1, W2 = np.zeros(K), np.zeros(K), np.zeros(K)
        for w0, w1, w2 in ws:  # summed in member order, as in eval
            W, W1, W2 = W + w0, W1 + w1, W2 + w2
        ok = W > 1e-9
        P, V, A = np.zeros((K, self.n_joints)), np.zeros((K, self.n_joints)), np.zeros((K, self.n_joints))
        if ok.any():
            Wk, W1k, W2k = W[ok][:, None], W1[ok][:, None], W2[ok][:, None]
            tk = ts[ok]
            for m, (w0, w1, w2) in zip(self.members, ws):
                w0, w1, w2 = w0[ok][:, None], w1[ok][:, None], w2[ok][:, None]
                if not (w0.any() or w1.any() or w2.any()):
                    continue
                u = w0 / Wk
                du = (w1 * Wk - w0 * W1k) / Wk ** 2
                ddu = (w2 - u * W2k) / Wk - 2 * du * W1k / Wk  # (see eval)
                p, v, a = m.spline.eval_many(tk)
                P[ok] += u * p
                V[ok] += du * p + u * v
                A[ok] += ddu * p + 2 * du * v + u * a
        for r in np.flatnonzero(~ok):  # (almost) no member covers t: as in eval
            P[r], V[r], A[r] = self.eval(float(ts[r]))
        return P, V, A

    def weights_at(self, t: float) -> list[float]:
        """Each member's (unnormalised) weight at ``t``."""
        if not self.members:
            return []
        base = max(m.log_weight for m in self.members)
        return [self._weight(m, t, base)[0] for m in self.members]

    def eval(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.members:
            z = np.zeros(self.n_joints)
            return z, z.copy(), z.copy()
        base = max(m.log_weight for m in self.members)
        ws = [self._weight(m, t, base) for m in self.members]
        W = sum(w[0] for w in ws)
        if W <= 1e-9:
            # (almost) no member covers t: follow the heaviest one, or the one whose window is nearest
            if W > 0.0:
                best = self.members[int(np.argmax([w[0] for w in ws]))]
            else:
                best = min(self.members, key=lambda m: min(abs(t - m.start_s), abs(t - m.end_s)))
            return best.spline.eval(t)
        W1 = sum(w[1] for w in ws)
        W2 = sum(w[2] for w in ws)
        P = np.zeros(self.n_joints)
        V = np.zeros(self.n_joints)
        A = np.zeros(self.n_joints)
        for m, (w0, w1, w2) in zip(self.members, ws):
            if w0 == 0.0 and w1 == 0.0 and w2 == 0.0:
                continue
            u = w0 / W
            du = (w1 * W - w0 * W1) / W ** 2
            # u'' = (w'' - u·W'')/W - 2·u'·W'/W: the expanded form (w''/W - 2w'W'/W² - wW''/W² + 2wW'²/W³)
            # cancels terms of size (W'/W)² that grow without bound at a fade's edge (W -> 0)
            ddu = (w2 - u * W2) / W - 2 * du * W1 / W
            p, v, a = m.spline.eval(t)
            P += u * p
            V += du * p + u * v
            A += ddu * p + 2 * du * v + u * a
        return P, V, A


def cap_members(members: list[EnsembleMember], cap: int, t_h: float, w: float, n_joints: int
                 ) -> list[EnsembleMember]:
    """At most ``cap`` ensemble members: drop (never the newest, last in the list) those with the smallest
    weight at the hand-off ``t_h`` (the least influence on the plan there)."""
    if len(members) <= cap:
        return members
    old, new = members[:-1], members[-1]
    weights = EnsembleSource(old, w, n_joints).weights_at(t_h)
    keep = sorted(np.argsort(-np.asarray(weights), kind="stable")[: cap - 1])
    return [old[i] for i in keep] + [new]


# ---------------------------------------------------------------------------------------------------------------
# Batched evaluation (issue 14: the tick cost in trajectory mode). A splice chain or an ensemble is evaluated with
# all of its chunk splines at all K times in one gather, instead of source by source; every element is computed
# with the same operations, in the same order, as ``eval_many`` (which stays the reference implementation).


class _SplineBatch:
    """C chunk splines' constants as arrays (knot grids, offsets into the concatenated knots and pieces), built
    once per distinct list of splines (a plan changes only when a chunk arrives)."""

    def __init__(self, splines: list[ChunkSpline]) -> None:
        self.splines = splines
        C = len(splines)
        self.C, self.J = C, splines[0].p.shape[1]
        self.n = np.array([s.n for s in splines], dtype=np.intp)
        self.off = np.zeros(C, dtype=np.intp)
        np.cumsum(self.n[:-1], out=self.off[1:])
        self.seg_off = np.zeros(C, dtype=np.intp)
        np.cumsum(np.maximum(self.n[:-1] - 1, 1), out=self.seg_off[1:])
        self.t0 = np.array([s.t0 for s in splines])
        self.dt = np.array([s.dt for s in splines])
        self.ext = np.array([s.extrapolate_s for s in splines])
        self.G = _segments(splines)
        self.n1, self.n2 = self.n - 1, self.n - 2
        self.any_one = bool((self.n == 1).any())
        # the same as [C, 1] columns (against [1, K] times)
        self.t0c, self.dtc, self.extc = self.t0[:, None], self.dt[:, None], self.ext[:, None]
        self.n1c, self.n2c, self.offc, self.soffc = (self.n1[:, None], self.n2[:, None], self.off[:, None],
                                                     self.seg_off[:, None])
        self._pm: tuple[np.ndarray, np.ndarray] | None = None

    def knots(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions, slopes) of every knot, concatenated (for the extrapolation)."""
        if self._pm is None:
            self._pm = (np.concatenate([s.p for s in self.splines]), np.concatenate([s.m for s in self.splines]))
        return self._pm


_BATCHES: list[_SplineBatch] = []  # the few most recently used (a tick and its prefix share one)


def _batch(splines: list[ChunkSpline]) -> _SplineBatch:
    for b in _BATCHES:
        if len(b.splines) == len(splines) and all(x is y for x, y in zip(b.splines, splines)):
            return b
    b = _SplineBatch(splines)
    _BATCHES.insert(0, b)
    del _BATCHES[4:]
    return b


def splines_pv_many(splines: list[ChunkSpline], ts: np.ndarray, need: np.ndarray | None = None,
                    with_velocity: bool = True, velocity_rows: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """Positions and velocities of C chunk splines at K times: [C, K, J] each, ``[c, k]`` equal to
    ``splines[c].eval_many(ts)[:2]`` row k (the same arithmetic element by element). ``need`` [C, K] (bool):
    evaluate only those pairs (the others are 0). ``with_velocity=False``: positions only (velocities None).
    ``velocity_rows``: velocities only at the first that many times (velocities [C, velocity_rows, J])."""
    B = _batch(splines)
    C, K, J = B.C, ts.shape[0], B.J
    if need is None:  # every pair: [C, 1] constants against [1, K] times
        ci = ki = None
        t, t0, dt, ext, n1, n2, off, soff = ts[None, :], B.t0c, B.dtc, B.extc, B.n1c, B.n2c, B.offc, B.soffc
    else:
        ci, ki = np.nonzero(need)
        t, t0, dt, ext, n1, n2, off, soff = (ts[ki], B.t0[ci], B.dt[ci], B.ext[ci], B.n1[ci], B.n2[ci], B.off[ci],
                                             B.seg_off[ci])
    V = None
    # the pairs whose velocity is wanted (all, or those at the first velocity_rows times)
    nv = _velocity_rows(K, velocity_rows, with_velocity)
    vs = slice(None) if nv == K else (np.s_[:, :nv] if ki is None else ki < nv)
    with np.errstate(invalid="ignore", over="ignore"):
        x = (t - t0) / dt
        out = (x <= 0.0) | (x >= n1)
        # the cubic pieces (pairs outside the knots get a valid index and are replaced below): the knot values
        # (p_k, m_k, p_k+1, m_k+1) of every piece gathered at once, weighted by the Hermite basis with the
        # same operations as ChunkSpline (the basis as coefficient rows: 2·u³ + (−3)·u² + 0·u + 1 = 2u³ − 3u² + 1
        # exactly; the four products summed in order)
        k = np.maximum(np.minimum(np.floor(x).astype(np.intp), n2), 0)
        G = B.G[soff + k]  # [..., 4, J]
        u = (x - k)[..., None]
        u2, u3 = u * u, u * u * u
        H = _H3 * u3 + _H2 * u2 + _H1 * u + _H0  # [..., 4]
        P = _sum4(H[..., None] * G)
        if with_velocity:
            D = _D2 * u2[vs] + _D1 * u[vs] + _D0
            V = _sum4(D[..., None] * G[vs]) / dt[vs][..., None]
        if out.any():  # linear extrapolation, then hold (as in ChunkSpline.eval_many)
            Pc, Mc = B.knots()
            ke = np.where(x <= 0.0, 0, n1)
            ge = off + ke
            v = Mc[ge] / dt[..., None]
            knot = t0 + ke * dt
            tau = np.minimum(np.maximum(t - knot, -ext), ext)
            o = out[..., None]
            P = np.where(o, Pc[ge] + v * tau[..., None], P)
            if with_velocity:
                inside = np.abs(t[vs] - knot[vs]) < ext[vs]
                V = np.where(o[vs], np.where(inside[..., None], v[vs], 0.0), V)
        if B.any_one:  # a one-step chunk is a hold of its only knot
            one = np.broadcast_to(n1 == 0, x.shape)
            P[one] = np.broadcast_to(B.knots()[0][off], x.shape + (J,))[one]
            if with_velocity:
                V[one[vs]] = 0.0  # type: ignore[index]
    if need is None:
        return P, V
    Pa = np.zeros((C, K, J))
    Pa[ci, ki] = P
    if not with_velocity:
        return Pa, None
    Va = np.zeros((C, nv, J))
    Va[ci[vs], ki[vs]] = V
    return Pa, Va


# Hermite basis h00, h10, h01, h11 = 2u³−3u²+1, u³−2u²+u, −2u³+3u², u³−u² and its derivative
# d00, d10, d01, d11 = 6u²−6u, 3u²−4u+1, −6u²+6u, 3u²−2u as coefficient rows (see splines_pv_many)
_H3, _H2, _H1, _H0 = (np.array(c, dtype=_FLOAT) for c in ([2, 1, -2, 1], [-3, -2, 3, -1], [0, 1, 0, 0], [1, 0, 0, 0]))
_D2, _D1, _D0 = (np.array(c, dtype=_FLOAT) for c in ([6, 3, -6, 3], [-6, -4, 6, -2], [0, 1, 0, 0]))


def _sum4(T: np.ndarray) -> np.ndarray:
    """T[..., 0, :] + T[..., 1, :] + T[..., 2, :] + T[..., 3, :], added left to right (as the scalar code does)."""
    out = T[..., 0, :] + T[..., 1, :]
    out += T[..., 2, :]
    out += T[..., 3, :]
    return out


def _segments(splines: list[ChunkSpline]) -> np.ndarray:
    """The pieces of C splines, concatenated: [Σ(n_c − 1) (at least 1 each), 4, J] rows (p_k, m_k, p_k+1, m_k+1);
    each spline's rows are computed once and kept on it."""
    segs = []
    for s in splines:
        seg = s.__dict__.get("_segments")
        if seg is None:
            if s.n >= 2:
                seg = np.stack([s.p[:-1], s.m[:-1], s.p[1:], s.m[1:]], axis=1)
            else:  # a one-step chunk: one (unused) piece keeps the indexing uniform
                seg = np.stack([s.p, s.m, s.p, s.m], axis=1)
            s.__dict__["_segments"] = seg
        segs.append(seg)
    return segs[0] if len(segs) == 1 else np.concatenate(segs)


def _splice_chain(src: Source) -> tuple[ChunkSpline, list[BlendSource]] | None:
    """(oldest chunk, blends oldest first) of a chain of splice blends whose sides are chunk splines; else None."""
    blends: list[BlendSource] = []
    while isinstance(src, BlendSource):
        if not isinstance(src.new, ChunkSpline):
            return None
        blends.append(src)
        src = src.old
    if not isinstance(src, ChunkSpline):
        return None
    return src, blends[::-1]


def _velocity_rows(K: int, velocity_rows: int | None, with_velocity: bool) -> int:
    """How many of K times (the first ones) need velocities: ``velocity_rows`` clipped to [0, K]; all K when it
    is None or when no velocity is asked (nothing then depends on it)."""
    return K if velocity_rows is None or not with_velocity else min(K, max(0, int(velocity_rows)))


def eval_pv_many(src: Source, ts: np.ndarray, with_velocity: bool = True, velocity_rows: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """Positions and velocities of ``src`` at K times ([K, J] each), equal element for element to
    ``src.eval_many(ts)[:2]``; splice chains and ensembles of chunk splines take the batched path.
    ``with_velocity=False``: positions only (velocities None). ``velocity_rows``: only the first that many
    times' velocities are wanted (the rows after them are not velocities: left 0 where that saves work)."""
    ts = np.asarray(ts, dtype=_FLOAT)
    if isinstance(src, EnsembleSource) and src.members:
        return _ensemble_pv_many(src, ts, with_velocity, velocity_rows)
    chain = _splice_chain(src) if isinstance(src, (BlendSource, ChunkSpline)) else None
    if chain is None:
        p, v, _ = src.eval_many(ts)
        return p, (v if with_velocity else None)
    base, blends = chain
    K = ts.shape[0]
    nv = _velocity_rows(K, velocity_rows, with_velocity)
    if not blends:
        P, V = splines_pv_many([base], ts, with_velocity=with_velocity)
        return P[0], (None if V is None else V[0])
    t_h = np.array([b.t_h for b in blends])[:, None]
    w = np.array([b.w for b in blends])[:, None]
    AFTER = ts[None, :] >= t_h + w  # [L, K]: blend over (the newer side alone)
    # a blend that is over at every time hides everything older: start from the newest such
    over = np.flatnonzero(AFTER.all(axis=1))
    if over.size:
        i = int(over[-1])
        base, blends, t_h, w, AFTER = blends[i].new, blends[i + 1:], t_h[i + 1:], w[i + 1:], AFTER[i + 1:]
        if not blends:
            P, V = splines_pv_many([base], ts, with_velocity=with_velocity)  # type: ignore[list-item]
            return P[0], (None if V is None else V[0])
    late = AFTER[-1]  # after the newest blend: the newest chunk alone (a long plan: most of the times)
    if late.any():
        J = base.p.shape[1]
        P, V = np.empty((K, J)), (np.empty((K, J)) if with_velocity else None)
        pl, vl = splines_pv_many([blends[-1].new], ts[late], with_velocity=with_velocity)  # type: ignore[list-item]
        early = ~late
        # the early times' velocities wanted: those among the first nv times (the first of the early times)
        nve = int(np.count_nonzero(early[:nv]))
        pe, ve = _chain_pv_many(base, blends, ts[early], t_h, w, with_velocity,  # type: ignore[arg-type]
                                velocity_rows=nve)
        P[late], P[early] = pl[0], pe
        if V is not None:
            V[late], V[early] = vl[0], ve  # type: ignore[index]
        return P, V
    return _chain_pv_many(base, blends, ts, t_h, w, with_velocity, velocity_rows=nv)  # type: ignore[arg-type]


def _chain_pv_many(base: ChunkSpline, blends: list[BlendSource], ts: np.ndarray, t_h: np.ndarray, w: np.ndarray,
                   with_velocity: bool = True, velocity_rows: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """A splice chain (oldest chunk, blends oldest first, their hand-offs and windows [L, 1]) at K times, all of
    its splines gathered at once; ``velocity_rows``: velocities only at the first that many times (the other
    rows 0)."""
    K = ts.shape[0]
    nv = _velocity_rows(K, velocity_rows, with_velocity)
    P, V = splines_pv_many([base] + [b.new for b in blends], ts,  # type: ignore[list-item]
                           with_velocity=with_velocity, velocity_rows=nv)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        AFTER = ts[None, :] >= t_h + w
        BEFORE = ~AFTER & (ts[None, :] <= t_h)
        S, DS, _ = smoothstep5_many((ts[None, :] - t_h) / w)  # every blend's weight at once
        DS = DS / w
        all_before, all_after = BEFORE.all(axis=1).tolist(), AFTER.all(axis=1).tolist()
        A3, B3, S3, DS3 = AFTER[:, :, None], BEFORE[:, :, None], S[:, :, None], DS[:, :, None]
        if V is not None and nv < K:  # positions at every time, velocities at the first nv: the same
            # operations as below, on the position rows and the first nv velocity rows apart
            p, v = P[0], V[0]
            for i in range(1, len(blends) + 1):
                if all_before[i - 1]:
                    continue
                pn, vn = P[i], V[i]
                if all_after[i - 1]:
                    p, v = pn, vn
                    continue
                dp, dv = pn - p, vn - v
                mv = v + S3[i - 1, :nv] * dv
                mv += DS3[i - 1, :nv] * dp[:nv]
                v = np.where(A3[i - 1, :nv], vn, np.where(B3[i - 1, :nv], v, mv))
                p = np.where(A3[i - 1], pn, np.where(B3[i - 1], p, p + S3[i - 1] * dp))
            Vk = np.zeros((K, P.shape[2]))
            Vk[:nv] = v
            return p, Vk
        # positions and velocities stacked ([2, K, J]): p + s·(pn − p) and v + s·(vn − v) in one operation each,
        # then + s'·(pn − p) on the velocity row (the same operations in the same order as BlendSource)
        PV = P[:, None] if V is None else np.stack([P, V], axis=1)
        pv = PV[0]
        for i in range(1, len(blends) + 1):
            if all_before[i - 1]:
                continue
            pvn = PV[i]
            if all_after[i - 1]:
                pv = pvn
                continue
            d = pvn - pv
            m = pv + S3[i - 1] * d
            if V is not None:
                m[1] += DS3[i - 1] * d[0]
            pv = np.where(A3[i - 1], pvn, np.where(B3[i - 1], pv, m))
    return pv[0], (None if V is None else pv[1])


def _ensemble_pv_many(src: EnsembleSource, ts: np.ndarray, with_velocity: bool = True,
                      velocity_rows: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """:meth:`EnsembleSource.eval_many` positions and velocities, the members' weights and splines evaluated at
    once (the same arithmetic per element as ``_weights_many`` and ``ChunkSpline.eval_many``); velocities only
    at the first ``velocity_rows`` times (the others 0) when given."""
    K = ts.shape[0]
    members = src.members
    base = max(m.log_weight for m in members)
    c = np.array([math.exp(m.log_weight - base) for m in members])[:, None]
    # (the weights and their rates: a tiny window makes them overflow; nothing here divides by 0 or makes a NaN)
    with np.errstate(over="ignore"):
        if src.w <= 0:
            start = np.array([m.start_s for m in members])[:, None]
            end = np.array([m.end_s for m in members])[:, None]
            W0 = np.where((start <= ts[None, :]) & (ts[None, :] <= end), c, 0.0)
            W1 = np.zeros_like(W0)
        else:
            start = np.array([m.start_s for m in members])[:, None]
            end = np.array([m.end_s for m in members])[:, None]
            a, da, _ = smoothstep5_many((ts[None, :] - start) / src.w)
            b, db, _ = smoothstep5_many((end + src.w - ts[None, :]) / src.w)
            da, db = da / src.w, -db / src.w
            W0 = c * a * b
            W1 = c * (da * b + a * db)
    W, Wd = np.zeros(K), np.zeros(K)
    for i in range(len(members)):  # summed in member order, as in eval
        W, Wd = W + W0[i], Wd + W1[i]
    ok = W > 1e-9
    P, V = np.zeros((K, src.n_joints)), np.zeros((K, src.n_joints))
    if ok.any():
        Wk, W1k = W[:, None], Wd[:, None]
        # a member whose weights are 0 at a time adds exactly 0 there: its spline is not evaluated there
        nv = _velocity_rows(K, velocity_rows, with_velocity)
        Ps, Vs = splines_pv_many([m.spline for m in members], ts, need=((W0 != 0.0) | (W1 != 0.0)) & ok,
                                 with_velocity=with_velocity, velocity_rows=nv)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            # every member's terms at once ([C, K, J]), then summed in member order (a member whose weights are
            # 0 at every covered time adds exact zeros there: its spline values are 0 where it is not needed)
            w0, w1 = W0[:, :, None], W1[:, :, None]
            U = w0 / Wk
            TP = U * Ps
            TV = None if Vs is None else \
                ((w1[:, :nv] * Wk[:nv] - w0[:, :nv] * W1k[:nv]) / Wk[:nv] ** 2) * Ps[:, :nv] + U[:, :nv] * Vs[:, :nv]
            for i in range(len(members)):
                P += TP[i]
                if TV is not None:
                    V[:nv] += TV[i]
    for r in np.flatnonzero(~ok):  # (almost) no member covers t: as in eval
        P[r], V[r], _ = src.eval(float(ts[r]))
    return P, (V if with_velocity else None)


def eval_pv(src: Source, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Position and velocity of ``src`` at ``t`` ([J] each), equal element for element to ``src.eval(t)[:2]``
    (the accelerations, which the tick does not use, are not computed for chunk splines and splice blends)."""
    if isinstance(src, ChunkSpline):
        x = (t - src.t0) / src.dt
        if src.n == 1 or x <= 0.0 or x >= src.n - 1:
            p, v, _ = src.eval(t)
            return p, v
        p, v, _ = src._piece(x, with_acceleration=False)
        return p, v
    if isinstance(src, BlendSource):
        if t >= src.t_h + src.w:
            return eval_pv(src.new, t)
        if t <= src.t_h:
            return eval_pv(src.old, t)
        s, ds, _ = smoothstep5((t - src.t_h) / src.w)
        ds = ds / src.w
        po, vo = eval_pv(src.old, t)
        pn, vn = eval_pv(src.new, t)
        dp, dv = pn - po, vn - vo
        return po + s * dp, vo + s * dv + ds * dp
    p, v, _ = src.eval(t)
    return p, v
