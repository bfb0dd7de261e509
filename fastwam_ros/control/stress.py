"""Random (optionally adversarial) chunk streams and a vectorised limit checker, shared by the property tests
and ``scripts/stress_controller.py``. Simulated time only; nothing here runs on a robot."""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import ControllerConfig
from .controller import Chunk, ChunkController
from .synthetic import bimanual_config_dict

_REL = 1e-9  # relative slack for float rounding in the consistency checks (not in the bounds)


def random_config(rng: np.random.Generator, mode: str) -> ControllerConfig:
    rate = float(rng.choice([50.0, 100.0, 250.0, 500.0]))
    d = bimanual_config_dict(arm_joints=2, control_rate_hz=rate, splice_mode=mode,
                             blend_window_s=float(rng.choice([0.0, 0.05, 0.3])),
                             handoff_margin_s=float(rng.uniform(1.0, 3.0) / rate),
                             enable_ramp_s=float(rng.choice([0.0, 0.2])),
                             hold_decel_fraction=float(rng.uniform(0.1, 1.0)),
                             stale_state_s=float(rng.uniform(0.05, 0.5)), stale_chunk_s=float(rng.uniform(0.3, 2.0)),
                             replace_execute_steps=int(rng.integers(1, 33)), trajectory_horizon_s=0.1,
                             trajectory_point_period_s=0.02, ensemble_decay=float(rng.uniform(-1, 1)))
    for g in d["groups"]:
        lo = float(rng.uniform(-3, 0))
        g["limits"] = {"lower": lo, "upper": lo + float(rng.uniform(0.05, 4)),
                       "max_velocity": float(rng.uniform(0.05, 4)), "max_acceleration": float(rng.uniform(0.2, 30))}
        if rng.random() < 0.3:
            g["limits"]["max_jerk"] = float(rng.uniform(10, 1000))
    if rng.random() < 0.3:  # a continuous joint (no position limits)
        d["groups"][0]["limits"].pop("lower")
        d["groups"][0]["limits"].pop("upper")
        d["joint_limits"] = {"left_joint2": {"lower": -1.0, "upper": 1.0}}
    return ControllerConfig.from_dict(d)


def _random_chunk(rng, cfg, now, last_stamp, adversarial):
    names = list(cfg.joint_names)
    J = len(names)
    H = int(rng.integers(1, 40))
    dt = float(rng.choice([1 / 30, 1 / 15, 0.01]))
    stamp = now - float(rng.uniform(0.0, 0.4))
    scale = float(rng.choice([0.01, 0.3, 3.0]))
    pos = rng.uniform(-2, 2, size=J) + np.cumsum(rng.normal(0, scale, size=(H, J)), axis=0)
    vel = rng.normal(0, 1, size=(H, J)) if rng.random() < 0.2 else None
    if rng.random() < 0.2:
        pos = pos * 100.0  # far outside every range
    if rng.random() < adversarial:
        kind = int(rng.integers(0, 11))
        if kind == 0:
            pos[rng.integers(0, H), rng.integers(0, J)] = np.nan
        elif kind == 1:
            pos[rng.integers(0, H), rng.integers(0, J)] = float(rng.choice([np.inf, -np.inf]))
        elif kind == 2:
            pos = pos[:, : J - 1]  # wrong joint count
        elif kind == 3:
            names = names[:-1] + ["mystery_joint"]
        elif kind == 4:
            stamp = last_stamp - float(rng.uniform(0, 0.1))  # out of order
        elif kind == 5:
            stamp = now + float(rng.uniform(0.5, 100))
        elif kind == 6:
            dt = float(rng.choice([0.0, -0.03, np.nan, 1e9]))
        elif kind == 7:
            pos = np.full((H, J), 1e300)
        elif kind == 8:
            perm = rng.permutation(J)
            names = [names[i] for i in perm]
            pos = pos[:, perm]
        elif kind == 9:
            stamp = float(rng.choice([np.nan, np.inf]))
        else:
            pos = pos.reshape(-1)
    return Chunk(stamp_s=stamp, step_period_s=dt, joint_names=names, positions=pos, velocities=vel,
                 chunk_id=int(rng.integers(0, 1000)))


_EVENT_CUTS = (0.15, 0.25, 0.30, 0.32, 0.33, 0.35)  # chunk, joint state, enable, disable, e-stop, reset; else ticks


