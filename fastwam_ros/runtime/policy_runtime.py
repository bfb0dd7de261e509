"""Everything the policy node does, without ROS: trigger logic, enable state, instruction, RTC prefix,
chunk outputs, diagnostics. The node shell converts messages, passes ROS time in, and publishes what
this returns.

Time: every method that depends on time takes ``now_s`` (ROS time, seconds).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastwam_ros.model.network.rtc import rtc_weights

from .chunks import (
    ChunkFields,
    LineMarker,
    TrajectoryFields,
    chunk_fields,
    chunk_plot_markers,
    end_pose,
    trajectory_fields,
)
from .clock import ClockWatch
from .diagnostics import DiagStatus, latency_values, truncate_text
from .interfaces import ObservationSource, PolicyLoader, PolicyLoadRequest, fastwam_loader
from .plausibility import DEFAULT_MAX_ABS_ACTION, OutputLimits, check_actions, model_horizon
from .stats import LatencyStats, RateMeter, ReasonCounter
from .supervision import SupervisionConfig, WorkerSupervisor
from .worker import InferenceJob, InferenceResult, PolicyWorker, WorkerError


class TriggerPolicy:
    """Decides when an observation goes to the worker.

    continuous: every new observation (the worker's slot keeps only the newest);
    rate: at most one per ``1/rate_hz`` seconds; on_request: one per :meth:`request`.
    An observation is never submitted twice (same stamp).
    """

    MODES = ("continuous", "on_request", "rate")

    def __init__(self, mode: str = "continuous", rate_hz: float = 2.0):
        self.configure(mode, rate_hz)
        self.last_submit_s: float | None = None
        self.last_stamp_s: float | None = None
        self.pending_requests = 0

    def configure(self, mode: str, rate_hz: float) -> None:
        if mode not in self.MODES:
            raise ValueError(f"trigger mode must be one of {self.MODES}, got {mode!r}")
        if not rate_hz > 0:
            raise ValueError(f"trigger rate must be > 0 Hz, got {rate_hz}")
        self.mode, self.rate_hz = mode, float(rate_hz)

    def request(self) -> None:
        self.pending_requests = 1  # requests do not stack: one chunk answers all pending ones

    def should_submit(self, now_s: float, stamp_s: float) -> bool:
        if self.last_stamp_s is not None and stamp_s <= self.last_stamp_s:
            return False
        if self.mode == "on_request":
            return self.pending_requests > 0
        if self.mode == "rate":
            if self.last_submit_s is not None and now_s < self.last_submit_s:  # time jumped back
                self.last_submit_s = None
            return self.last_submit_s is None or now_s - self.last_submit_s >= 1.0 / self.rate_hz - 1e-9
        return True

    def submitted(self, now_s: float, stamp_s: float) -> None:
        self.last_submit_s, self.last_stamp_s = now_s, stamp_s
        if self.mode == "on_request":
            self.pending_requests = 0

    def reset(self) -> None:
        self.last_submit_s = self.last_stamp_s = None
        self.pending_requests = 0


def seed_for(policy: str, base_seed: int, index: int) -> int | None:
    """Sampler seed for the ``index``-th submitted observation (None = fresh random noise)."""
    if policy == "fixed":
        return int(base_seed)
    if policy == "increment":
        return int(base_seed) + int(index)
    if policy == "random":
        return None
    raise ValueError(f"seed policy must be fixed, increment or random, got {policy!r}")


@dataclass
class ChunkOutputs:
    """What the node publishes for one finished chunk."""

    chunk: ChunkFields
    previews: dict[str, TrajectoryFields]
    ghost_names: list[str]
    ghost_positions: list[float]
    markers: list[LineMarker]
    latency_s: float


@dataclass
class PrefixState:
    """The plan the controller is executing, as last published: rows at ``stamp_s + j * step_period_s``."""

    stamp_s: float
    positions: np.ndarray  # [K, J] in the policy's joint order, row j at stamp_s + j * step_period_s
    received_s: float
    step_period_s: float
    chunk_id: int | None = None  # the newest chunk the controller had accepted when it published this plan


def align_plan(plan: PrefixState, obs_stamp_s: float, step_period_s: float, horizon: int | None = None
               ) -> tuple[np.ndarray, np.ndarray] | None:
    """The executing plan on the new chunk's step grid ``obs_stamp_s + k * step_period_s``.

    Returns (positions [L, J], known [L] bool) for the L steps (at most ``horizon``) up to the end of the
    plan: positions interpolated linearly between the plan rows; ``known`` False for steps before the plan's
    first row (already executed when it was published: no data, left free). None when no step of the new
    chunk falls inside the plan."""
    pos = np.asarray(plan.positions, dtype=np.float64)
    if pos.ndim != 2 or len(pos) == 0 or not step_period_s > 0:
        return None
    t_pre = plan.stamp_s + plan.step_period_s * np.arange(len(pos))
    end = t_pre[-1] + 1e-9
    if obs_stamp_s > end:
        return None
    n = int(np.floor((end - obs_stamp_s) / step_period_s)) + 1
    if horizon is not None:
        n = min(n, int(horizon))
    t_new = obs_stamp_s + step_period_s * np.arange(n)
    out = np.stack([np.interp(t_new, t_pre, pos[:, j]) for j in range(pos.shape[1])], axis=1)
    known = t_new >= t_pre[0] - 1e-9
    if not known.any():
        return None
    return out, known


class DelayEstimator:
    """The executed delay d of real-time chunking, in chunk steps, from measured latency.

    ``add(latency_s)`` records one replan's end-to-end latency (observation capture stamp -> chunk published,
    seconds); :meth:`delay_steps` is ``ceil((q-th percentile of the last window latencies + margin_s) /
    step_period_s)``: the new chunk's steps that will be in the past (or inside the controller's hand-off margin)
    when it arrives. Before the first measurement the caller's ``fallback_s`` (e.g. the observation's age at
    submission, a lower bound) stands in for the percentile."""

    def __init__(self, percentile: float = 90.0, window: int = 20, margin_s: float = 0.02):
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"delay percentile must be in [0, 100], got {percentile}")
        if int(window) < 1:
            raise ValueError(f"delay window must be >= 1, got {window}")
        if not margin_s >= 0.0:
            raise ValueError(f"delay margin must be >= 0 s, got {margin_s}")
        self.percentile, self.window, self.margin_s = float(percentile), int(window), float(margin_s)
        self._lat: list[float] = []

    def add(self, latency_s: float) -> None:
        if np.isfinite(latency_s) and latency_s >= 0.0:
            self._lat.append(float(latency_s))
            del self._lat[: -self.window]

    def reset(self) -> None:
        self._lat.clear()

    @property
    def samples(self) -> int:
        return len(self._lat)

    def latency_s(self, fallback_s: float = 0.0) -> float:
        return float(np.percentile(self._lat, self.percentile)) if self._lat else max(float(fallback_s), 0.0)

    def delay_steps(self, step_period_s: float, fallback_s: float = 0.0) -> int:
        return max(0, int(np.ceil((self.latency_s(fallback_s) + self.margin_s) / step_period_s - 1e-9)))


def rtc_request(plan: PrefixState, obs_stamp_s: float, step_period_s: float, delay_steps: int, mask: str = "soft",
                horizon: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """(previous plan [L, J] on the new chunk's grid, weights [L]) for the sampler: the RTC schedule of
    :func:`fastwam_ros.model.network.rtc.rtc_weights` with delay ``delay_steps`` and overlap L, zero where the plan has
    no data. None when the plan does not reach the new chunk."""
    aligned = align_plan(plan, obs_stamp_s, step_period_s, horizon)
    if aligned is None:
        return None
    positions, known = aligned
    weights = rtc_weights(len(positions), delay_steps, len(positions), mask) * known
    if not weights.any():
        return None
    return positions, weights


@dataclass
class PolicyRuntimeConfig:
    joint_names: list[str]
    arms: dict[str, list[str]]
    step_period_s: float
    trigger_mode: str = "continuous"
    trigger_rate_hz: float = 2.0
    seed_policy: str = "fixed"
    seed: int = 42
    rtc_mode: str = "inpaint"
    rtc_mask: str = "soft"
    rtc_guidance_beta: float = 5.0
    rtc_delay_percentile: float = 90.0
    rtc_delay_window: int = 20
    rtc_delay_margin_s: float = 0.02
    rtc_plan_wait_s: float = 0.1
    max_prefix_age_s: float = 0.5
    model_id: str = ""
    tiled_image_rate_hz: float = 2.0
    markers: bool = True
    ghost_prefix: str = ""
    cameras: list[str] = field(default_factory=list)
    max_instruction_chars: int = 512
    inference_timeout_s: float = 10.0  # 0 = no overrun check
    max_worker_restarts: int = 5
    worker_restart_backoff_s: float = 0.5
    max_first_step_distance: float = 1.0  # rad (the joint's unit); 0 = no check
    max_abs_action: float = DEFAULT_MAX_ABS_ACTION
    clock_jump_threshold_s: float = 1.0  # the node's clock going back more than this is a new time base (s)

    @classmethod
    def from_params(cls, p: Mapping[str, Any], robot: Any, model_id: str = "") -> PolicyRuntimeConfig:
        """Deployment knobs from the node's parameters, robot facts from the robot file (a RobotSpec)."""
        return cls(
            joint_names=list(robot.joints),
            arms={g.name: list(g.joints) for g in robot.groups},
            step_period_s=float(robot.chunk_step_period_s),
            trigger_mode=p["trigger.mode"],
            trigger_rate_hz=float(p["trigger.rate_hz"]),
            seed_policy=p["model.seed_policy"],
            seed=int(p["model.seed"]),
            rtc_mode=p["rtc.mode"],
            rtc_mask=p["rtc.mask"],
            rtc_guidance_beta=float(p["rtc.guidance_beta"]),
            rtc_delay_percentile=float(p["rtc.delay_percentile"]),
            rtc_delay_window=int(p["rtc.delay_window"]),
            rtc_delay_margin_s=float(p["rtc.delay_margin_s"]),
            rtc_plan_wait_s=float(p["rtc.plan_wait_s"]),
            max_prefix_age_s=float(p["rtc.max_prefix_age_s"]),
            model_id=model_id,
            tiled_image_rate_hz=float(p["debug.tiled_image_rate_hz"]),
            markers=bool(p["debug.markers"]),
            ghost_prefix=p["debug.ghost_prefix"],
            cameras=list(robot.camera_names),
            max_instruction_chars=int(p.get("max_instruction_chars", 512)),
            inference_timeout_s=float(p.get("inference_timeout_s", 10.0)),
            max_worker_restarts=int(p.get("worker.max_restarts", 5)),
            worker_restart_backoff_s=float(p.get("worker.restart_backoff_s", 0.5)),
            max_first_step_distance=float(p.get("output.max_first_step_distance", 1.0)),
            max_abs_action=float(p.get("output.max_abs_action", DEFAULT_MAX_ABS_ACTION)),
            clock_jump_threshold_s=float(robot.perception_config().clock_jump_threshold_s),
        )


def frame_to_rgb8(frame: np.ndarray) -> np.ndarray:
    """Model input float [3, H, W] in [-1, 1] → uint8 [H, W, 3] (for the tiled-input image)."""
    f = np.asarray(frame, dtype=np.float32)
    if f.ndim != 3 or f.shape[0] != 3:
        raise ValueError(f"expected a [3, H, W] frame, got {f.shape}")
    return np.clip(np.round((f.transpose(1, 2, 0) + 1.0) * 127.5), 0, 255).astype(np.uint8)


class PolicyRuntime:
    """Wires an observation pipeline and a :class:`PolicyWorker` together, ROS-free.

    ``pipeline``: an :class:`~fastwam_ros.runtime.interfaces.ObservationSource` (``add_image``,
    ``add_joint_state``, ``poll(now_s)`` → observation with ``frame``, ``stamp_s``, ``proprio``), optionally
    with ``stats(now_s)`` → dict.
    """

    def __init__(self, config: PolicyRuntimeConfig, pipeline: ObservationSource, worker: PolicyWorker, *,
                 instruction: str, enabled: bool = False):
        self.cfg = config
        self.pipeline = pipeline
        self.worker = worker
        self.trigger = TriggerPolicy(config.trigger_mode, config.trigger_rate_hz)
        self.instruction = instruction
        self.enabled = enabled
        self.latency = LatencyStats()
        self.rejections = ReasonCounter()
        self.camera_rates = {c: RateMeter() for c in config.cameras}
        self.joint_rate = RateMeter()
        self.prefix: PrefixState | None = None
        self.delay = DelayEstimator(config.rtc_delay_percentile, config.rtc_delay_window, config.rtc_delay_margin_s)
        self.last_delay_steps: int | None = None
        self._published_id: int | None = None  # newest chunk id published, and when (for the plan wait)
        self._published_s = 0.0
        self.submissions = 0
        self.published = 0
        self.last_obs = None
        self.last_chunk_stamp_s: float | None = None
        self.last_error: str | None = None
        self._last_image_pub_s: float | None = None
        self._pending_frame: np.ndarray | None = None
        self.supervisor = WorkerSupervisor(worker, SupervisionConfig(
            config.inference_timeout_s, config.max_worker_restarts, config.worker_restart_backoff_s))
        self.limits = OutputLimits(horizon=model_horizon(getattr(worker, "policy", None)),
                                   max_abs=config.max_abs_action,
                                   max_first_step_distance=config.max_first_step_distance)
        self.epoch = 0  # bumped by reset(): results of jobs submitted before it are dropped
        self.events: list[str] = []  # log lines for the shell (restarts, timeouts); drained by pop_events()
        self.implausible = 0
        self.clock = ClockWatch(config.clock_jump_threshold_s)
        self.notices: list[str] = []  # warnings for the shell (a clock reset); drained by pop_notices()

    # -- inputs ----------------------------------------------------------------------------------------

    def on_image(self, camera: str, msg: Any, stamp_s: float, now_s: float) -> bool:
        """Hand a camera message to the pipeline. False (and a counted reason) when it was refused."""
        if camera in self.camera_rates:
            self.camera_rates[camera].tick(now_s)
        try:
            return bool(self.pipeline.add_image(camera, msg, stamp_s))  # the pipeline counts its rejections
        except Exception as exc:  # noqa: BLE001 - bad input is counted, never fatal
            self.rejections.count(f"image:{getattr(exc, 'reason', type(exc).__name__)}")
            self.last_error = f"{camera}: {exc}"
            return False

    def on_joint_state(self, stamp_s: float, names: Sequence[str], positions: Sequence[float], now_s: float) -> bool:
        self.joint_rate.tick(now_s)
        try:
            return bool(self.pipeline.add_joint_state(stamp_s, list(names), list(positions)))
        except Exception as exc:  # noqa: BLE001
            self.rejections.count(f"joint_state:{getattr(exc, 'reason', type(exc).__name__)}")
            self.last_error = f"joint_states: {exc}"
            return False

    def on_instruction(self, text: str) -> str | None:
        """New instruction; returns an error text (and keeps the old one) when it is unusable."""
        text = (text or "").strip()
        if not text:
            self.rejections.count("instruction:empty")
            return "empty instruction ignored"
        if len(text) > self.cfg.max_instruction_chars:
            self.rejections.count("instruction:too_long")
            return (f"instruction of {len(text)} characters refused (max_instruction_chars "
                    f"{self.cfg.max_instruction_chars}): {truncate_text(text, 60)}")
        self.instruction = text
        return None

    def on_committed_prefix(self, stamp_s: float, joint_names: Sequence[str], positions: np.ndarray,
                            now_s: float, step_period_s: float | None = None, chunk_id: int | None = None
                            ) -> str | None:
        """Store the plan the controller is executing (the whole remaining plan; reordered to the policy's
        joints); row j is meant for ``stamp_s + j * step_period_s`` (default: the chunk step period);
        ``chunk_id``: the newest chunk the controller had accepted (None: unknown). A plan received after the
        clock went back starts the new time base here (it is of that base: kept)."""
        self._watch_clock(now_s)
        idx = {n: i for i, n in enumerate(joint_names)}
        missing = [n for n in self.cfg.joint_names if n not in idx]
        if missing:
            self.rejections.count("prefix:joint_mismatch")
            return f"committed prefix lacks joints {missing}"
        p = np.asarray(positions, dtype=np.float64)
        dt = self.cfg.step_period_s if step_period_s is None or not step_period_s > 0 else float(step_period_s)
        if p.ndim != 2 or p.shape[1] != len(joint_names) or not np.all(np.isfinite(p)):
            self.rejections.count("prefix:malformed")
            return f"committed prefix has shape {p.shape} or non-finite values"
        self.prefix = PrefixState(stamp_s, p[:, [idx[n] for n in self.cfg.joint_names]], now_s, dt,
                                  None if chunk_id is None else int(chunk_id))
        return None

    def waiting_for_plan(self, now_s: float) -> bool:
        """True while real-time chunking waits (at most ``rtc_plan_wait_s`` after publishing a chunk) for the
        controller's plan that contains the chunk just published: a replan guided by the plan from before it
        would steer the new chunk towards a plan the robot no longer executes."""
        if self.cfg.rtc_mode == "off" or self._published_id is None:
            return False
        if now_s < self._published_s or now_s - self._published_s >= self.cfg.rtc_plan_wait_s:
            return False
        have = None if self.prefix is None else self.prefix.chunk_id
        return have is None or have < self._published_id

    def request(self) -> str:
        self.trigger.request()
        return "chunk requested" if self.enabled else "chunk requested (inference is disabled: call ~/enable)"

    def set_enabled(self, on: bool) -> str:
        self.enabled = bool(on)
        if not on:
            self.worker.clear_pending()
        return "inference enabled" if on else "inference disabled"

    def reset(self) -> None:
        """Forget chunk ids, pending work, prefix and statistics; the model reset is queued on its thread and
        this returns at once (a busy or hung model never blocks the caller); results of jobs submitted before
        the reset are dropped."""
        self.trigger.reset()
        self.prefix = None
        self.delay.reset()
        self._published_id = None
        self.last_chunk_stamp_s = None
        self.epoch += 1
        try:
            self.worker.reset_async()
        except WorkerError as exc:  # stopped worker: nothing to reset on the model side
            self.last_error = f"reset: {exc}"
        self.latency.reset()
        self.rejections.reset()
        self.submissions = 0

    def pop_events(self) -> list[str]:
        """Supervision log lines since the last call (the shell logs them as errors)."""
        out, self.events = self.events, []
        return out

    def pop_notices(self) -> list[str]:
        """Warnings since the last call (a clock reset; the shell logs them as warnings)."""
        out, self.notices = self.notices, []
        return out

    # -- the tick ------------------------------------------------------------------------------------

    def _watch_clock(self, now_s: float) -> None:
        """The node's clock going back by more than ``clock_jump_threshold_s`` (bag loop, simulator reset under
        use_sim_time) starts a new time base: the trigger forgets the last submitted stamp (else no observation
        would be submitted until the new stamps pass it), the executing plan and the published chunk's id go, and
        a job in flight (observed in the old time base) is dropped when it finishes (``chunk:before_reset``).
        The pipeline resets its own old-time streams. One line for the log."""
        back = self.clock.went_back(now_s)
        if back is None:
            return
        self.trigger.reset()
        self.prefix = None
        self._published_id = None
        self.last_chunk_stamp_s = None
        self.epoch += 1
        self.notices.append(f"the clock went back {back:.3f} s (bag loop or simulator reset?): trigger and RTC plan "
                            "reset, a chunk in flight from the old time base is dropped")

    def step(self, now_s: float) -> bool:
        """Supervise the worker, poll the pipeline and hand the observation to the worker when the trigger says
        so. Never raises: anything unexpected is counted (``runtime:<Type>``) and kept for diagnostics."""
        try:
            self._watch_clock(now_s)
            self.events += self.supervisor.poll(now_s)
            return self._step(now_s)
        except Exception as exc:  # noqa: BLE001 - a tick must never raise into the executor
            self.rejections.count(f"runtime:{type(exc).__name__}")
            self.last_error = f"tick: {exc}"
            return False

    def _step(self, now_s: float) -> bool:
        try:
            obs = self.pipeline.poll(now_s)
        except Exception as exc:  # noqa: BLE001
            self.rejections.count(f"poll:{getattr(exc, 'reason', type(exc).__name__)}")
            self.last_error = f"observation: {exc}"
            return False
        if obs is None:
            return False
        self.last_obs = obs
        rgb = getattr(obs, "image_rgb", None)
        self._pending_frame = rgb if rgb is not None else frame_to_rgb8(obs.frame)
        if not self.enabled or not self.trigger.should_submit(now_s, float(obs.stamp_s)):
            return False
        if self.waiting_for_plan(now_s):
            return False
        prefix = prefix_weight = None
        if self.cfg.rtc_mode != "off" and self.prefix is not None:
            if abs(now_s - self.prefix.received_s) > self.cfg.max_prefix_age_s:  # (received "later": the clock
                self.rejections.count("prefix:stale")  # went back since, the plan is of the old time base)
            else:
                d = self.delay.delay_steps(self.cfg.step_period_s, fallback_s=now_s - float(obs.stamp_s))
                self.last_delay_steps = d
                req = rtc_request(self.prefix, float(obs.stamp_s), self.cfg.step_period_s, d, self.cfg.rtc_mask)
                if req is None:
                    self.rejections.count("prefix:outside_chunk")
                else:
                    prefix, prefix_weight = req
        job = InferenceJob(
            frame=obs.frame,
            proprio=getattr(obs, "proprio", None),
            stamp_s=float(obs.stamp_s),
            instruction=self.instruction,
            seed=seed_for(self.cfg.seed_policy, self.cfg.seed, self.submissions),
            prefix=prefix,
            prefix_weight=prefix_weight,
            rtc_mode=self.cfg.rtc_mode,
            guidance_beta=self.cfg.rtc_guidance_beta,
            meta={"submitted_s": now_s, "epoch": self.epoch},
        )
        if not self.worker.running:
            self.rejections.count("observation:worker_down")
            return False
        try:
            self.worker.submit(job)
        except WorkerError:  # died between the check and the hand-over; the supervisor restarts it
            self.rejections.count("observation:worker_down")
            return False
        self.trigger.submitted(now_s, float(obs.stamp_s))
        self.submissions += 1
        return True

    def collect(self, now_s: float) -> list[ChunkOutputs]:
        """Finished chunks → outputs to publish (errors are counted and kept for diagnostics)."""
        out = []
        try:
            self._watch_clock(now_s)
            results = self.worker.pop_results()
        except Exception as exc:  # noqa: BLE001 - never raise into the executor
            self.rejections.count(f"runtime:{type(exc).__name__}")
            return out
        for r in results:
            if r.job.meta.get("epoch", self.epoch) != self.epoch:
                self.rejections.count("chunk:before_reset")
                continue
            if self.supervisor.result_timed_out(r):
                self.rejections.count("chunk:timed_out")
                continue
            if not r.ok:
                self.rejections.count("inference:error")
                self.last_error = r.error.splitlines()[0]
                continue
            if not self.enabled:
                self.rejections.count("chunk:disabled")
                continue
            if r.actions.shape[1] != len(self.cfg.joint_names):
                self.rejections.count("chunk:action_dim")
                self.last_error = (f"model returned {r.actions.shape[1]} action dims for "
                                   f"{len(self.cfg.joint_names)} joint_names")
                continue
            bad = check_actions(r.actions, self.limits, r.job.proprio)
            if bad is not None:
                self.rejections.count(f"chunk:{bad[0]}")
                self.implausible += 1
                self.last_error = f"chunk refused: {bad[1]}"
                continue
            try:
                out.append(self._outputs(r, now_s))
            except Exception as exc:  # noqa: BLE001
                self.rejections.count(f"runtime:{type(exc).__name__}")
                self.last_error = f"chunk outputs: {exc}"
        return out

    def _outputs(self, r: InferenceResult, now_s: float) -> ChunkOutputs:
        stamp = r.job.stamp_s
        latency = now_s - stamp
        self.latency.add_many(r.timing_s)
        self.latency.add("end_to_end", latency)
        self.delay.add(latency)
        cf = chunk_fields(r.actions, self.cfg.joint_names, stamp_s=stamp, chunk_id=r.chunk_id,
                          step_period_s=self.cfg.step_period_s, latency_s=latency,
                          inference_s=r.timing_s.get("inference", 0.0), model_id=self.cfg.model_id,
                          committed_steps=r.committed_steps, rtc_mode=r.rtc_mode, guided_steps=r.guided_steps)
        previews = {
            arm: trajectory_fields(r.actions, self.cfg.joint_names, joints, step_period_s=self.cfg.step_period_s,
                                   stamp_s=stamp)
            for arm, joints in self.cfg.arms.items()
        }
        names, pos = end_pose(r.actions, self.cfg.joint_names, self.cfg.ghost_prefix)
        markers = chunk_plot_markers(r.actions, self.cfg.joint_names, step_period_s=self.cfg.step_period_s) \
            if self.cfg.markers else []
        self.published += 1
        self.last_chunk_stamp_s = stamp
        self._published_id, self._published_s = int(r.chunk_id), now_s
        return ChunkOutputs(cf, previews, names, pos, markers, latency)

    def tiled_image_due(self, now_s: float) -> np.ndarray | None:
        """The newest model input as uint8 RGB when the throttle allows (else None)."""
        if self._pending_frame is None or self.cfg.tiled_image_rate_hz <= 0:
            return None
        if self._last_image_pub_s is not None and now_s >= self._last_image_pub_s \
                and now_s - self._last_image_pub_s < 1.0 / self.cfg.tiled_image_rate_hz:
            return None
        self._last_image_pub_s = now_s
        frame, self._pending_frame = self._pending_frame, None
        return frame

    # -- diagnostics ---------------------------------------------------------------------------------

    def diagnostics(self, now_s: float, *, active: bool) -> list[DiagStatus]:
        cam = DiagStatus("cameras", 0, "ok")
        for c, m in self.camera_rates.items():
            cam.values.append((f"{c} rate (Hz)", f"{m.rate_hz(now_s):.2f}"))
            if m.rate_hz(now_s) == 0.0 and active:
                cam.escalate(1, f"no images from {c}")
        cam.values.append(("joint_states rate (Hz)", f"{self.joint_rate.rate_hz(now_s):.2f}"))
        obs = self.last_obs
        if obs is not None:
            cam.values.append(("observation skew (s)", f"{float(getattr(obs, 'skew_s', 0.0)):.4f}"))
            cam.values.append(("observation age (s)", f"{now_s - float(obs.stamp_s):.4f}"))
        stats = {}
        try:
            stats = dict(self.pipeline.stats(now_s) or {}) if hasattr(self.pipeline, "stats") else {}
        except Exception:  # noqa: BLE001 - diagnostics never throw
            stats = {}
        for k, v in sorted(_flat(stats).items()):
            cam.values.append((f"pipeline {k}", str(v)))

        inf = DiagStatus("inference", 0, "ok")
        if not active:
            inf.escalate(0, "inactive")
        elif not self.enabled:
            inf.escalate(0, "disabled (call ~/enable)")
        sup = self.supervisor
        inf.values += [
            ("enabled", str(self.enabled)),
            ("trigger", self.trigger.mode),
            ("instruction", truncate_text(self.instruction, 120)),
            ("submitted", str(self.submissions)),
            ("superseded (newest observation won)", str(self.worker.superseded)),
            ("chunks published", str(self.published)),
            ("errors", str(self.worker.errors)),
            ("inference timeouts", str(sup.timeouts)),
            ("worker restarts", str(getattr(self.worker, "restarts", 0))),
            ("chunks refused as implausible", str(self.implausible)),
            ("rtc mode", f"{self.cfg.rtc_mode} ({self.cfg.rtc_mask} mask)"),
            ("rtc executing plan", "none" if self.prefix is None else f"{len(self.prefix.positions)} steps"),
            ("rtc delay estimate (steps)", "none" if self.last_delay_steps is None else str(self.last_delay_steps)),
            ("clock resets (time base changes)", str(self.clock.jumps)),
        ]
        kinds = getattr(self.worker, "error_kinds", {}) or {}
        for k, v in sorted(kinds.items()):
            inf.values.append((f"errors {k}", str(v)))
        inf.values += latency_values(self.latency)
        rej = self.rejections.as_dict()
        for k, v in sorted(rej.items()):
            inf.values.append((f"rejected {k}", str(v)))
        if self.worker.errors and self.worker.last_error:
            inf.values.append(("last error", truncate_text(self.worker.last_error, 300)))
            inf.escalate(1, "inference errors (see last error)")
        if self.implausible:
            inf.escalate(1, "implausible chunks refused (see last input error)")
        running_s = sup.running_for_s(now_s)
        if running_s is not None:
            inf.values.append(("current replan running (s)", f"{running_s:.2f}"))
        if sup.overrun_s(now_s) is not None:
            inf.escalate(2, f"inference overrun: replan running {running_s:.1f} s > inference_timeout_s "
                            f"{sup.cfg.inference_timeout_s:g} s")
        if sup.gave_up:
            inf.escalate(2, f"worker thread dead after {sup.consecutive_restarts} restarts")
            inf.values.append(("last crash", truncate_text(str(self.worker.last_crash), 300)))
        elif not self.worker.running and active:
            inf.escalate(2, "worker thread not running" + (" (restarting)" if self.worker.crashed else ""))
        if self.last_error:
            inf.values.append(("last input error", truncate_text(self.last_error, 300)))
        return [cam, inf]


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def load_request(p: Mapping[str, Any], robot: Any, resolve_path: Callable[[str], str] | None = None
                 ) -> PolicyLoadRequest:
    """The policy node's parameters + robot file → what to load (every field is honoured or refused)."""
    from fastwam_ros.contract import parse_joint_map

    resolve_path = resolve_path or (lambda s: s)
    return PolicyLoadRequest(
        checkpoint=resolve_path(p["model.checkpoint"]),
        robot=robot,
        device=p["model.device"],
        dtype=p["model.dtype"],
        variant=p["model.variant"],
        joint_map=parse_joint_map(p["model.joint_map"]),
        config=p["model.config"] or None,  # a preset name (wan22_5b) or a path
        stats=resolve_path(p["model.stats"]) if p["model.stats"] else None,
        vae_dir=p["model.vae_dir"] or None,
        text_encoder_dir=p["model.text_encoder_dir"] or None,
        tokenizer_dir=p["model.tokenizer_dir"] or None,
        cache_dir=p["model.cache_dir"] or None,
        num_inference_steps=p["model.num_inference_steps"],
    )


def policy_factory(p: Mapping[str, Any], robot: Any, resolve_path: Callable[[str], str] | None = None,
                   loader: PolicyLoader = fastwam_loader) -> Callable[[], Any]:
    """A zero-argument factory (run on the worker thread) that loads the policy named by the params and checks
    its robot contract against ``robot`` (a RobotSpec) before any model is built."""
    request = load_request(p, robot, resolve_path)
    return lambda: loader(request)
