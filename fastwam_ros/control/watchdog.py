"""Tracking-error watchdog: does the robot follow the command?

A robot follows its command with some lag, so the error of a joint is its measured position's distance to the
*range of positions commanded during the last* ``lag_ticks`` control ticks (0 while it is anywhere in that range):
a robot that lags by up to that much shows no error however fast it moves, a robot that does not move shows the
full distance as soon as the command has moved on. Per joint, a watched joint (its group enabled, joint state
fresh) whose error stays above the joint's threshold for the joint's duration *trips*. Time is explicit
(seconds); the caller decides what a trip means (the controller faults and disables the group).
"""

from __future__ import annotations

import numpy as np


class TrackingWatchdog:
    """threshold [J] (joint units; inf: off), duration [J] (s), lag_ticks: commands remembered (≥ 1)."""

    def __init__(self, threshold: np.ndarray, duration: np.ndarray, lag_ticks: int = 1) -> None:
        self.threshold = np.asarray(threshold, dtype=np.float64)
        self.duration = np.asarray(duration, dtype=np.float64)
        self.history = np.full((max(1, int(lag_ticks)), self.threshold.shape[0]), np.nan)  # ring of commands
        self._next = 0
        self.over_since = np.full(self.threshold.shape, np.nan)  # when the error went above the threshold
        self.error = np.zeros(self.threshold.shape)  # latest error of watched joints (0 elsewhere)

    def update(self, now_s: float, commanded: np.ndarray, measured: np.ndarray, watched: np.ndarray) -> np.ndarray:
        """Feed one tick; returns the joints that trip now (bool [J]). Unwatched joints start over."""
        self.history[self._next] = np.where(watched, commanded, np.nan)
        self._next = (self._next + 1) % self.history.shape[0]
        with np.errstate(invalid="ignore"):
            lo, hi = np.fmin.reduce(self.history, axis=0), np.fmax.reduce(self.history, axis=0)  # NaN: ignored
            err = np.maximum(np.maximum(lo - measured, measured - hi), 0.0)
            err = np.where(watched & np.isfinite(err), err, 0.0)
        self.error = err
        over = watched & (err > self.threshold)
        self.over_since = np.where(over, np.where(np.isnan(self.over_since), now_s, self.over_since), np.nan)
        return over & (now_s - self.over_since >= self.duration)

    def restart_timing(self) -> None:
        """Forget when errors went above their thresholds (the clock was reset: those times are of another time
        base); the command history stays."""
        self.over_since.fill(np.nan)

    def clear(self, idx: np.ndarray) -> None:
        """Forget the history of joints ``idx`` (after a re-enable)."""
        self.history[:, idx] = np.nan
        self.over_since[idx] = np.nan
        self.error[idx] = 0.0
