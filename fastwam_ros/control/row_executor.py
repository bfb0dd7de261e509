"""RowExecutor: action chunks in, exactly one action row per environment / control step out (explicit time).

The official evaluation loops (LIBERO: ``experiments/libero/eval_libero_single.py``) do not interpolate: they
step the environment once per chunk row. After ``warmup_steps`` no-op steps (LIBERO: 30, action
``[0, 0, 0, 0, 0, 0, -1]``) they infer a chunk from the newest observation, execute its rows
0..N-1 (N = ``replace_execute_steps``; LIBERO: 10 of 32) open loop, one per step, and only then observe and
infer again. This core reproduces that schedule for a robot whose actions must not be interpolated or held
(end-effector deltas, ``action_space: ee_delta``), or for any robot that should be driven row by row.

Per :meth:`RowExecutor.step` call it returns one :class:`Row`:

``warmup``  one of the first ``warmup_steps`` steps of an episode: the no-op action.
``row``     the next row of the block being executed (the newest accepted chunk's first N rows, columns in
            the configured joint order, gripper columns post-processed per ``gripper_postprocess``).
``idle``    no fresh row (waiting for a chunk, e-stop, bad time): the SAFE idle action, counted by reason.

No-op and idle actions: ``ee_delta``: zero deltas, gripper columns held at the last gripper command
(``idle_gripper_command`` before the first row) -- never a repeat of the last delta; ``joint_positions``: the
last executed row (a hold), or ``values=None`` (send nothing) before the first row.

Chunks (:class:`~fastwam_ros.control.Chunk`, as the chunk controller takes them) are accepted only while the
executor is *waiting* (after the warm-up, after the N-th row of a block): a chunk that arrives during the
warm-up or while a block executes is refused as ``busy`` (the official loop does not replan before the N
rows are executed). A chunk must also have been observed after the step that ended the previous block
(``predates_request``: its observation does not show the effect of the executed rows), be no older than
``stale_chunk_s`` (``stale_chunk``) and no further than ``max_future_s`` ahead, and have the configured step
period. Rows are clipped into the joints' position range (``lower``/``upper``; counted). Every refusal is
counted by reason; :meth:`take_request` says when to ask the policy for a chunk.
Nothing here reads a clock; times are seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import ControllerConfig
from .controller import Chunk, SubmitResult
from .gripper import postprocess_gripper

__all__ = ["IDLE_REASONS", "ROW_KINDS", "ROW_REJECT_REASONS", "Row", "RowExecutor", "RowMetrics"]

ROW_KINDS = ("warmup", "row", "idle")
IDLE_REASONS = ("waiting_chunk", "estop", "bad_time")
ROW_REJECT_REASONS = (
    "bad_time", "bad_type", "bad_stamp", "bad_step_period", "bad_shape", "non_finite", "duplicate_joint",
    "unknown_joint", "missing_joint", "estopped", "busy", "predates_request", "stale_chunk", "future_stamp",
    "non_increasing_stamp",
)


@dataclass(frozen=True)
class Row:
    """One step's action. ``values``: [J] in the configured joint order, or None (nothing safe to send)."""

    step: int  # index of this step in the episode (0-based; warm-up steps included)
    stamp_s: float
    kind: str  # warmup | row | idle
    values: np.ndarray | None
    chunk_id: int | None = None  # kind row: the chunk it comes from
    row: int | None = None  # kind row: its index in that chunk
    reason: str | None = None  # kind idle: why (IDLE_REASONS)


