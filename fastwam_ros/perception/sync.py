"""Time synchronisation of N camera streams (+ an optional joint-state stream), in explicit time.

All stamps and times are seconds (float): capture stamps from the message headers, and ``now_s`` passed by the
caller (ROS time, or simulated time in tests and bag replay). Nothing here reads a clock.

Semantics of :meth:`MultiStreamSync.poll`:

* Each stream keeps a ring buffer (``buffer_size`` newest frames, sorted by stamp; out-of-order arrivals are
  inserted in place).
* A *complete set* takes one frame per stream, every frame newer than the one last emitted for that stream
  (frames are never reused). Its *spread* (skew) is max − min of its stamps. ``poll`` finds the newest complete
  set (largest max stamp) whose spread ≤ ``slop_s``.
* The set's stamp is the **reference stream's** (the first stream's) stamp; ``age_s = now_s − stamp_s``.
  A set with ``age_s > max_age_s`` is rejected (``too_old``), one with ``age_s < −max_future_s`` too
  (``future_stamp``); rejected sets are consumed (older ones can never be chosen later).
* Joint state, if required, is joined "as of" the set stamp: the newest joint state with stamp ≤ set stamp,
  accepted if ``set stamp − joint stamp ≤ joint_tolerance_s``. If none qualifies and a joint state newer than the
  set stamp exists (so none will arrive in between, joint states being in order), the set is rejected
  (``joint_state_gap``); otherwise the set waits for the joint state (until it is too old).
* After an emission, frames at or before the emitted stamps are dropped (counted as ``superseded`` events when
  they were not part of the set).
* Clock jumps backwards (bag replay loops with ``use_sim_time``): ``now_s`` going back by more than
  ``clock_jump_threshold_s`` since the previous poll, or a stream's stamp going back by more than that from the
  newest stamp of that stream, resets all buffers (events ``clock_jump_back`` / ``stamp_jump_back``).
* A stream is *stopped* when its newest stamp is older than ``stream_timeout_s`` (or it never delivered):
  see :meth:`stopped_streams` and ``wait_reason``.

Counters: ``rejections`` (frames or sets refused, by reason) and ``events`` (informational: ``emitted``,
``out_of_order``, ``superseded``, ``evicted_unmatched``, resets).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["JOINT_STREAM", "MultiStreamSync", "SyncedSet", "stamp_to_seconds"]

JOINT_STREAM = "joint_states"
_EPS_S = 1e-9  # 1 ns: boundaries (slop, age, tolerance) are inclusive despite float round-off of stamps


def stamp_to_seconds(stamp: Any) -> float:
    """``builtin_interfaces/Time``-like (``sec``, ``nanosec``) → seconds (float)."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


@dataclass(frozen=True)
class SyncedSet:
    """One synchronised set. Times in seconds."""

    stamp_s: float  # the reference (first) stream's capture stamp
    items: dict[str, Any]  # stream → payload
    stamps_s: dict[str, float]  # stream → capture stamp
    skew_s: float  # max − min of the stamps
    age_s: float  # now_s − stamp_s at emission
    joint_state: Any = None
    joint_stamp_s: float | None = None


class _Buffer:
    """A capacity-bounded list of (stamp, seq, item) kept sorted by stamp."""

    __slots__ = ("stamps", "items", "capacity")

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.stamps: list[float] = []
        self.items: list[Any] = []

    def insert(self, stamp: float, item: Any) -> tuple[bool, bool, int]:
        """Insert; return (inserted, out_of_order, n_evicted). Duplicate stamps are refused."""
        i = bisect.bisect_left(self.stamps, stamp)
        if i < len(self.stamps) and self.stamps[i] == stamp:
            return False, False, 0
        out_of_order = i < len(self.stamps)
        self.stamps.insert(i, stamp)
        self.items.insert(i, item)
        evicted = 0
        while len(self.stamps) > self.capacity:
            self.stamps.pop(0)
            self.items.pop(0)
            evicted += 1
        return True, out_of_order, evicted

    def newest_at_or_before(self, t: float, after: float) -> int | None:
        """Index of the newest entry with after < stamp ≤ t, or None."""
        i = bisect.bisect_right(self.stamps, t) - 1
        if i >= 0 and self.stamps[i] > after:
            return i
        return None

    def drop_through(self, t: float) -> int:
        """Remove entries with stamp ≤ t; return how many."""
        i = bisect.bisect_right(self.stamps, t)
        del self.stamps[:i]
        del self.items[:i]
        return i

    def clear(self) -> None:
        self.stamps.clear()
        self.items.clear()

    def __len__(self) -> int:
        return len(self.stamps)


