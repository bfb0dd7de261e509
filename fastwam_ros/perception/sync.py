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
* Joint state, if required, is joined "as of" the set stamp. With ``joint_names`` given, joint states are merged
  **per joint** (:class:`~fastwam_ros.perception.proprio.JointStore`): every configured joint's newest sample with
  stamp ≤ set stamp, from whichever publisher carries it, accepted if ``set stamp − sample stamp ≤
  joint_tolerance_s``. Without ``joint_names`` the payload is opaque and the newest whole message is joined the
  same way. If a joint has no usable sample but a newer one exists (so none will arrive in between, each publisher
  being in order) the set is rejected (``joint_state_gap``); otherwise the set waits -- unless no publisher has
  sent that joint for ``stream_timeout_s`` (or ever), or until the set is too old: both counted as
  ``missing_joint``, the joint named in ``wait_reason``, ``last_missing_joint`` and ``stale_joints``.
* After an emission, frames at or before the emitted stamps are dropped (counted as ``superseded`` events when
  they were not part of the set).
* Stamps are checked **per stream** (each camera, each joint-state publisher) before anything is buffered: zero
  (unset) stamps once the stream or the others (or ``now_s``) are past ``clock_jump_threshold_s`` (``zero_stamp``;
  a simulation starting at t = 0 is fine), non-finite, negative or absurd (> 1e10 s) ones (``bad_stamp``) and implausible ones
  (``implausible_stamp``: more than ``clock_jump_threshold_s`` from the stream's own newest stamp and from the
  reference -- ``now_s`` when the caller passes it, else the median of the other streams' newest stamps; a
  stream's first stamp is checked only against ``now_s``) are rejected and counted for that stream only; nothing
  else is touched. ``jump_confirm_count`` consecutive implausible stamps
  that agree with each other are a real time jump (bag loop, sim-time reset): that stream alone is reset, the
  confirming frames are kept, one ``time_jump`` event is counted and one line logged.
* ``now_s`` going back by more than ``clock_jump_threshold_s`` since the previous poll (the receiver's clock was
  reset) resets the streams whose newest stamp is still in the old time base (event ``clock_jump_back``, logged
  once).
* A stream is *stopped* when its newest stamp is older than ``stream_timeout_s`` (or it never delivered):
  see :meth:`stopped_streams` and ``wait_reason``.

Counters: ``rejections`` (frames or sets refused, by reason) and ``events`` (informational: ``emitted``,
``out_of_order``, ``superseded``, ``evicted_unmatched``, resets).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .proprio import JointStore

__all__ = ["JOINT_STREAM", "MultiStreamSync", "SyncedSet", "stamp_to_seconds"]

JOINT_STREAM = "joint_states"
MAX_STAMP_S = 1e10  # stamps beyond the year 2286 are garbage, whatever the other streams say
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


class _OpaqueJoints:
    """Whole joint-state messages (opaque payloads) joined as of a time: the newest one within tolerance."""

    def __init__(self, tolerance_s: float, capacity: int):
        self.tolerance_s = tolerance_s
        self._buf = _Buffer(capacity)

    def add(self, stamp_s: float, item: Any) -> str:
        inserted, ooo, _ = self._buf.insert(stamp_s, item)
        return "duplicate_stamp" if not inserted else ("out_of_order" if ooo else "ok")

    def join(self, t: float) -> tuple[str, Any, float | None]:
        j = self._buf.newest_at_or_before(t, -math.inf)
        if j is not None and t - self._buf.stamps[j] <= self.tolerance_s + _EPS_S:
            return "ok", self._buf.items[j], self._buf.stamps[j]
        if self._buf.stamps and self._buf.stamps[-1] >= t:
            return "gap", None, None
        return "wait", None, None

    def drop_group(self, names: Any) -> None:
        self._buf.clear()

    def clear(self) -> None:
        self._buf.clear()

    def __len__(self) -> int:
        return len(self._buf)


class _StampCheck:
    """Per-stream stamp plausibility: the stream's newest accepted stamp and a run of consecutive suspects."""

    __slots__ = ("newest", "suspects", "rejected", "jumps")

    def __init__(self):
        self.newest: float | None = None
        self.suspects: list[tuple[float, Any]] = []
        self.rejected: Counter[str] = Counter()
        self.jumps = 0


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
        joint_names: Sequence[str] | None = None,
        jump_confirm_count: int = 3,
        log: Callable[[str], None] | None = None,
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
        self.jump_confirm_count = max(1, int(jump_confirm_count))
        self._log = log
        self._buf = {s: _Buffer(buffer_size) for s in self.streams}
        if joint_names is not None:
            self._joint: Any = JointStore(joint_names, self.joint_tolerance_s, joint_buffer_size)
        else:
            self._joint = _OpaqueJoints(self.joint_tolerance_s, joint_buffer_size)
        self.rejections: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.wait_reason: str | None = None
        self.last_missing_joint: str | None = None
        self._last_now: float | None = None
        self._checks: dict[Any, _StampCheck] = {s: _StampCheck() for s in self.streams}
        self._reset_state()

    # -- state ---------------------------------------------------------------------------------------------
    def _reset_state(self) -> None:
        for b in self._buf.values():
            b.clear()
        self._joint.clear()
        self._emitted = {s: -math.inf for s in self.streams}
        for key in list(self._checks):
            if key in self._buf:
                self._checks[key].newest, self._checks[key].suspects = None, []
            else:
                del self._checks[key]  # joint-state publishers are re-learnt
        self._last_now = None  # a reset triggered by stamps must not be followed by a second one from the clock

    def reset(self, reason: str = "manual_reset") -> None:
        """Drop all buffered data (keeps counters); counts ``reason`` in ``events``."""
        self._reset_state()
        self.events[reason] += 1

    def _reset_stream(self, key: Any) -> None:
        """Forget one stream's buffered data (its clock jumped); the others are untouched."""
        if key in self._buf:
            self._buf[key].clear()
            self._emitted[key] = -math.inf
        else:
            self._joint.drop_group(key[1])
        self._checks[key].newest, self._checks[key].suspects = None, []

    def _newest(self, stream: str) -> float | None:
        """Newest accepted stamp of a camera, or of the joint states (any publisher)."""
        if stream != JOINT_STREAM:
            return self._checks[stream].newest
        stamps = [c.newest for k, c in self._checks.items() if k not in self._buf and c.newest is not None]
        return max(stamps) if stamps else None

    def _stamp_verdict(self, key: Any, label: Any, stamp_s: Any, item: Any, now_s: float | None) -> list:
        """Check ``stamp_s`` of stream ``key``: the (stamp, item) pairs to buffer now (empty if rejected)."""
        check = self._checks.get(key)
        if check is None:
            check = self._checks[key] = _StampCheck()
        reason = None
        if not _finite(stamp_s) or float(stamp_s) < 0 or float(stamp_s) > MAX_STAMP_S:
            reason = "bad_stamp"
        t = 0.0 if reason is not None else float(stamp_s)
        thr = self.clock_jump_threshold_s
        own = check.newest
        ref_box: list = []

        def ref() -> float | None:  # computed only when needed (a sort over the other streams)
            if not ref_box:
                if now_s is not None and _finite(now_s):
                    ref_box.append(float(now_s))
                else:
                    others = sorted(c.newest for k, c in self._checks.items() if k != key and c.newest is not None)
                    # the median: one stream with a bad base is outvoted
                    ref_box.append(others[len(others) // 2] if others else None)
            return ref_box[0]

        if reason is None and t == 0.0 and ((own is not None and own > thr) or (ref() is not None and ref() > thr)):
            reason = "zero_stamp"  # an unset header stamp; a stamp of 0 s at the start of sim time is real
        if reason is not None:
            check.rejected[reason] += 1
            self.rejections[reason if key in self._buf else f"joint_{reason}"] += 1
            return []
        # the first stamp of a stream is its own reference unless the receiver's time is known
        plausible = (own is not None and abs(t - own) <= thr) or (ref() is not None and abs(t - ref()) <= thr) or (
            own is None and (ref() is None or now_s is None)
        )
        if plausible:
            check.suspects = []
            if own is not None and t < own - thr:  # back in time, where the other streams already are: a jump
                self._time_jump(key, label, t - own, 1)
            return [(t, item)]
        run = check.suspects
        if run and abs(t - run[-1][0]) > thr:
            run = []  # suspects that disagree with each other are noise, not a new time base
        run.append((t, item))
        if len(run) < self.jump_confirm_count:
            check.suspects = run
            check.rejected["implausible_stamp"] += 1
            self.rejections["implausible_stamp" if key in self._buf else "joint_implausible_stamp"] += 1
            return []
        # sustained: a real time jump on this stream alone
        self._time_jump(key, label, t - (own if own is not None else ref()), len(run))
        return run

    def _time_jump(self, key: Any, label: Any, jump_s: float, n_messages: int) -> None:
        """``label``: the stream's name for the log, or a function making it (formatted only when logged)."""
        self._reset_stream(key)
        check = self._checks[key]
        check.suspects = []
        check.jumps += 1
        self.events["time_jump"] += 1
        if self._log is not None:
            label = label() if callable(label) else label
            why = f"{n_messages} consecutive messages" if n_messages > 1 else "as the other streams did"
            self._log(f"perception: {label} stamps jumped by {jump_s:+.3f} s ({why}); reset that stream only")

    # -- input ---------------------------------------------------------------------------------------------
    def add(self, stream: str, stamp_s: float, item: Any, now_s: float | None = None) -> bool:
        """Buffer a frame of ``stream`` captured at ``stamp_s`` (s). False (and counted) if refused.
        ``now_s`` (s, optional) is the receiver's time, the reference for implausible stamps."""
        if stream not in self._buf:
            self.rejections["unknown_stream"] += 1
            return False
        ok = False
        for t, it in self._stamp_verdict(stream, lambda: f"camera {stream!r}", stamp_s, item, now_s):
            ok = self._insert_frame(stream, t, it)
        return ok

    def _insert_frame(self, stream: str, stamp_s: float, item: Any) -> bool:
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
        check = self._checks[stream]
        if check.newest is None or stamp_s > check.newest:
            check.newest = stamp_s
        return True

    def add_joint_state(self, stamp_s: float, item: Any, now_s: float | None = None) -> bool:
        """Buffer a joint state stamped ``stamp_s`` (s). With ``joint_names`` the item is ``(names, positions)``
        (checked with :func:`~fastwam_ros.joint_state.check_joint_state`); otherwise it is opaque.
        False (and counted) if refused."""
        names = tuple(item[0]) if isinstance(self._joint, JointStore) else None
        key = (JOINT_STREAM, names)
        label = JOINT_STREAM if names is None else (lambda: f"{JOINT_STREAM} publisher {list(names[:3])}")
        ok = False
        for t, it in self._stamp_verdict(key, label, stamp_s, item, now_s):
            res = self._joint.add(t, *it) if names is not None else self._joint.add(t, it)
            if res == "duplicate_stamp":
                self.rejections["duplicate_joint_stamp"] += 1
                continue
            if res == "unused":
                self.events["joint_state_unused"] += 1
                self._checks.pop(key, None)  # a publisher of none of our joints is not tracked
                continue
            if res == "out_of_order":
                self.events["joint_out_of_order"] += 1
            check = self._checks[key]
            if check.newest is None or t > check.newest:
                check.newest = t
            ok = True
        if len(self._checks) > len(self._buf) + 2 * getattr(self._joint, "max_groups", 1):
            live = {(JOINT_STREAM, n) for n in getattr(self._joint, "_groups", {})}
            for k in [k for k in self._checks if k not in self._buf and k not in live and k != key]:
                del self._checks[k]  # publishers seen once (or dropped by the store) are not kept forever
        return ok

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
            stale = [k for k, c in self._checks.items() if c.newest is not None
                     and c.newest > now_s + self.clock_jump_threshold_s]
            for k in stale:  # streams still in the old time base; those already in the new one keep their data
                self._reset_stream(k)
            self.events["clock_jump_back"] += 1
            if self._log is not None:
                self._log(f"perception: the clock went back by {self._last_now - now_s:.3f} s; "
                          f"reset {len(stale)} stream(s) still stamped in the old time base")
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
            reason = "too_old"
            if self.require_joint_state and isinstance(self._joint, JointStore):
                status, joint, _ = self._joint.join(ref)
                if status == "wait":  # it expired waiting for a joint no publisher sent: say which
                    reason = "missing_joint"
                    self.last_missing_joint = joint
            self.rejections[reason] += 1
            self.wait_reason = reason if reason == "too_old" else f"{reason}:{self.last_missing_joint}"
            return None
        if age < -self.max_future_s - _EPS_S:
            self._consume(chosen)
            self.rejections["future_stamp"] += 1
            self.wait_reason = "future_stamp"
            return None
        joint = joint_stamp = None
        if self.require_joint_state:
            status, joint, joint_stamp = self._joint.join(ref)
            if status != "ok":
                if status == "gap":
                    self._consume(chosen)
                    self.rejections["joint_state_gap"] += 1
                    self.wait_reason = "joint_state_gap" + (f":{joint}" if joint else "")
                elif joint is not None and joint in self._stale_joints(now_s, include_never=False):
                    self._consume(chosen)  # no publisher has sent this joint for stream_timeout_s: stop waiting
                    self.rejections["missing_joint"] += 1
                    self.last_missing_joint = joint
                    self.wait_reason = f"missing_joint:{joint}"
                else:
                    self.wait_reason = "waiting_for:" + JOINT_STREAM + (f":{joint}" if joint else "")
                return None
            if isinstance(self._joint, JointStore):
                joint = (self._joint.joint_names, joint)
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
            newest = self._newest(s)
            age = None if newest is None else now_s - newest
            checks = [self._checks[s]] if s != JOINT_STREAM else [
                c for k, c in self._checks.items() if k not in self._buf]
            rejected: Counter[str] = Counter()
            for c in checks:
                rejected.update(c.rejected)
            out[s] = {
                "newest_stamp_s": newest,
                "age_s": age,
                "buffered": len(self._joint if s == JOINT_STREAM else self._buf[s]),
                "stopped": newest is None or age > self.stream_timeout_s,
                "stamp_rejections": dict(rejected),
                "time_jumps": sum(c.jumps for c in checks),
            }
            if s == JOINT_STREAM:
                out[s]["stale_joints"] = self._stale_joints(now_s)
        return out

    def _stale_joints(self, now_s: float, include_never: bool = True) -> list[str]:
        """Configured joints whose newest sample (any publisher) is older than ``stream_timeout_s`` (or absent)."""
        if not isinstance(self._joint, JointStore):
            return []
        newest = self._joint.newest_per_joint()
        return [j for j, t in zip(self._joint.joint_names, newest)
                if now_s - t > self.stream_timeout_s and (include_never or np.isfinite(t))]

    def stopped_streams(self, now_s: float) -> list[str]:
        """Streams whose newest stamp is older than ``stream_timeout_s`` at ``now_s`` (or that never sent)."""
        return [s for s, st in self.stream_status(now_s).items() if st["stopped"]]


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False
