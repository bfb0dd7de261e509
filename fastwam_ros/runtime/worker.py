"""The policy worker: ONE dedicated thread that owns the model.

ROS callbacks never touch torch. They hand the newest observation to :meth:`PolicyWorker.submit`
(a single slot: a newer observation replaces a pending older one, counted as *superseded*), and a
timer in the node drains finished chunks with :meth:`PolicyWorker.pop_results`.

The model is created *on the worker thread* (so its CUDA context and stream belong to that
thread), its instruction cache is filled and it is warmed up before :meth:`start` returns. Other
model operations (instruction change, reset) are queued with :meth:`call` and run on the same
thread between inferences.

Supervision: ANY exception inside ``predict`` (``BaseException`` included: ``SystemExit``,
``KeyboardInterrupt``, a CUDA out-of-memory ``RuntimeError``) becomes a result with ``error`` set
and the thread keeps running. Should the thread itself die anyway (a bug in the loop, an
exception that cannot even be formatted), ``crashed`` says so and :meth:`restart` starts a new
thread on the already loaded model without blocking; :class:`PolicyRuntime` decides when (bounded
retries with back-off). ``jobs_started`` lets the caller time a running job with its own clock.

Durations are measured with an injectable monotonic clock (``perf_clock``, default
``time.perf_counter``); they are measurements, not inputs to any decision.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class WorkerError(RuntimeError):
    """The worker could not start (model load / warm-up failed or timed out)."""


@dataclass
class InferenceJob:
    """One observation handed to the worker.

    ``frame``: float32 [3, H, W] in [-1, 1]; ``proprio``: [D] or None; ``stamp_s``: the
    observation's capture stamp (ROS time, s); ``prefix``: optional [K, A] committed actions for
    real-time chunking (absolute, denormalised): the previous plan, row k meant for chunk step k;
    ``prefix_weight``: optional [K] in [0, 1] (1 = hard, 0 = step free; :func:`fastwam_ros.model.network.rtc.rtc_weights`);
    ``rtc_mode``: ``inpaint`` | ``guided`` | ``off``; ``guidance_beta``: the guided mode's weight clip;
    ``meta``: anything to carry to the result.
    """

    frame: np.ndarray
    proprio: np.ndarray | None
    stamp_s: float
    instruction: str
    seed: int | None = None
    prefix: np.ndarray | None = None
    prefix_weight: np.ndarray | None = None
    rtc_mode: str = "inpaint"
    guidance_beta: float = 5.0
    meta: dict = field(default_factory=dict)
    submitted_perf_s: float = 0.0


@dataclass
class InferenceResult:
    """A finished job. ``actions`` [H, A] (denormalised) or None with ``error`` set. ``committed_steps``:
    steps hard-constrained to the previous plan; ``guided_steps``: steps with a non-zero weight; ``rtc_mode``:
    the real-time-chunking mode used (``off`` without a previous plan)."""

    job: InferenceJob
    chunk_id: int
    actions: np.ndarray | None
    timing_s: dict[str, float]
    error: str | None = None
    committed_steps: int = 0
    guided_steps: int = 0
    rtc_mode: str = "off"
    job_index: int = -1  # the worker's jobs_started count when it took this job

    @property
    def ok(self) -> bool:
        return self.error is None


class PolicyWorker:
    """Owns a policy object on one thread; newest-observation-wins slot; never dies on errors.

    ``factory()`` builds the policy (called on the worker thread): a
    :class:`~fastwam_ros.runtime.interfaces.ChunkPolicy`, ``predict(frame, instruction, proprio, *, seed,
    prefix, prefix_weight)`` returning the actions or an object with ``actions`` and optionally ``timing_s`` and
    ``committed_steps``; ``set_instruction``, ``warmup``, ``reset`` are used when present.
    """

    def __init__(
        self,
        factory: Callable[[], Any],
        *,
        instruction: str = "",
        warmup: bool = True,
        max_results: int = 8,
        perf_clock: Callable[[], float] = time.perf_counter,
        name: str = "fastwam-policy-worker",
        validate: Callable[[Any], list[str]] | None = None,
        check_output: Callable[[np.ndarray], str | None] | None = None,
    ):
        """``validate(policy)`` → problems (run after load; any problem fails :meth:`start`);
        ``check_output(actions)`` → problem or None (applied to the warm-up output)."""
        self._factory = factory
        self._instruction = instruction
        self._warmup = warmup
        self._clock = perf_clock
        self._name = name
        self._cv = threading.Condition()
        self._pending: InferenceJob | None = None
        self._commands: deque = deque()
        self._results: deque = deque(maxlen=max(1, int(max_results)))
        self._thread: threading.Thread | None = None
        self._stop = False
        self._ready = threading.Event()
        self._load_error: str | None = None
        self._busy = False
        self._chunk_id = 0
        self._validate = validate
        self._check_output = check_output
        self.policy: Any = None  # touched only on the worker thread (and after stop)
        self.current_instruction = ""
        self.load_timing_s: dict[str, float] = {}
        # counters (read from other threads; ints are atomic enough under the GIL)
        self.submitted = 0
        self.superseded = 0
        self.completed = 0
        self.errors = 0
        self.results_dropped = 0
        self.last_error: str | None = None
        self.jobs_started = 0  # increments when the thread takes a job (the caller times it with its clock)
        self.crashes = 0  # times the thread died outside a job
        self.restarts = 0
        self.last_crash: str | None = None
        self.error_kinds: dict[str, int] = {}

    # -- lifecycle -----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._load_error is None

    @property
    def crashed(self) -> bool:
        """The thread died after a successful start (not asked to stop): a candidate for :meth:`restart`."""
        t = self._thread
        return (t is not None and not t.is_alive() and not self._stop and self._load_error is None
                and self._ready.is_set())

    @property
    def busy(self) -> bool:
        """True while a job is pending or running (the node's trigger logic reads this)."""
        with self._cv:
            return self._busy or self._pending is not None

    def start(self, timeout_s: float | None = None) -> None:
        """Start the thread, build + warm up the model there; raise :class:`WorkerError` on failure."""
        if self._thread is not None:
            raise WorkerError("worker already started")
        self._stop = False
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            self.stop(timeout_s=0.1)
            raise WorkerError(f"model did not load within {timeout_s} s")
        if self._load_error is not None:
            err = self._load_error
            self._thread.join(timeout=5.0)
            self._thread = None
            raise WorkerError(err)

    def restart(self) -> bool:
        """Start a new thread after a crash, reusing the loaded model (never blocks). False when not crashed."""
        if not self.crashed:
            return False
        self.restarts += 1
        with self._cv:
            self._busy = False
        self._thread = threading.Thread(target=self._run, kwargs={"load": self.policy is None},
                                        name=self._name, daemon=True)
        self._thread.start()
        return True

    def stop(self, timeout_s: float | None = 10.0) -> bool:
        """Ask the thread to finish (after the running job) and join it. True when it stopped."""
        with self._cv:
            self._stop = True
            self._pending = None
            self._cv.notify_all()
        t = self._thread
        if t is None:
            return True
        t.join(timeout_s)
        alive = t.is_alive()
        if not alive:
            self._thread = None
        return not alive

    # -- hand-over -----------------------------------------------------------------------------------

    def submit(self, job: InferenceJob) -> bool:
        """Put ``job`` in the slot. Returns True when it replaced an older pending job."""
        if not self.running:
            raise WorkerError("worker is not running")
        job.submitted_perf_s = self._clock()
        with self._cv:
            replaced = self._pending is not None
            if replaced:
                self.superseded += 1
            self._pending = job
            self.submitted += 1
            self._cv.notify_all()
        return replaced

    def clear_pending(self) -> bool:
        with self._cv:
            had = self._pending is not None
            self._pending = None
            return had

    def call(self, fn: Callable[[Any], Any], timeout_s: float | None = 30.0) -> Any:
        """Run ``fn(policy)`` on the worker thread (between jobs) and return its result.

        Exceptions raised by ``fn`` are re-raised here.
        """
        if not self.running:
            raise WorkerError("worker is not running")
        if threading.current_thread() is self._thread:
            return fn(self.policy)
        done = threading.Event()
        box: dict[str, Any] = {}
        with self._cv:
            self._commands.append((fn, box, done))
            self._cv.notify_all()
        if not done.wait(timeout_s):
            raise WorkerError(f"worker did not run the command within {timeout_s} s")
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def set_instruction(self, text: str, timeout_s: float | None = 60.0) -> None:
        """Change the instruction (fills the model's text cache on the worker thread)."""
        self.call(lambda _p: self._apply_instruction(text), timeout_s)

    def reset(self, timeout_s: float | None = 30.0) -> None:
        """Drop the pending job, reset the model state and restart chunk ids at 0."""
        self.clear_pending()
        self.call(self._reset_model, timeout_s)

    def reset_async(self) -> threading.Event:
        """:meth:`reset` without waiting (services must not block on a busy or hung model): drops the pending
        job now; the model reset and chunk-id restart run on the thread before its next job. Returns an Event
        set when done."""
        self.clear_pending()
        return self.call_async(self._reset_model)

    def _reset_model(self, policy: Any) -> None:
        if hasattr(policy, "reset"):
            policy.reset()
        self._chunk_id = 0

    def call_async(self, fn: Callable[[Any], Any]) -> threading.Event:
        """Queue ``fn(policy)`` for the worker thread and return at once (an Event set when it ran). A crashed
        worker keeps the command for the thread :meth:`restart` starts."""
        if not (self.running or self.crashed):
            raise WorkerError("worker is not running")
        done = threading.Event()
        with self._cv:
            self._commands.append((fn, {}, done))
            self._cv.notify_all()
        return done

    def pop_results(self) -> list[InferenceResult]:
        with self._cv:
            out = list(self._results)
            self._results.clear()
        return out

    # -- thread body ---------------------------------------------------------------------------------

    def _apply_instruction(self, text: str) -> float:
        t0 = self._clock()
        if hasattr(self.policy, "set_instruction"):
            self.policy.set_instruction(text)
        self.current_instruction = text
        return self._clock() - t0

    def _load(self) -> None:
        t0 = self._clock()
        self.policy = self._factory()
        t1 = self._clock()
        self.load_timing_s["load"] = t1 - t0
        problems = list(self._validate(self.policy)) if self._validate is not None else []
        if problems:
            raise WorkerError("; ".join(problems))
        if self._instruction:
            self.load_timing_s["instruction"] = self._apply_instruction(self._instruction)
        if self._warmup:
            t2 = self._clock()
            self._warm_up()
            self.load_timing_s["warmup"] = self._clock() - t2

    def _warm_up(self) -> None:
        """One prediction on blank inputs whose output must pass ``check_output`` (finite, [H, A]); falls back to
        the policy's own ``warmup()`` when it does not describe its inputs."""
        from .plausibility import warmup_inputs

        instruction = self.current_instruction or self._instruction
        blank = warmup_inputs(self.policy) if hasattr(self.policy, "predict") and instruction else None
        if blank is None:
            if hasattr(self.policy, "warmup"):
                self.policy.warmup()
            return
        frame, state = blank
        out = self.policy.predict(frame, instruction, state)
        actions = np.asarray(getattr(out, "actions", out), dtype=np.float64)
        problem = self._check_output(actions) if self._check_output is not None else None
        if problem is None and (actions.ndim != 2 or not np.all(np.isfinite(actions))):
            problem = f"actions of shape {actions.shape} with non-finite values"
        if problem:
            raise WorkerError(f"warm-up output is implausible: {problem}")

    def _run(self, load: bool = True) -> None:
        if load:
            try:
                self._load()
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                self._load_error = _describe(exc)
                self._ready.set()
                return
        self._ready.set()
        crashed = False
        try:
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - the thread dies; `crashed` reports it, restart() recovers
            crashed = True
            self.crashes += 1
            self.last_crash = f"{_describe(exc)}\n{_format_tb()}"
        finally:
            with self._cv:
                self._busy = False
                # stopped: fail pending commands so callers don't hang; crashed: keep them for the restarted thread
                while self._commands and (self._stop or not crashed):
                    _fn, box, done = self._commands.popleft()
                    box["error"] = WorkerError("worker stopped")
                    done.set()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._stop and self._pending is None and not self._commands:
                    self._cv.wait()
                if self._stop:
                    return
                if self._commands:
                    cmd = self._commands.popleft()
                    job = None
                else:
                    cmd = None
                    job, self._pending = self._pending, None
                    self._busy = True
                    self.jobs_started += 1
                    index = self.jobs_started
            if cmd is not None:
                fn, box, done = cmd
                try:
                    box["value"] = fn(self.policy)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    box["error"] = exc
                done.set()
                continue
            result = self._infer(job)
            result.job_index = index
            with self._cv:
                if len(self._results) == self._results.maxlen:
                    self.results_dropped += 1
                self._results.append(result)
                # counted only once the result can be popped: a caller waiting on a counter then finds it
                if result.error is None:
                    self.completed += 1
                else:
                    self.errors += 1
                self._busy = False

    def _infer(self, job: InferenceJob) -> InferenceResult:
        t_start = self._clock()
        timing: dict[str, float] = {"queue": max(0.0, t_start - job.submitted_perf_s)}
        try:
            if job.instruction != self.current_instruction:
                timing["instruction"] = self._apply_instruction(job.instruction)
            rtc = job.rtc_mode != "off" and job.prefix is not None and len(job.prefix) > 0
            prefix = job.prefix if rtc else None
            weight = job.prefix_weight if rtc else None
            t0 = self._clock()
            # the typed seam (runtime.interfaces.ChunkPolicy): every keyword is passed; the policy reports how
            # many prefix steps it honoured (``committed_steps``; a policy without RTC ignores the prefix)
            out = self.policy.predict(job.frame, job.instruction, job.proprio, seed=job.seed, prefix=prefix,
                                      prefix_weight=weight, rtc_mode=job.rtc_mode if rtc else "off",
                                      guidance_beta=job.guidance_beta)
            timing["inference"] = self._clock() - t0
            actions = np.asarray(getattr(out, "actions", out), dtype=np.float64)
            if actions.ndim != 2 or actions.shape[0] < 1:
                raise ValueError(f"policy returned actions of shape {actions.shape}, expected [H, A]")
            if not np.all(np.isfinite(actions)):
                raise FloatingPointError("policy returned non-finite actions")
            for k, v in (getattr(out, "timing_s", None) or {}).items():
                timing[f"model.{k}"] = float(v)
            cid = self._chunk_id
            self._chunk_id += 1
            # the policy reports what it honoured (a policy without RTC ignores the prefix: 0 steps, mode off)
            committed = int(getattr(out, "committed_steps", 0) or 0)
            guided = int(getattr(out, "guided_steps", committed) or 0)
            mode = str(getattr(out, "rtc_mode", "off" if not committed else job.rtc_mode))
            return InferenceResult(job, cid, actions, timing, None, committed, guided, mode)
        except BaseException as exc:  # noqa: BLE001 - SystemExit/KeyboardInterrupt too: counted, thread survives
            kind = type(exc).__name__
            self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1
            self.last_error = _describe(exc)
            timing["inference"] = self._clock() - t_start
            return InferenceResult(job, -1, None, timing, f"{self.last_error}\n{_format_tb()}")


def _describe(exc: BaseException) -> str:
    """``Type: message`` that cannot itself raise (an exception's __str__ may)."""
    try:
        text = str(exc)
    except BaseException:  # noqa: BLE001
        text = "<unprintable>"
    return f"{type(exc).__name__}: {text[:500]}"


def _format_tb() -> str:
    try:
        return traceback.format_exc(limit=3)
    except BaseException:  # noqa: BLE001
        return ""