def random_stream(seed: int, *, mode: str = "splice", adversarial: float = 0.2, n_events: int = 20,
                  with_trajectory: bool = False, chunk_share: float | None = None) -> dict[str, Any]:
    """Run one random stream; returns the recorded outputs (arrays [T, J], NaN where a group is invalid).

    chunk_share: the probability that an event is a chunk (default 0.15; the other kinds keep their proportions
    among the rest): a chunk-heavy stream submits more chunks per tick (a chunk flood)."""
    cuts = _EVENT_CUTS if chunk_share is None else tuple(
        chunk_share + (c - _EVENT_CUTS[0]) * (1.0 - chunk_share) / (1.0 - _EVENT_CUTS[0]) for c in _EVENT_CUTS)
    rng = np.random.default_rng(seed)
    cfg = random_config(rng, mode)
    ctl = ChunkController(cfg)
    names = cfg.joint_names
    J = len(names)
    t = float(rng.uniform(0, 1000))
    last_stamp = t
    rec = StreamRecorder(ctl)
    meas = rng.uniform(-4, 4, size=J)
    groups = [g.name for g in cfg.groups]
    for _ in range(n_events):
        r = rng.random()
        if r < cuts[0]:
            ch = _random_chunk(rng, cfg, t, last_stamp, adversarial)
            res = ctl.submit_chunk(ch, t)
            if res.accepted:
                last_stamp = ch.stamp_s
        elif r < cuts[1]:
            vals = meas + rng.normal(0, 0.01, size=J)
            if rng.random() < adversarial:
                vals[rng.integers(0, J)] = np.nan
            ctl.update_joint_state(t, names, vals, now_s=t)
        elif r < cuts[2]:
            ctl.enable(t, list(rng.choice(groups, size=int(rng.integers(1, 5)), replace=False)))
        elif r < cuts[3]:
            ctl.disable(t, list(rng.choice(groups, size=int(rng.integers(1, 5)), replace=False)))
        elif r < cuts[4]:
            ctl.estop(t)
        elif r < cuts[5]:
            ctl.reset(t)
        else:
            n = int(rng.integers(1, 4))
            for _k in range(n):
                u = rng.random()
                if u < 0.8:
                    step = cfg.period_s
                elif u < 0.9:
                    step = float(rng.uniform(0.0001, 0.3))
                else:
                    step = float(rng.choice([0.0, -0.01])) if rng.random() < adversarial else cfg.period_s
                t_new = t + step
                out = ctl.tick(t_new, with_trajectory=with_trajectory, with_prefix=with_trajectory)
                if step > 0:
                    t = t_new
                    p = rec.add(t, out)
                    # an "ideal robot": measured follows the command (sometimes), or the state goes stale
                    if rng.random() < 0.7:
                        fb = np.where(np.isfinite(p), p, meas)
                        ctl.update_joint_state(t, names, fb)
                        meas = fb
    return rec.result()


class StreamRecorder:
    """Collects a controller's outputs tick by tick into the arrays ``check_stream`` reads."""

    def __init__(self, ctl: ChunkController) -> None:
        self.ctl = ctl
        self.names = list(ctl.cfg.joint_names)
        self.P: list[np.ndarray] = []
        self.V: list[np.ndarray] = []
        self.A: list[np.ndarray] = []
        self.T: list[float] = []
        self.ANCH: list[np.ndarray] = []
        # per tick, per group that published one: (joint columns, positions, velocities, start time, times from start)
        self.TRAJ_TICK: list[list[tuple]] = []

    def add(self, t: float, out: Any) -> np.ndarray:
        """Record the output of a tick at ``t`` (s); returns its positions [J] (NaN where a group is invalid)."""
        J = len(self.names)
        p, v, a = np.full(J, np.nan), np.full(J, np.nan), np.full(J, np.nan)
        anch = np.zeros(J, dtype=bool)
        trajs = []
        for g in out.groups.values():
            idx = [self.names.index(j) for j in g.joint_names]
            if g.valid:
                p[idx], v[idx], a[idx] = g.positions, g.velocities, g.accelerations
                anch[idx] = g.anchored
                if g.trajectory is not None:
                    trajs.append((idx, g.trajectory.positions, g.trajectory.velocities, g.trajectory.start_stamp_s,
                                  g.trajectory.time_from_start_s))
        self.TRAJ_TICK.append(trajs)
        self.P.append(p)
        self.V.append(v)
        self.A.append(a)
        self.T.append(t)
        self.ANCH.append(anch)
        return p

    def result(self) -> dict[str, Any]:
        lim, J = self.ctl.lim, len(self.names)
        z = np.zeros((0, J))
        # every trajectory with its start relative to its tick (the lead)
        traj = [(idx, P, V, start - t, tfs) for t, tick in zip(self.T, self.TRAJ_TICK) for idx, P, V, start, tfs in tick]
        return {
            "p": np.array(self.P) if self.P else z, "v": np.array(self.V) if self.V else z,
            "a": np.array(self.A) if self.A else z, "t": np.array(self.T),
            "anchored": np.array(self.ANCH) if self.ANCH else z.astype(bool),
            "lower": lim.lower, "upper": lim.upper, "vmax": lim.max_velocity, "amax": lim.max_acceleration,
            "period": self.ctl.cfg.period_s, "traj": traj, "traj_tick": self.TRAJ_TICK,
            "tick_gap_s": self.ctl.cfg.tick_gap_s, "tick_gaps": self.ctl.metrics.tick_gaps,
            "trajectory_points": sum(len(x[1]) for x in traj),
            "chunks": self.ctl.metrics.chunks_accepted + sum(self.ctl.metrics.rejections.values()),
            "chunks_accepted": self.ctl.metrics.chunks_accepted,
        }


