"""Proprio (state) vector from a JointState by configured joint names; order fixed by the config."""

from __future__ import annotations

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
    """End-effector pose → float32 [6]: position (m) then the rotation as an axis-angle vector (rad, axis ·
    angle, angle in [0, π]), the LIBERO-style proprio layout (the official evaluation builds it from
    robosuite's (x, y, z, w) quaternion; append the gripper joints to get its 8-dim state).

    ``quaternion_xyzw`` follows the ROS ``geometry_msgs/Quaternion`` order; it need not be normalised, but a
    zero or non-finite one is rejected (:class:`ProprioError` ``bad_pose``, naming ``frame``)."""
    from transforms3d.quaternions import quat2axangle

    p = np.asarray(position_m, dtype=np.float64).reshape(-1)
    q = np.asarray(quaternion_xyzw, dtype=np.float64).reshape(-1)
    if p.shape != (3,) or q.shape != (4,) or not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
        raise ProprioError("bad_pose", frame, f"pose of {frame!r} needs 3 finite positions and 4 finite "
                                              f"quaternion values, got {p.tolist()} / {q.tolist()}")
    norm = float(np.linalg.norm(q))
    if norm < 1e-9:
        raise ProprioError("bad_pose", frame, f"pose of {frame!r} has a zero quaternion")
    x, y, z, w = q / norm
    if w < 0:  # same rotation, angle kept in [0, pi]
        x, y, z, w = -x, -y, -z, -w
    axis, angle = quat2axangle([w, x, y, z])
    return np.concatenate([p, np.asarray(axis) * angle]).astype(np.float32)
