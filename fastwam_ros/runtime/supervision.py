"""Supervision of the policy worker from the node's tick (ROS-free, time passed in).

* Restart: a worker thread that died (``PolicyWorker.crashed``) is restarted on the loaded model after a
  back-off that doubles per attempt (``restart_backoff_s`` · 2^n, capped at ``MAX_BACKOFF_S``), at most
  ``max_restarts`` times in a row; a job that completes resets the count. Past the limit the worker stays
  down and the diagnostic is ERROR.
* Overrun: a job running longer than ``inference_timeout_s`` (timed with the caller's clock from the tick on
  which the worker was first seen to take it) is counted once as a timeout and makes the inference
  diagnostic ERROR until it finishes; its result, when it comes, is dropped (it would be stale).
Nothing here raises: every check is a read of counters the worker thread updates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_BACKOFF_S = 30.0


@dataclass
class SupervisionConfig:
    inference_timeout_s: float = 10.0  # 0 = no overrun check
    max_restarts: int = 5
    restart_backoff_s: float = 0.5


class WorkerSupervisor:
    def __init__(self, worker: Any, config: SupervisionConfig | None = None):
        self.worker = worker
        self.cfg = config or SupervisionConfig()
        self.timeouts = 0
        self.consecutive_restarts = 0
        self.gave_up = False
        self._crash_seen_s: float | None = None
        self._seen_jobs = int(getattr(worker, "jobs_started", 0))
        self._job_since_s: float | None = None
        self._timed_out_jobs: set[int] = set()
        self._completed_at_restart = int(getattr(worker, "completed", 0))

    # -- per tick ---------------------------------------------------------------------------------------

    def poll(self, now_s: float) -> list[str]:
        """Check the worker; returns log lines for what happened (a restart, a timeout, giving up)."""
        events: list[str] = []
        w = self.worker
        if int(getattr(w, "completed", 0)) > self._completed_at_restart:
            self.consecutive_restarts = 0
            self._completed_at_restart = int(w.completed)
        if w.crashed and not self.gave_up:
            events += self._maybe_restart(now_s)
        jobs = int(w.jobs_started)
        busy = bool(w.busy)
        if jobs != self._seen_jobs:
            self._seen_jobs, self._job_since_s = jobs, now_s
        if not busy:
            self._job_since_s = None
        if busy and self._job_since_s is not None and self.cfg.inference_timeout_s > 0:
            if now_s - self._job_since_s > self.cfg.inference_timeout_s and jobs not in self._timed_out_jobs:
                self._timed_out_jobs.add(jobs)
                self.timeouts += 1
                events.append(f"inference overrun: job {jobs} running > inference_timeout_s "
                              f"{self.cfg.inference_timeout_s:g} s (counted as a timeout)")
        return events

    def _maybe_restart(self, now_s: float) -> list[str]:
        if self._crash_seen_s is None:
            self._crash_seen_s = now_s
        if self.consecutive_restarts >= self.cfg.max_restarts:
            self.gave_up = True
            return [f"policy worker died {self.consecutive_restarts + 1} times in a row; giving up "
                    f"(last: {self.worker.last_crash})"]
        wait = min(MAX_BACKOFF_S, self.cfg.restart_backoff_s * (2 ** self.consecutive_restarts))
        if now_s - self._crash_seen_s < wait:
            return []
        self.consecutive_restarts += 1
        self._crash_seen_s = None
        self._completed_at_restart = int(self.worker.completed)
        if self.worker.restart():
            return [f"policy worker restarted (attempt {self.consecutive_restarts}/{self.cfg.max_restarts}); "
                    f"it died with: {self.worker.last_crash}"]
        return []

    # -- queries --------------------------------------------------------------------------------------

    def overrun_s(self, now_s: float) -> float | None:
        """Seconds the current job has run beyond ``inference_timeout_s`` (None when it has not)."""
        if self._job_since_s is None or self.cfg.inference_timeout_s <= 0 or not self.worker.busy:
            return None
        over = now_s - self._job_since_s - self.cfg.inference_timeout_s
        return over if over > 0 else None

    def running_for_s(self, now_s: float) -> float | None:
        return None if self._job_since_s is None or not self.worker.busy else now_s - self._job_since_s

    def result_timed_out(self, result: Any) -> bool:
        """True for the result of a job that overran (its index = the worker's jobs_started when it began)."""
        idx = getattr(result, "job_index", None)
        return idx is not None and idx in self._timed_out_jobs