class MultiStreamSync:
    """Synchronises ``streams`` (camera names) and optionally joint states. See the module docstring."""

    def __init__(
        self,
        streams: Sequence[str],
        *,
        slop_s: float,
        max_age_s: float,
        max_future_s: float = 0.5,
        buffer_size: int = 16,
        require_joint_state: bool = False,
        joint_tolerance_s: float = 0.05,
        joint_buffer_size: int = 256,
        stream_timeout_s: float = 1.0,
        clock_jump_threshold_s: float = 1.0,
    ):
        if not streams:
            raise ValueError("need at least one stream")
        if len(set(streams)) != len(streams):
            raise ValueError(f"duplicate stream names in {list(streams)}")
        if JOINT_STREAM in streams:
            raise ValueError(f"{JOINT_STREAM!r} is reserved for the joint-state stream")
        self.streams = tuple(streams)
        self.slop_s = float(slop_s)
        self.max_age_s = float(max_age_s)
        self.max_future_s = float(max_future_s)
        self.require_joint_state = bool(require_joint_state)
        self.joint_tolerance_s = float(joint_tolerance_s)
        self.stream_timeout_s = float(stream_timeout_s)
        self.clock_jump_threshold_s = float(clock_jump_threshold_s)
        self._buf = {s: _Buffer(buffer_size) for s in self.streams}
        self._joint = _Buffer(joint_buffer_size)
        self.rejections: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.wait_reason: str | None = None
        self._last_now: float | None = None
        self._reset_state()

    # -- state ---------------------------------------------------------------------------------------------
    def _reset_state(self) -> None:
        for b in self._buf.values():
            b.clear()
        self._joint.clear()
        self._emitted = {s: -math.inf for s in self.streams}
        self._newest = {s: None for s in (*self.streams, JOINT_STREAM)}
        self._last_now = None  # a reset triggered by stamps must not be followed by a second one from the clock

    def reset(self, reason: str = "manual_reset") -> None:
        """Drop all buffered data (keeps counters); counts ``reason`` in ``events``."""
        self._reset_state()
        self.events[reason] += 1

    def _check_jump(self, stream: str, stamp_s: float) -> None:
        newest = self._newest[stream]
        if newest is not None and stamp_s < newest - self.clock_jump_threshold_s:
            self.reset("stamp_jump_back")

    # -- input ---------------------------------------------------------------------------------------------
    def add(self, stream: str, stamp_s: float, item: Any) -> bool:
        """Buffer a frame of ``stream`` captured at ``stamp_s`` (s). False (and counted) if refused."""
        if stream not in self._buf:
            self.rejections["unknown_stream"] += 1
            return False
        if not _finite(stamp_s):
            self.rejections["bad_stamp"] += 1
            return False
        stamp_s = float(stamp_s)
        self._check_jump(stream, stamp_s)
        if stamp_s <= self._emitted[stream]:
            self.rejections["older_than_emitted"] += 1
            return False
        inserted, ooo, evicted = self._buf[stream].insert(stamp_s, item)
        if not inserted:
            self.rejections["duplicate_stamp"] += 1
            return False
        if ooo:
            self.events["out_of_order"] += 1
        if evicted:
            self.events["evicted_unmatched"] += evicted
        if self._newest[stream] is None or stamp_s > self._newest[stream]:
            self._newest[stream] = stamp_s
        return True

    def add_joint_state(self, stamp_s: float, item: Any) -> bool:
        """Buffer a joint state (any payload) stamped ``stamp_s`` (s). False (and counted) if refused."""
        if not _finite(stamp_s):
            self.rejections["bad_joint_stamp"] += 1
            return False
        stamp_s = float(stamp_s)
        self._check_jump(JOINT_STREAM, stamp_s)
        inserted, ooo, _ = self._joint.insert(stamp_s, item)
        if not inserted:
            self.rejections["duplicate_joint_stamp"] += 1
            return False
        if ooo:
            self.events["joint_out_of_order"] += 1
        if self._newest[JOINT_STREAM] is None or stamp_s > self._newest[JOINT_STREAM]:
            self._newest[JOINT_STREAM] = stamp_s
        return True

    # -- output --------------------------------------------------------------------------------------------
    def _find_newest_set(self) -> dict[str, int] | None:
        """Indices (per stream) of the newest complete set within slop, or None."""
        pivots = []
        for s in self.streams:
            b = self._buf[s]
            after = self._emitted[s]
            for i in range(len(b) - 1, -1, -1):
                if b.stamps[i] <= after:
                    break
                pivots.append((b.stamps[i], s))
        pivots.sort(reverse=True)
        for t, _ in pivots:
            chosen: dict[str, int] = {}
            lo = t
            for s in self.streams:
                i = self._buf[s].newest_at_or_before(t, self._emitted[s])
                if i is None:
                    break
                chosen[s] = i
                lo = min(lo, self._buf[s].stamps[i])
            else:
                if t - lo <= self.slop_s + _EPS_S:
                    return chosen
        return None

    def _consume(self, chosen: dict[str, int]) -> None:
        for s, i in chosen.items():
            b = self._buf[s]
            t = b.stamps[i]
            self._emitted[s] = t
            dropped = b.drop_through(t)
            if dropped > 1:
                self.events["superseded"] += dropped - 1

    def poll(self, now_s: float) -> SyncedSet | None:
        """The newest new synchronised set at time ``now_s`` (s), or None (``wait_reason`` says why)."""
        if not _finite(now_s):
            raise ValueError(f"now_s must be a finite number of seconds, got {now_s!r}")
        now_s = float(now_s)
        if self._last_now is not None and now_s < self._last_now - self.clock_jump_threshold_s:
            self.reset("clock_jump_back")
        self._last_now = now_s

        missing = [s for s in self.streams if not any(t > self._emitted[s] for t in self._buf[s].stamps[-1:])]
        if missing:
            self.wait_reason = "waiting_for:" + ",".join(missing)
            return None
        chosen = self._find_newest_set()
        if chosen is None:
            self.wait_reason = "no_set_within_slop"
            return None
        stamps = {s: self._buf[s].stamps[i] for s, i in chosen.items()}
        ref = stamps[self.streams[0]]
        age = now_s - ref
        if age > self.max_age_s + _EPS_S:
            self._consume(chosen)
            self.rejections["too_old"] += 1
            self.wait_reason = "too_old"
            return None
        if age < -self.max_future_s - _EPS_S:
            self._consume(chosen)
            self.rejections["future_stamp"] += 1
            self.wait_reason = "future_stamp"
            return None
        joint = joint_stamp = None
        if self.require_joint_state:
            j = self._joint.newest_at_or_before(ref, -math.inf)
            if j is not None and ref - self._joint.stamps[j] <= self.joint_tolerance_s + _EPS_S:
                joint, joint_stamp = self._joint.items[j], self._joint.stamps[j]
            else:
                newest_joint = self._newest[JOINT_STREAM]
                if newest_joint is not None and newest_joint >= ref:
                    self._consume(chosen)
                    self.rejections["joint_state_gap"] += 1
                    self.wait_reason = "joint_state_gap"
                else:
                    self.wait_reason = "waiting_for:" + JOINT_STREAM
                return None
        items = {s: self._buf[s].items[i] for s, i in chosen.items()}
        self._consume(chosen)
        self.events["emitted"] += 1
        self.wait_reason = None
        return SyncedSet(
            stamp_s=ref,
            items=items,
            stamps_s=stamps,
            skew_s=max(stamps.values()) - min(stamps.values()),
            age_s=age,
            joint_state=joint,
            joint_stamp_s=joint_stamp,
        )

    # -- health --------------------------------------------------------------------------------------------
    def stream_status(self, now_s: float) -> dict[str, dict[str, Any]]:
        """Per stream (cameras, then ``joint_states`` if required): newest stamp (s), its age (s), stopped flag."""
        names = list(self.streams) + ([JOINT_STREAM] if self.require_joint_state else [])
        out = {}
        for s in names:
            newest = self._newest[s]
            age = None if newest is None else now_s - newest
            out[s] = {
                "newest_stamp_s": newest,
                "age_s": age,
                "buffered": len(self._joint if s == JOINT_STREAM else self._buf[s]),
                "stopped": newest is None or age > self.stream_timeout_s,
            }
        return out

    def stopped_streams(self, now_s: float) -> list[str]:
        """Streams whose newest stamp is older than ``stream_timeout_s`` at ``now_s`` (or that never sent)."""
        return [s for s, st in self.stream_status(now_s).items() if st["stopped"]]


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False
