"""The node's clock as the runtimes see it, to tell a reset clock from a late or repeated call.

Under ``use_sim_time`` the ROS clock goes back when a bag replayed with ``--loop`` starts over or a simulator is
reset. Everything the cores keep is stamped in the old time base then: a controller that treated the new times as
bad ticks would repeat its last output until the clock is past the old time again (a bag's length, or minutes).
"""

from __future__ import annotations

import math


class ClockWatch:
    """The newest time seen (s); a call more than ``threshold_s`` behind it starts a new time base."""

    def __init__(self, threshold_s: float) -> None:
        if not threshold_s > 0:
            raise ValueError(f"threshold_s must be > 0 s, got {threshold_s!r}")
        self.threshold_s = float(threshold_s)
        self.newest_s: float | None = None
        self.jumps = 0

    def went_back(self, now_s: float) -> float | None:
        """How far (s) the clock went back when ``now_s`` is more than ``threshold_s`` behind the newest time
        seen (``now_s`` is then the newest), else None. Non-finite times are ignored (the cores refuse them)."""
        if not isinstance(now_s, (int, float)) or not math.isfinite(now_s):
            return None
        now = float(now_s)
        if self.newest_s is not None and self.newest_s - now > self.threshold_s:
            back = self.newest_s - now
            self.newest_s = now
            self.jumps += 1
            return back
        if self.newest_s is None or now > self.newest_s:
            self.newest_s = now
        return None