@dataclass
class RowMetrics:
    """Counters: steps by kind, idle steps by reason, chunks accepted / refused by reason, requests."""

    steps: int = 0
    warmup_steps: int = 0
    rows: int = 0
    idle: dict[str, int] = field(default_factory=lambda: {r: 0 for r in IDLE_REASONS})
    chunks_accepted: int = 0
    blocks_completed: int = 0
    rejections: dict[str, int] = field(default_factory=lambda: {r: 0 for r in ROW_REJECT_REASONS})
    requests: int = 0
    clipped_rows: int = 0  # rows with a value outside the joints' position range (clipped into it)
    last_wait_steps: int = 0  # idle steps between the last request and the chunk that answered it
    max_wait_steps: int = 0
    clock_jumps: int = 0  # re-bases after the clock went back (RowExecutor.rebase_clock)

    def as_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "warmup_steps": self.warmup_steps, "rows": self.rows,
                "idle": dict(self.idle), "chunks_accepted": self.chunks_accepted,
                "blocks_completed": self.blocks_completed, "rejections": dict(self.rejections),
                "requests": self.requests, "clipped_rows": self.clipped_rows, "last_wait_steps": self.last_wait_steps,
                "max_wait_steps": self.max_wait_steps, "clock_jumps": self.clock_jumps}


