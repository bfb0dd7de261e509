"""Tracking-error watchdog: does the robot follow the command?

Per joint, the error |commanded − measured| of a watched joint (its group enabled, joint state fresh) must not
stay above the joint's threshold for longer than the joint's duration; when it does, the joint *trips*. Time
is explicit (seconds); the caller decides what a trip means (the controller faults and disables the group).
"""

from __future__ import annotations

import numpy as np


class TrackingWatchdog:
    """threshold [J] (joint units; inf: off), duration [J] (s)."""

    def __init__(self, threshold: np.ndarray, duration: np.ndarray) -> None:
        self.threshold = np.asarray(threshold, dtype=np.float64)
        self.duration = np.asarray(duration, dtype=np.float64)
        self.over_since = np.full(self.threshold.shape, np.nan)  # when the error went above the threshold
        self.error = np.zeros(self.threshold.shape)  # latest error of watched joints (0 elsewhere)

    def update(self, now_s: float, commanded: np.ndarray, measured: np.ndarray, watched: np.ndarray) -> np.ndarray:
        """Feed one tick; returns the joints that trip now (bool [J]). Unwatched joints start over."""
        with np.errstate(invalid="ignore"):
            err = np.where(watched, np.abs(commanded - measured), 0.0)
            err = np.where(np.isfinite(err), err, 0.0)
        self.error = err
        over = watched & (err > self.threshold)
        self.over_since = np.where(over, np.where(np.isnan(self.over_since), now_s, self.over_since), np.nan)
        return over & (now_s - self.over_since >= self.duration)

    def clear(self, idx: np.ndarray) -> None:
        """Forget the history of joints ``idx`` (after a re-enable)."""
        self.over_since[idx] = np.nan
        self.error[idx] = 0.0
