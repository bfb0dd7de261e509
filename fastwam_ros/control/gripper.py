"""Gripper command conventions: how a checkpoint's gripper action column becomes the command a robot expects.

``none``: the chunk's value is the command (RoboTwin: the gripper joint's target, like the arm joints).

``libero``: the official LIBERO evaluation's post-processing of the denormalised chunk. The training data stores
the gripper action as 0 = close .. 1 = open; LIBERO's controller wants −1 = open, +1 = close. The evaluation maps
g → 2g − 1 (to [−1, 1], +1 = open), flips the sign (LIBERO's convention) and, with ``binarize_gripper: true``
(its default in ``sim_libero.yaml``), takes the sign — so g > 0.5 → −1 (open), g < 0.5 → +1 (close), and exactly
0.5 → 0 (``numpy.sign``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["GRIPPER_POSTPROCESS", "postprocess_gripper"]

GRIPPER_POSTPROCESS = ("none", "libero")


def postprocess_gripper(values: np.ndarray, mode: str) -> np.ndarray:
    """Gripper action values (any shape, the chunk's units) → commands per ``mode``; a new float64 array."""
    v = np.asarray(values, dtype=np.float64)
    if mode == "none":
        return v.copy()
    if mode == "libero":
        return np.sign(-(2.0 * v - 1.0))
    raise ValueError(f"unknown gripper post-processing {mode!r}; expected one of {GRIPPER_POSTPROCESS}")