class RowExecutor:
    """See the module docstring. ``step_period_s``: the period of one row (the chunks' step period, s);
    ``request_retry_s``: while waiting, :meth:`take_request` asks again after this long (None: once per wait).
    Not thread-safe: call from one thread."""

    def __init__(self, config: ControllerConfig, step_period_s: float, request_retry_s: float | None = None):
        if not (math.isfinite(step_period_s) and step_period_s > 0):
            raise ValueError(f"step_period_s must be a finite period > 0 s, got {step_period_s!r}")
        if request_retry_s is not None and not (math.isfinite(request_retry_s) and request_retry_s > 0):
            raise ValueError(f"request_retry_s must be > 0 s or None, got {request_retry_s!r}")
        self.cfg = config
        self.step_period_s = float(step_period_s)
        self.request_retry_s = request_retry_s
        self.names = config.joint_names
        col = {n: i for i, n in enumerate(self.names)}
        self._grip = np.array([col[j] for g in config.groups if g.kind == "gripper" for j in g.joints], dtype=np.intp)
        self._lower = np.array([config.limits[j].lower for j in self.names])
        self._upper = np.array([config.limits[j].upper for j in self.names])
        self.metrics = RowMetrics()
        self._newest_stamp = -math.inf
        self.estopped = False
        self._new_episode(-math.inf)

    def _new_episode(self, now_s: float) -> None:
        self._step = 0
        self._block: np.ndarray | None = None
        self._block_id: int | None = None
        self._next = 0
        self._last: np.ndarray | None = None  # the last executed row
        self._grip_cmd = np.full(self._grip.size, float(self.cfg.idle_gripper_command))
        self._waiting = False
        self._fresh_after_s = now_s  # chunks observed before this do not belong to the current block / episode
        self._last_request_s: float | None = None
        self._wait_steps = 0
        if self.cfg.warmup_steps == 0:
            self._start_wait(now_s)

    def _start_wait(self, now_s: float) -> None:
        self._waiting = True
        self._fresh_after_s = now_s
        self._last_request_s = None
        self._wait_steps = 0

    # ------------------------------------------------------------------ state

    @property
    def phase(self) -> str:
        """``estop`` | ``warmup`` | ``executing`` | ``waiting``."""
        if self.estopped:
            return "estop"
        if self._step < self.cfg.warmup_steps:
            return "warmup"
        return "waiting" if self._waiting else "executing"

    @property
    def step_index(self) -> int:
        """Steps taken in this episode (the index the next :meth:`step` gets)."""
        return self._step

    def idle_values(self) -> np.ndarray | None:
        """The safe no-op / idle action now (see the module docstring)."""
        if self.cfg.action_space == "ee_delta":
            v = np.zeros(len(self.names))
            v[self._grip] = self._grip_cmd
            return v
        return None if self._last is None else self._last.copy()

    # ------------------------------------------------------------------ inputs

    def _reject(self, reason: str, detail: str) -> SubmitResult:
        self.metrics.rejections[reason] = self.metrics.rejections.get(reason, 0) + 1
        return SubmitResult(False, reason, detail)

    def _check(self, chunk: Any, now: float) -> tuple[SubmitResult | None, np.ndarray | None]:
        """Validation shared by every chunk: (rejection, None) or (None, positions [H, J] in joint order)."""
        if not isinstance(chunk, Chunk):
            return self._reject("bad_type", f"expected Chunk, got {type(chunk).__name__}"), None
        if not _finite(chunk.stamp_s):
            return self._reject("bad_stamp", f"stamp_s={chunk.stamp_s!r} is not a finite number"), None
        dt = chunk.step_period_s
        if not _finite(dt) or abs(float(dt) - self.step_period_s) > 1e-6 * self.step_period_s:
            return self._reject("bad_step_period", f"step_period_s={dt!r}, rows run at {self.step_period_s} s"), None
        try:
            names = [str(n) for n in chunk.joint_names]
            pos = np.asarray(chunk.positions, dtype=np.float64)
        except (TypeError, ValueError) as e:
            return self._reject("bad_shape", f"positions / joint_names are not numeric arrays ({e})"), None
        if pos.ndim != 2 or pos.shape[0] < 1 or pos.shape[1] != len(names):
            return self._reject("bad_shape", f"positions shape {pos.shape} is not [H>=1, {len(names)}]"), None
        if not np.isfinite(pos).all():
            return self._reject("non_finite", "positions contain NaN or inf"), None
        if len(set(names)) != len(names):
            return self._reject("duplicate_joint", "joint_names has duplicates"), None
        unknown = sorted(set(names) - set(self.names))
        if unknown:
            return self._reject("unknown_joint", f"unknown joints {unknown[:5]}"), None
        missing = [n for n in self.names if n not in names]
        if missing:
            return self._reject("missing_joint", f"missing joints {missing[:5]}"), None
        return None, pos[:, [names.index(n) for n in self.names]]

    def submit_chunk(self, chunk: Chunk, now_s: float) -> SubmitResult:
        """Offer a chunk; it becomes the next block only while waiting. Never raises for bad chunks."""
        if not _finite(now_s):
            return self._reject("bad_time", f"now_s={now_s!r} is not a finite number")
        now = float(now_s)
        bad, pos = self._check(chunk, now)
        if bad is not None:
            return bad
        stamp = float(chunk.stamp_s)
        if self.estopped:
            return self._reject("estopped", "e-stop latched; reset first")
        if not self._waiting:
            return self._reject("busy", f"{self.phase}: no replanning before the block's "
                                        f"{self.cfg.replace_execute_steps} rows (or the warm-up) are executed")
        if stamp < self._fresh_after_s:
            self._last_request_s = None  # the request was answered from an older observation: ask again now
            return self._reject("predates_request", f"observed at {stamp:.6f}, before the step that ended the "
                                                    f"previous block ({self._fresh_after_s:.6f})")
        if now - stamp > self.cfg.stale_chunk_s:
            return self._reject("stale_chunk", f"observation is {now - stamp:.3f} s old "
                                               f"(stale_chunk_s={self.cfg.stale_chunk_s})")
        if stamp > now + self.cfg.max_future_s:
            return self._reject("future_stamp", f"stamp {stamp:.6f} is {stamp - now:.3f} s in the future")
        if stamp <= self._newest_stamp:
            return self._reject("non_increasing_stamp", f"stamp {stamp:.6f} <= newest accepted "
                                                        f"{self._newest_stamp:.6f}")
        block = pos[: self.cfg.replace_execute_steps].copy()
        if self.cfg.gripper_postprocess != "none" and self._grip.size:
            block[:, self._grip] = postprocess_gripper(block[:, self._grip], self.cfg.gripper_postprocess)
        self._block, self._block_id, self._next = block, int(chunk.chunk_id), 0
        self._waiting = False
        self._newest_stamp = stamp
        m = self.metrics
        m.chunks_accepted += 1
        m.last_wait_steps = self._wait_steps
        m.max_wait_steps = max(m.max_wait_steps, self._wait_steps)
        return SubmitResult(True, None, None, now)

    def take_request(self, now_s: float) -> bool:
        """True when the caller should ask the policy for a chunk now: at the first step of a wait (one step
        after the block's last row or the last no-op, so that the observation showing its effect has been
        published: a policy answering at once would otherwise infer from the observation before it), again
        right after a ``predates_request`` refusal, and every ``request_retry_s`` while the wait lasts.
        Counted in ``metrics.requests``."""
        if not self._waiting or self.estopped or not _finite(now_s):
            return False
        if self._wait_steps == 0 and math.isfinite(self._fresh_after_s):
            return False  # still the step that ended the block
        last = self._last_request_s
        due = last is None or now_s < last or (  # now_s < last: time jumped back (a new clock)
            self.request_retry_s is not None and now_s - last >= self.request_retry_s - 1e-9)
        if not due:
            return False
        self._last_request_s = float(now_s)
        self.metrics.requests += 1
        return True

    def estop(self, now_s: float) -> None:
        """Latch: every step returns the idle action and chunks are refused until :meth:`reset`."""
        self.estopped = True
        self._block = None

    def reset(self, now_s: float) -> None:
        """A new episode: clear the e-stop, drop the block, warm up again; chunks observed before ``now_s``
        are refused (``predates_request``)."""
        self.estopped = False
        self._new_episode(float(now_s) if _finite(now_s) else -math.inf)

    def rebase_clock(self, now_s: float) -> None:
        """The caller's clock was reset to ``now_s`` (s), behind its last call (a bag replayed in a loop, a
        simulator reset): the stamps of the old time base go -- the newest accepted chunk's (so chunks stamped
        in the new base are not refused as ``non_increasing_stamp``), a wait's start (now ``now_s``: chunks
        observed from now on answer it) and the last request's time. Rows are counted in steps, not seconds:
        the block in progress, the episode's step count and the e-stop are kept. Counted in
        ``metrics.clock_jumps``."""
        now = float(now_s)
        self.metrics.clock_jumps += 1
        self._newest_stamp = -math.inf
        if self._fresh_after_s > now:
            self._fresh_after_s = now
        self._last_request_s = None

    # ------------------------------------------------------------------ the step

    def _idle(self, k: int, now: float, reason: str) -> Row:
        self.metrics.idle[reason] = self.metrics.idle.get(reason, 0) + 1
        return Row(k, now, "idle", self.idle_values(), reason=reason)

    def step(self, now_s: float) -> Row:
        """The action for this environment / control step (call exactly once per step)."""
        m = self.metrics
        m.steps += 1
        if not _finite(now_s):
            return self._idle(self._step, math.nan, "bad_time")  # not a step of the episode
        now = float(now_s)
        k = self._step
        self._step += 1
        if self.estopped:
            return self._idle(k, now, "estop")
        if k < self.cfg.warmup_steps:
            m.warmup_steps += 1
            if self._step == self.cfg.warmup_steps:
                self._start_wait(now)
            return Row(k, now, "warmup", self.idle_values())
        if self._block is None:
            self._wait_steps += 1
            return self._idle(k, now, "waiting_chunk")
        i = self._next
        values = np.clip(self._block[i], self._lower, self._upper)
        if not np.array_equal(values, self._block[i]):
            m.clipped_rows += 1
        self._next += 1
        self._last = values.copy()
        self._grip_cmd = values[self._grip].copy()
        m.rows += 1
        row = Row(k, now, "row", values, chunk_id=self._block_id, row=i)
        if self._next >= self._block.shape[0]:
            self._block = None
            m.blocks_completed += 1
            self._start_wait(now)
        return row


def _finite(x: object) -> bool:
    return isinstance(x, (int, float, np.floating, np.integer)) and not isinstance(x, bool) and math.isfinite(x)
