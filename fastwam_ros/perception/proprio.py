"""Proprio (state) vector from joint states by configured joint names; order fixed by the config.

:class:`ProprioAssembler` picks the configured joints out of one JointState message. :class:`JointStore` merges
joint states **per joint** from any number of publishers on the same topic (e.g. a ros2_control arm driver and a
separate gripper node): every joint's latest sample at or before a time, within a tolerance. Both apply the shared
rule of :mod:`fastwam_ros.joint_state` (no duplicate names, values finite and inside float32).
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from fastwam_ros.joint_state import check_joint_state, checked_float32

from .errors import ProprioError

__all__ = ["JointStore", "ProprioAssembler", "ProprioError", "assemble_proprio", "pose_proprio"]

_EPS_S = 1e-9  # 1 ns: inclusive tolerance despite float round-off of stamps


class ProprioAssembler:
    """Picks ``joint_names`` (in that order) out of JointState ``names``/``positions`` → float32 [P].

    The name → index map is cached per distinct ``names`` sequence (drivers publish the same order every time).
    Raises :class:`ProprioError`: ``missing_joint`` / ``nonfinite_joint`` / ``out_of_range_joint`` (with ``joint``
    set), ``duplicate_joint`` or ``bad_joint_state`` (names and positions of different lengths, non-numeric).
    """

    def __init__(self, joint_names: Sequence[str]):
        self.joint_names = tuple(joint_names)
        self._cached_names: tuple[str, ...] | None = None
        self._cached_index: np.ndarray | None = None

    def _index(self, names: tuple[str, ...]) -> np.ndarray:
        if names != self._cached_names:
            pos = {n: i for i, n in enumerate(names)}
            idx = []
            for j in self.joint_names:
                if j not in pos:
                    raise ProprioError("missing_joint", j, f"joint {j!r} not in the joint state")
                idx.append(pos[j])
            self._cached_names, self._cached_index = names, np.asarray(idx, np.intp)
        return self._cached_index

    def __call__(self, names: Sequence[str], positions: Any) -> np.ndarray:
        if not self.joint_names:
            return np.zeros(0, np.float32)
        names, pos = check_joint_state(names, positions)
        return checked_float32(pos[self._index(names)], self.joint_names)


def assemble_proprio(joint_names: Sequence[str], names: Sequence[str], positions: Any) -> np.ndarray:
    """One-shot form of :class:`ProprioAssembler`."""
    return ProprioAssembler(joint_names)(names, positions)


class _Group:
    """The messages of one publisher (one distinct ``names`` tuple): stamps sorted, positions of our joints."""

    __slots__ = ("stamps", "rows", "index", "take", "complete", "capacity")

    def __init__(self, index: np.ndarray, capacity: int):
        self.index = index  # [P] column of each configured joint in the message, -1 when absent
        self.take = np.maximum(index, 0)  # the columns a row is gathered from (absent joints: any, masked later)
        self.complete = bool((index >= 0).all())  # carries every configured joint
        self.capacity = capacity
        self.stamps: list[float] = []
        self.rows: list[np.ndarray] = []

    def insert(self, stamp_s: float, row: np.ndarray) -> tuple[bool, bool]:
        """(inserted, out_of_order); a duplicate stamp is refused."""
        i = bisect.bisect_left(self.stamps, stamp_s)
        if i < len(self.stamps) and self.stamps[i] == stamp_s:
            return False, False
        self.stamps.insert(i, stamp_s)
        self.rows.insert(i, row)
        if len(self.stamps) > self.capacity:
            del self.stamps[0], self.rows[0]
        return True, i < len(self.stamps) - 1


class JointStore:
    """Joint states merged per joint, from any number of publishers. Times in seconds.

    Messages are grouped by their ``names`` tuple (one group per publisher; at most ``max_groups``, the least
    recently fed one is dropped beyond that). :meth:`join` at time ``t`` takes, for every configured joint, the
    newest sample with stamp ≤ ``t`` among the groups that carry it, accepted when ``t − stamp ≤ tolerance_s``.
    Result: ``("ok", positions float64 [P], oldest stamp used)``, ``("gap", joint, None)`` when a joint has no
    usable sample but a newer one exists (nothing will arrive in between: each publisher is in order) or
    ``("wait", joint, None)``.
    """

    def __init__(self, joint_names: Sequence[str], tolerance_s: float, capacity: int = 256, max_groups: int = 8):
        self.joint_names = tuple(joint_names)
        self.tolerance_s = float(tolerance_s)
        self.capacity = int(capacity)
        self.max_groups = int(max_groups)
        self._groups: OrderedDict[tuple[str, ...], _Group] = OrderedDict()

    def add(self, stamp_s: float, names: Sequence[str], positions: Any) -> str:
        """Store one message (already passed :func:`check_joint_state`). Returns ``"ok"``, ``"out_of_order"``,
        ``"duplicate_stamp"`` or ``"unused"`` (it carries none of the configured joints)."""
        key = tuple(names)
        g = self._groups.get(key)
        if g is None:
            pos = {n: i for i, n in enumerate(key)}
            index = np.asarray([pos.get(j, -1) for j in self.joint_names], np.intp)
            if not (index >= 0).any():
                return "unused"
            g = self._groups[key] = _Group(index, self.capacity)
            while len(self._groups) > self.max_groups:
                self._groups.popitem(last=False)
        self._groups.move_to_end(key)
        row = np.asarray(positions, dtype=np.float64)[g.take]
        inserted, ooo = g.insert(float(stamp_s), row)
        if not inserted:
            return "duplicate_stamp"
        return "out_of_order" if ooo else "ok"

    def drop_group(self, names: Sequence[str]) -> None:
        """Forget one publisher's samples (its clock jumped)."""
        self._groups.pop(tuple(names), None)

    def clear(self) -> None:
        self._groups.clear()

    def __len__(self) -> int:
        return sum(len(g.stamps) for g in self._groups.values())

    def newest_per_joint(self) -> np.ndarray:
        """float64 [P]: each configured joint's newest sample stamp (s) over all publishers, -inf if none."""
        out = np.full(len(self.joint_names), -np.inf)
        for g in self._groups.values():
            if g.stamps:
                np.maximum(out, np.where(g.index >= 0, g.stamps[-1], -np.inf), out=out)
        return out

    def join(self, t: float) -> tuple[str, Any, float | None]:
        if len(self._groups) == 1:  # one publisher of every joint (the usual robot): its newest sample at t
            g = next(iter(self._groups.values()))
            if g.complete:
                i = bisect.bisect_right(g.stamps, t) - 1
                if i >= 0 and t - g.stamps[i] <= self.tolerance_s + _EPS_S:
                    return "ok", g.rows[i].copy(), float(g.stamps[i])
        n = len(self.joint_names)
        best_stamp = np.full(n, -np.inf)
        values = np.zeros(n, np.float64)
        newer = np.zeros(n, bool)  # some group carrying the joint has a sample newer than t
        for g in self._groups.values():
            has = g.index >= 0
            if g.stamps and g.stamps[-1] > t:
                newer |= has
            i = bisect.bisect_right(g.stamps, t) - 1
            if i < 0 or t - g.stamps[i] > self.tolerance_s + _EPS_S:
                continue
            take = has & (g.stamps[i] > best_stamp)
            best_stamp[take] = g.stamps[i]
            values[take] = g.rows[i][take]
        missing = ~np.isfinite(best_stamp)
        if missing.any():
            gap = missing & newer
            if gap.any():
                return "gap", self.joint_names[int(np.argmax(gap))], None
            return "wait", self.joint_names[int(np.argmax(missing))], None
        return "ok", values, float(best_stamp.min())


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
