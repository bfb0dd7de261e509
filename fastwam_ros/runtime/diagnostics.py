"""Diagnostics as plain data: the shells copy these into ``diagnostic_updater`` statuses.

Levels follow ``diagnostic_msgs/DiagnosticStatus``: 0 OK, 1 WARN, 2 ERROR, 3 STALE.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .stats import LatencyStats

OK, WARN, ERROR, STALE = 0, 1, 2, 3


@dataclass
class DiagStatus:
    name: str
    level: int
    message: str
    values: list[tuple[str, str]] = field(default_factory=list)

    def escalate(self, level: int, message: str) -> None:
        """Raise the level (never lower it); the message of the worst condition wins."""
        if level > self.level or (level == self.level and self.message == "ok"):
            self.level, self.message = level, message


def latency_values(stats: LatencyStats) -> list[tuple[str, str]]:
    """'<stage> p50/p95 (ms)' rows for every stage seen."""
    rows = []
    for stage in sorted(stats.stages()):
        s = stats.summary(stage)
        if s:
            rows.append((f"latency {stage} p50/p95/max (ms)",
                         f"{1e3 * s['p50']:.1f} / {1e3 * s['p95']:.1f} / {1e3 * s['max']:.1f}"))
    return rows


def truncate_text(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` characters with a note of the full length (diagnostics stay small)."""
    text = str(text)
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}... ({len(text)} characters)"
