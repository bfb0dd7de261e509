"""Synthetic robots and chunk streams for tests, the benchmark and the stress script (simulated time).

Nothing here is used at run time on a robot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .controller import Chunk


def bimanual_config_dict(arm_joints: int = 6, **overrides: Any) -> dict[str, Any]:
    """A two-arm config dict (left/right arm with ``arm_joints`` joints + one gripper each)."""
    arm = {"lower": -2.8, "upper": 2.8, "max_velocity": 2.0, "max_acceleration": 8.0}
    grip = {"lower": 0.0, "upper": 0.08, "max_velocity": 0.2, "max_acceleration": 2.0}
    groups = []
    for side in ("left", "right"):
        groups.append({"name": f"{side}_arm", "kind": "arm",
                       "joints": [f"{side}_joint{i + 1}" for i in range(arm_joints)], "limits": dict(arm)})
        groups.append({"name": f"{side}_gripper", "kind": "gripper", "joints": [f"{side}_gripper"],
                       "limits": dict(grip)})
    d: dict[str, Any] = {"groups": groups, "control_rate_hz": 100.0}
    d.update(overrides)
    return d


def smooth_motion(t: np.ndarray, n_joints: int, seed: int = 0, amplitude: float = 0.4,
                  gripper_cols: tuple[int, ...] = ()) -> np.ndarray:
    """A smooth "true" task trajectory q(t), [len(t), n_joints]: a few sinusoids per joint."""
    rng = np.random.default_rng(seed)
    f = rng.uniform(0.1, 0.5, size=(3, n_joints))
    ph = rng.uniform(0, 2 * np.pi, size=(3, n_joints))
    amp = amplitude * rng.uniform(0.3, 1.0, size=(3, n_joints)) / 3
    t = np.asarray(t, dtype=np.float64)[:, None]
    q = sum(amp[i] * np.sin(2 * np.pi * f[i] * t + ph[i]) for i in range(3))
    for c in gripper_cols:
        q[:, c] = 0.04 + 0.03 * np.sin(2 * np.pi * f[0, c] * t[:, 0] + ph[0, c])
    return q


@dataclass
class StreamEvent:
    arrival_s: float
    chunk: Chunk


def chunk_stream(joint_names: tuple[str, ...], duration_s: float, *, seed: int = 0, horizon: int = 32,
                 step_period_s: float = 1 / 30, latency_s: float = 0.19, jitter_s: float = 0.03,
                 every_steps: tuple[int, int] = (8, 24), disagreement: float = 0.01,
                 gripper_cols: tuple[int, ...] = ()) -> tuple[list[StreamEvent], Any]:
    """Chunks of a smooth motion: observation every 8–24 steps, arriving latency ± jitter later, each chunk
    the true motion plus a per-chunk smooth offset (consecutive chunks disagree by ~``disagreement``).

    Returns (events sorted by arrival, truth) where ``truth(t) -> [len(t), J]`` is the motion the chunks aim at.
    """
    rng = np.random.default_rng(seed)
    J = len(joint_names)

    def truth(t):
        return smooth_motion(np.atleast_1d(t), J, seed=seed, gripper_cols=gripper_cols)

    events: list[StreamEvent] = []
    stamp = 0.05
    cid = 0
    while stamp < duration_s:
        k = np.arange(horizon)
        ts = stamp + k * step_period_s
        offset = rng.normal(0, disagreement, size=J) + np.outer(k / horizon, rng.normal(0, disagreement, size=J))
        for c in gripper_cols:
            offset[..., c] *= 0.1
        pos = truth(ts) + offset
        arrival = stamp + max(0.02, latency_s + rng.uniform(-jitter_s, jitter_s))
        events.append(StreamEvent(arrival, Chunk(stamp_s=stamp, step_period_s=step_period_s,
                                                 joint_names=joint_names, positions=pos, chunk_id=cid)))
        cid += 1
        stamp += int(rng.integers(every_steps[0], every_steps[1] + 1)) * step_period_s
    events.sort(key=lambda e: e.arrival_s)
    return events, truth
