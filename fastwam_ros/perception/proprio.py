"""Proprio (state) vector from a JointState by configured joint names; order fixed by the config."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import ProprioError

__all__ = ["ProprioAssembler", "ProprioError", "assemble_proprio", "pose_proprio"]


class ProprioAssembler:
    """Picks ``joint_names`` (in that order) out of JointState ``names``/``positions`` → float32 [P].

    The name → index map is cached per distinct ``names`` sequence (drivers publish the same order every time).
    Raises :class:`ProprioError`: ``missing_joint`` / ``nonfinite_joint`` (with ``joint`` set) or
    ``bad_joint_state`` (names and positions of different lengths, non-numeric positions).
    """

    def __init__(self, joint_names: Sequence[str]):
        self.joint_names = tuple(joint_names)
        self._cached_names: tuple[str, ...] | None = None
        self._cached_index: np.ndarray | None = None

    def _index(self, names: Sequence[str]) -> np.ndarray:
        key = tuple(names)
        if key != self._cached_names:
            pos = {}
            for i, n in enumerate(key):
                pos.setdefault(n, i)  # first occurrence wins
            idx = []
            for j in self.joint_names:
                if j not in pos:
                    raise ProprioError("missing_joint", j, f"joint {j!r} not in the joint state")
                idx.append(pos[j])
            self._cached_names, self._cached_index = key, np.asarray(idx, np.intp)
        return self._cached_index

    def __call__(self, names: Sequence[str], positions: Any) -> np.ndarray:
        if not self.joint_names:
            return np.zeros(0, np.float32)
        try:
            pos = np.asarray(positions, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ProprioError("bad_joint_state", None, "positions are not numbers") from None
        if names is None or len(names) != pos.size:
            n = None if names is None else len(names)
            raise ProprioError("bad_joint_state", None, f"{n} names but {pos.size} positions")
        vals = pos[self._index(names)]
        bad = ~np.isfinite(vals)
        if bad.any():
            j = self.joint_names[int(np.argmax(bad))]
            raise ProprioError("nonfinite_joint", j, f"joint {j!r} position is {vals[int(np.argmax(bad))]}")
        return vals.astype(np.float32)


def assemble_proprio(joint_names: Sequence[str], names: Sequence[str], positions: Any) -> np.ndarray:
    """One-shot form of :class:`ProprioAssembler`."""
    return ProprioAssembler(joint_names)(names, positions)


def pose_proprio(position_m: Any, quaternion_xyzw: Any, frame: str = "end_effector") -> np.ndarray:
    """End-effector pose → float32 [6]: position (m) then the rotation as an axis-angle vector (rad), the
    LIBERO proprio layout (append the two gripper finger positions to get its 8-dim state).

    The rotation follows robosuite's ``transform_utils.quat2axisangle``, which produced the LIBERO data and the
    official evaluation's state: with the unit quaternion (x, y, z, w), angle = 2·acos(w) (w clipped to
    [-1, 1]) and axis = (x, y, z) / sqrt(1 − w²), the zero vector when that denominator is 0. There is **no**
    sign flip for w < 0, so the angle lies in [0, 2π]: q and −q (the same rotation) give different vectors,
    e.g. (1, 0, 0, −0.02) → +3.18 rad about x, while (−1, 0, 0, 0.02) → −3.10 rad about x. LIBERO's
    end-effector quaternion sits near w ≈ 0, so this matters: pass the quaternion exactly as the robot
    reports it, without canonicalising its sign.

    ``quaternion_xyzw`` follows the ROS ``geometry_msgs/Quaternion`` order; it is normalised first (robosuite's
    is already unit), and a zero or non-finite one is rejected (:class:`ProprioError` ``bad_pose``, naming
    ``frame``)."""
    p = np.asarray(position_m, dtype=np.float64).reshape(-1)
    q = np.asarray(quaternion_xyzw, dtype=np.float64).reshape(-1)
    if p.shape != (3,) or q.shape != (4,) or not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
        raise ProprioError("bad_pose", frame, f"pose of {frame!r} needs 3 finite positions and 4 finite "
                                              f"quaternion values, got {p.tolist()} / {q.tolist()}")
    norm = float(np.linalg.norm(q))
    if norm < 1e-9:
        raise ProprioError("bad_pose", frame, f"pose of {frame!r} has a zero quaternion")
    q = q / norm
    w = min(max(float(q[3]), -1.0), 1.0)
    den = math.sqrt(1.0 - w * w)
    rotvec = np.zeros(3) if den == 0.0 else q[:3] * (2.0 * math.acos(w) / den)
    return np.concatenate([p, rotvec]).astype(np.float32)
