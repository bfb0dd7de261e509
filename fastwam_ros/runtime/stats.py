"""Small statistics for /diagnostics: latency percentiles, message rates, counted rejections.

All times are passed in (seconds); nothing here reads a clock.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterable

import numpy as np


class LatencyStats:
    """Rolling window of per-stage durations (seconds) → count, last, p50, p95, max."""

    def __init__(self, window: int = 200):
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = int(window)
        self._samples: dict[str, deque] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        s = float(seconds)
        if not np.isfinite(s) or s < 0.0:
            return
        with self._lock:
            self._samples.setdefault(stage, deque(maxlen=self.window)).append(s)

    def add_many(self, timings: dict[str, float]) -> None:
        for k, v in timings.items():
            self.add(k, v)

    def stages(self) -> list[str]:
        with self._lock:
            return list(self._samples)

    def summary(self, stage: str) -> dict[str, float] | None:
        with self._lock:
            d = self._samples.get(stage)
            if not d:
                return None
            a = np.fromiter(d, dtype=np.float64)
        return {
            "count": float(a.size),
            "last": float(a[-1]),
            "p50": float(np.percentile(a, 50)),
            "p95": float(np.percentile(a, 95)),
            "max": float(a.max()),
        }

    def percentile(self, stage: str, q: float) -> float | None:
        with self._lock:
            d = self._samples.get(stage)
            if not d:
                return None
            return float(np.percentile(np.fromiter(d, dtype=np.float64), q))

    def reset(self) -> None:
        with self._lock:
            self._samples.clear()


class RateMeter:
    """Message rate (Hz) over a sliding time window, from explicit arrival times (seconds)."""

    def __init__(self, window_s: float = 2.0):
        if window_s <= 0:
            raise ValueError("window_s must be > 0")
        self.window_s = float(window_s)
        self._t: deque = deque()
        self.total = 0

    def tick(self, t_s: float) -> None:
        if self._t and t_s < self._t[-1]:  # clock jumped back (bag loop, sim reset)
            self._t.clear()
        self._t.append(float(t_s))
        self.total += 1
        self._trim(t_s)

    def _trim(self, now_s: float) -> None:
        while self._t and self._t[0] < now_s - self.window_s:
            self._t.popleft()

    def rate_hz(self, now_s: float) -> float:
        self._trim(now_s)
        if len(self._t) < 2:
            return 0.0
        span = max(now_s, self._t[-1]) - self._t[0]
        return (len(self._t) - 1) / span if span > 0 else 0.0

    def last_s(self) -> float | None:
        return self._t[-1] if self._t else None


class ReasonCounter:
    """Thread-safe counts of rejections / drops by reason (shown in /diagnostics)."""

    def __init__(self):
        self._c: Counter = Counter()
        self._lock = threading.Lock()

    def count(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self._c[reason] += n

    def update(self, counts: dict[str, int] | Iterable[tuple[str, int]]) -> None:
        items = counts.items() if isinstance(counts, dict) else counts
        with self._lock:
            for k, v in items:
                self._c[k] += int(v)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return dict(self._c)

    def total(self) -> int:
        with self._lock:
            return sum(self._c.values())

    def reset(self) -> None:
        with self._lock:
            self._c.clear()