def finite_difference_motion(p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a robot sampling the commanded positions ``p`` [T, J] at times ``t`` [T] (s) sees:
    velocities between consecutive samples [T-1, J] (units/s), accelerations between consecutive velocity
    estimates [T-2, J] (units/s², second divided difference; exact for uneven spacing) and the rounding slack
    of those accelerations [T-2, J] (a few ulps of the positions divided by the spacing squared).

    For commands that integrate a velocity whose slope is bounded by a_max (the limiter's trapezoidal
    integration, a braking tail), |acceleration| ≤ a_max holds exactly; a command that stops in one tick
    at a position limit shows v/dt."""
    dt = np.diff(t)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        vel = np.diff(p, axis=0) / dt
        span = 0.5 * (dt[1:] + dt[:-1])
        acc = np.diff(vel, axis=0) / span
        mag = np.maximum(np.abs(p[2:]), np.maximum(np.abs(p[1:-1]), np.abs(p[:-2])))
        slack = 8.0 * np.finfo(np.float64).eps * np.maximum(mag, 1.0) / (np.minimum(dt[1:], dt[:-1]) * span)
    return vel, acc, slack


def _fd_violations(p: np.ndarray, t: np.ndarray, vmax: np.ndarray, amax: np.ndarray, ok: np.ndarray,
                   what: str) -> list[str]:
    """Finite-difference velocity/acceleration of positions ``p`` at times ``t`` beyond the limits, over the
    samples where ``ok`` [T-1, J] (the step from sample i to i+1 counts) holds."""
    out: list[str] = []
    if p.shape[0] < 2:
        return out
    vel, acc, slack = finite_difference_motion(p, t)
    dt = np.diff(t)[:, None]
    with np.errstate(invalid="ignore"):
        vslack = 8.0 * np.finfo(np.float64).eps * np.maximum(np.abs(p[1:]), 1.0) / dt
        if np.any(ok & (np.abs(vel) > vmax * (1 + _REL) + vslack)):
            out.append(f"{what}: finite-difference velocity beyond max_velocity")
        if acc.shape[0] and np.any(ok[1:] & ok[:-1] & (np.abs(acc) > amax * (1 + _REL) + slack)):
            out.append(f"{what}: finite-difference acceleration beyond max_acceleration")
    return out


def _gap_violations(rec: dict[str, Any], across: np.ndarray) -> list[str]:
    """The first command after each gap (``across`` [T-1, J]: valid pairs spanning a gap) against the robot's
    state then (see :func:`check_stream`)."""
    out: list[str] = []
    p, v, t, period = rec["p"], rec["v"], rec["t"], rec["period"]
    vmax, amax = rec["vmax"], rec["amax"]
    for k in np.flatnonzero(across.any(axis=1)):
        cols = across[k]
        held = np.ones(p.shape[1], dtype=bool)  # joints whose group published no trajectory at tick k
        for idx, P, _, start, tfs in rec["traj_tick"][k]:
            held[idx] = False
            knots_t = np.concatenate([[t[k]], start + np.asarray(tfs)])
            knots_p = np.vstack([p[k, idx], np.asarray(P)])
            at = t[k + 1] - period
            there = np.array([np.interp(at, knots_t, knots_p[:, j]) for j in range(len(idx))])
            # the cubic through the points and velocities (|v| <= vmax) differs from the polyline by at most
            # 2 * vmax * (4 / 27) per point spacing on either side
            h = np.max(np.diff(knots_t))
            slack = vmax[idx] * (period + 0.6 * h)
            if np.any(cols[idx] & (np.abs(p[k + 1, idx] - there) > slack * (1 + _REL) + 1e-12)):
                out.append("command after a gap away from where the last trajectory brought the robot")
        if np.any(cols & held & (np.abs(p[k + 1] - p[k]) > vmax * period * (1 + _REL) + 1e-12)):
            out.append("command after a gap moves more than one period at max_velocity from the held setpoint")
        if np.any(cols & held & (np.abs(v[k + 1]) > amax * period * (1 + _REL) + 1e-12)):
            out.append("velocity after a gap beyond one period of max_acceleration from rest")
    return out


def check_stream(rec: dict[str, Any]) -> list[str]:
    """All limit violations in a recorded stream (empty list: none).

    Besides the reported state (p, v, a), checks what the robot sees: velocity and acceleration derived from
    the commanded positions by finite differences at the tick times (through hold, e-stop, enable ramp and
    splices alike; only the re-anchoring step at an enable is exempt), and the same for every trajectory.

    A tick more than ``tick_gap_s`` after the previous one follows a gap (ticks stopped): meanwhile the robot
    held the last setpoint or, where the tick published a trajectory, ran that trajectory. The pair across a gap
    is checked against that state, as the robot sees it: with setpoints, the first command after the gap moves
    at most one period at the velocity limit from the held one and its velocity is at most one period of
    acceleration from rest; with trajectories, it is at most one period at the velocity limit from where the
    trajectory had brought the robot one period earlier (read off the trajectory's points by linear
    interpolation, with the slack a cubic through the same points and velocities can differ by). Finite
    differences are not taken across a gap (the robot stopped there, or ran the trajectory, whatever the
    controller does)."""
    out: list[str] = []
    p, v, a, t = rec["p"], rec["v"], rec["a"], rec["t"]
    lo, hi, vmax, amax = rec["lower"], rec["upper"], rec["vmax"], rec["amax"]
    if p.shape[0] == 0:
        return out
    valid = np.isfinite(p)
    if np.any(valid != np.isfinite(v)) or np.any(valid != np.isfinite(a)):
        out.append("non-finite velocity/acceleration where the position is valid")
    if np.any(np.isinf(p)):
        out.append("infinite position")
    with np.errstate(invalid="ignore"):
        if np.any(valid & ((p < lo) | (p > hi))):
            out.append("position outside [lower, upper]")
        if np.any(valid & (np.abs(v) > vmax)):
            out.append("|velocity| > max_velocity")
        if np.any(valid & (np.abs(a) > amax)):
            out.append("|acceleration| > max_acceleration")
        # consecutive ticks: the velocity change per tick respects the acceleration limit and the position
        # change the velocity limit (re-anchoring to the measured pose at enable is the documented exception)
        dt = np.diff(t)[:, None]
        gap = dt > rec["tick_gap_s"]  # [T-1, 1]: the pair spans a gap (the controller's test: strictly more)
        pair = valid[1:] & valid[:-1] & ~rec["anchored"][1:]
        dv = np.abs(np.diff(v, axis=0))
        dp = np.abs(np.diff(p, axis=0))
        if np.any(pair & ~gap & (dv > amax * dt * (1 + _REL) + 1e-12)):
            out.append("velocity jump beyond max_acceleration·dt")
        if np.any(pair & ~gap & (dp > vmax * dt * (1 + _REL) + 1e-12)):
            out.append("position jump beyond max_velocity·dt")
    out += _gap_violations(rec, pair & gap)
    out += _fd_violations(p, t, vmax, amax, pair & ~gap, "commanded positions")
    for idx, tp, tv, lead, tfs in rec["traj"]:
        if lead <= 0:
            out.append("trajectory start not in the future")
        if not (np.isfinite(tp).all() and np.isfinite(tv).all()):
            out.append("non-finite trajectory point")
        if np.any((tp < lo[idx]) | (tp > hi[idx])) or np.any(np.abs(tv) > vmax[idx]):
            out.append("trajectory point outside limits")
        if tv.shape[0] and np.any(tv[-1] != 0.0):
            out.append("trajectory does not end at rest")
        ok = np.ones((max(tp.shape[0] - 1, 0), tp.shape[1]), dtype=bool)
        out += _fd_violations(tp, tfs, vmax[idx], amax[idx], ok, "trajectory")
    return out
