"""The one rule for reading a ``sensor_msgs/JointState`` (shared by perception and the controller).

* :func:`check_joint_state` -- the message's structure: names are non-empty strings, **no name appears twice**
  (a message with a duplicate is refused whole, never resolved first- or last-wins), and there are as many
  numeric positions as names. Returns the names and float64 positions.
* :func:`checked_float32` -- the values actually used: each must be finite **and inside the float32 range**
  (``|x| <= 3.4028235e38``; ``1e300`` would become ``inf`` when cast), else the joint is named.

Both raise :class:`JointStateError` (a ``ProprioError``, hence a ``ValueError`` with a short ``reason`` code and the offending ``joint``):
``bad_joint_state``, ``duplicate_joint``, ``nonfinite_joint``, ``out_of_range_joint``. Only NumPy is needed: the
perception pipeline and the controller (:mod:`fastwam_ros.control`) both import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fastwam_ros.errors import ProprioError

__all__ = ["FLOAT32_MAX", "JointStateError", "check_joint_state", "checked_float32"]

FLOAT32_MAX = float(np.finfo(np.float32).max)  # 3.4028235e38


class JointStateError(ProprioError):
    """A joint state breaks :mod:`fastwam_ros.joint_state`'s rule; ``reason`` and ``joint`` say how."""


def check_joint_state(names: Any, positions: Any) -> tuple[tuple[str, ...], np.ndarray]:
    """(names, float64 positions [N]) of one JointState message, or :class:`JointStateError`.

    Rejected: names that are not a sequence of non-empty strings, a duplicate name (``duplicate_joint``, naming
    it), positions that are not numbers or whose count differs from the names' (``bad_joint_state``). Values are
    NOT range-checked here (unused joints may hold anything); see :func:`checked_float32`.
    """
    if names is None or isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
        raise JointStateError("bad_joint_state", None, f"names must be a list of strings, got {type(names).__name__}")
    key = tuple(names)
    for n in key:
        if not isinstance(n, str) or not n:
            raise JointStateError("bad_joint_state", None, f"joint names must be non-empty strings, got {n!r}")
    if len(set(key)) != len(key):
        seen: set[str] = set()
        dup = next(n for n in key if n in seen or seen.add(n))
        raise JointStateError("duplicate_joint", dup, f"joint {dup!r} appears more than once in one message")
    try:
        pos = np.asarray(positions, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        raise JointStateError("bad_joint_state", None, "positions are not numbers") from None
    if pos.size != len(key):
        raise JointStateError("bad_joint_state", None, f"{len(key)} names but {pos.size} positions")
    return key, pos


def checked_float32(values: Any, names: Sequence[str]) -> np.ndarray:
    """``values`` (one per name in ``names``) as float32, or :class:`JointStateError` naming the first joint whose
    value is not finite (``nonfinite_joint``) or does not fit in float32 (``out_of_range_joint``)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if np.abs(v).max(initial=0.0) <= FLOAT32_MAX:  # every value finite and in range (NaN compares False)
        return v.astype(np.float32)
    bad = ~np.isfinite(v)
    if bad.any():
        i = int(np.argmax(bad))
        raise JointStateError("nonfinite_joint", names[i], f"joint {names[i]!r} position is {v[i]}")
    big = np.abs(v) > FLOAT32_MAX
    if big.any():
        i = int(np.argmax(big))
        raise JointStateError("out_of_range_joint", names[i],
                              f"joint {names[i]!r} position {v[i]:g} is outside the float32 range")
    return v.astype(np.float32)
