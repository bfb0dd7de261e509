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
        k = min(int(math.floor(x)), self.n - 2)
        u = x - k
        p0, p1, m0, m1 = self.p[k], self.p[k + 1], self.m[k], self.m[k + 1]
        u2, u3 = u * u, u * u * u
        h00, h10, h01, h11 = 2 * u3 - 3 * u2 + 1, u3 - 2 * u2 + u, -2 * u3 + 3 * u2, u3 - u2
        d00, d10, d01, d11 = 6 * u2 - 6 * u, 3 * u2 - 4 * u + 1, -6 * u2 + 6 * u, 3 * u2 - 2 * u
        e00, e10, e01, e11 = 12 * u - 6, 6 * u - 4, -12 * u + 6, 6 * u - 2
        pos = h00 * p0 + h10 * m0 + h01 * p1 + h11 * m1
        vel = (d00 * p0 + d10 * m0 + d01 * p1 + d11 * m1) / self.dt
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
                ddu = w2 / Wk - 2 * w1 * W1k / Wk ** 2 - w0 * W2k / Wk ** 2 + 2 * w0 * W1k ** 2 / Wk ** 3
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
            ddu = w2 / W - 2 * w1 * W1 / W ** 2 - w0 * W2 / W ** 2 + 2 * w0 * W1 ** 2 / W ** 3
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
