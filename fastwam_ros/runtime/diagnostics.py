"""Diagnostics as plain data: the shells copy these into ``diagnostic_updater`` statuses.

Levels follow ``diagnostic_msgs/DiagnosticStatus``: 0 OK, 1 WARN, 2 ERROR, 3 STALE.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def hold_explanation(holding: Mapping[str, str | None], rejections: Mapping[str, int], chunk_age: LatencyStats,
                     stale_chunk_s: float) -> str | None:
    """Why the controller holds, in one line an operator can act on, or None when no group holds for a
    reason the chunk stream explains. ``holding``: group → hold reason of the groups in hold;
    ``chunk_age``: stage ``age`` = now - observation stamp of arriving chunks (s), ``policy`` = the policy's
    own end-to-end latency (s)."""
    if not holding:
        return None
    age = chunk_age.summary("age")
    if age is None:
        return "hold: no chunks received yet (is policy_node active and enabled?)"
    stale = sum(v for k, v in rejections.items() if "stale" in k)
    if age["p50"] > stale_chunk_s or stale:
        pol = chunk_age.summary("policy")
        inf = f", policy latency p50 {pol['p50']:.2f} s" if pol else ""
        return (f"hold: chunks stale, chunk age p50 {age['p50']:.2f} s > stale_chunk_s {stale_chunk_s:g} s{inf} "
                f"({stale} stale; the policy is too slow for this machine: fewer model.num_threads on a busy CPU, "
                "fewer model.num_inference_steps, or a GPU)")
    reasons = sorted({r for r in holding.values() if r})
    return f"hold: {', '.join(reasons) or 'waiting'} (chunk age p50 {age['p50']:.2f} s)"
