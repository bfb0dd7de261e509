"""One closed-loop episode in simulated time: the loop shared by the demo (``python -m fastwam_ros.demo``) and the
evaluation (``fastwam-eval``).

The glue the ROS nodes ship runs in-process, in simulated time (nothing reads a wall clock to decide what
happens; wall time is only measured):

* ``fastwam_ros.sim.BimanualSim`` renders the cameras at the robot file's ``sim.camera_rate_hz`` and follows the
  controller's per-group commands through ``runtime.sim_runtime.SimBridge`` (as ``sim_node`` does);
* ``runtime.policy_runtime.PolicyRuntime`` (what ``policy_node`` calls) receives the camera messages and joint
  states, synchronises and tiles them once (``perception.ObservationPipeline``), and hands observations to the
  ``PolicyWorker`` thread (trigger ``rate``, one inference every ``replan_period_s``), with the controller's
  committed prefix for real-time chunking. The checkpoint's robot contract is checked against the robot file when
  the worker loads it. Inference latency is charged in sim time: a chunk is collected ``sim_latency_s`` after its
  observation (``"measured"`` charges the measured wall-clock time instead) while the robot keeps executing the
  previous plan;
* ``runtime.controller_runtime.ControllerRuntime`` (what ``controller_node`` calls) takes each chunk, splices it
  (latency-compensated from the observation stamp), enforces the limits and produces the group commands and the
  committed prefix.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from .control.limits import CLAMP_KINDS

LOG = logging.getLogger("fastwam_ros.closed_loop")


@dataclass
class DemoConfig:
    """Settings of the loop itself (not robot facts: those are in the robot file). Times in sim seconds."""

    instruction: str = "fold the towel in half"
    replan_period_s: float = 0.5  # start a new inference at most this often (sim seconds)
    sim_latency_s: float | str = 0.15  # inference latency charged in sim time, or "measured"
    video_fps: float = 15.0
    # fault injection: (at_s, back_s) -- from sim time at_s on, the nodes' clock reads back_s less, as under
    # use_sim_time when a bag replayed with --loop starts over or a simulator resets its clock (the world goes on)
    clock_reset: tuple[float, float] | None = None
    # fault injection: (at_s, duration_s) -- the controller node's executor stalls (a long callback, a GC pause): for
    # duration_s it handles no tick, joint state or chunk (chunks queue up and are handled after); the robot goes
    # on with the last command it got (the simulator runs the last trajectory like a joint_trajectory_controller)
    stall: tuple[float, float] | None = None


class ScriptedPolicy:
    """Oracle "policy" for comparison and debugging: the scripted fold (from the sim's privileged towel pose)
    sampled as a chunk. Shows what the loop does with a perfect predictor. The script starts from the robot's
    pose when the policy is built (the episode's start state)."""

    kind = "scripted"

    def __init__(self, sim, horizon: int = 32, step_period_s: float = 1.0 / 30.0, seed: int = 0):
        from .sim.scripted import make_folder

        self.sim = sim
        self.folder = make_folder(sim.towel, np.random.default_rng(seed + 100_000), home=sim.joint_positions())
        self.horizon = horizon
        self.dt = step_period_s

    def predict(self, frame, instruction, proprio, *, seed=None, prefix=None, prefix_weight=None,
                rtc_mode="inpaint", guidance_beta=5.0):
        """A chunk from the observation time on (sim time stands still while the loop waits for the worker)."""
        t0 = float(self.sim.time_s)
        return np.stack([self.folder.command(t0 + (k + 1) * self.dt) for k in range(self.horizon)])


def compose_video_frame(head: np.ndarray, tiled: np.ndarray | None, text: str) -> np.ndarray:
    """[head view | policy input] side by side, 160 px high, width a multiple of 16, with a caption."""
    import cv2

    h = 160
    left = cv2.resize(head, (320, h), interpolation=cv2.INTER_AREA) if head.shape[:2] != (h, 320) else head
    if tiled is None:
        tiled = np.zeros((96, 128, 3), np.uint8)
    right = cv2.resize(tiled, (208, h), interpolation=cv2.INTER_NEAREST)
    frame = np.concatenate([left, np.full((h, 16, 3), 16, np.uint8), right], axis=1)  # 160 x 544
    frame = np.ascontiguousarray(frame)
    cv2.putText(frame, text, (4, h - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.putText(frame, "policy input", (340, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1, cv2.LINE_AA)
    return frame


def rgb8_message(image: np.ndarray) -> SimpleNamespace:
    """An HxWx3 uint8 image as the fields of a sensor_msgs/Image (rgb8), as sim_node publishes it."""
    img = np.ascontiguousarray(image, dtype=np.uint8)
    return SimpleNamespace(height=img.shape[0], width=img.shape[1], encoding="rgb8", is_bigendian=0,
                           step=img.shape[1] * 3, data=img.tobytes(), header=None)


def _checkpoint_variant(checkpoint: str | Path | None) -> str:
    """The variant a policy directory was trained as (its contract's ``variant``, as
    :func:`~fastwam_ros.contract.read_checkpoint_contract` reads it; ``fastwam`` when it cannot tell), so a Joint or
    IDM checkpoint runs as one (a node is told so with ``model.variant``)."""
    from .contract import read_checkpoint_contract
    from .errors import ConfigError

    if not checkpoint:
        return "fastwam"
    try:
        v = read_checkpoint_contract(checkpoint)[0].get("variant")
    except ConfigError:
        return "fastwam"  # the contract check at configure names what is wrong with the file
    return v if isinstance(v, str) and v else "fastwam"


def build_runtimes(robot: Any, checkpoint: str | Path | None, policy: str, sim: Any, demo_cfg: DemoConfig,
                   seed: int = 0):
    """(PolicyRuntime, ControllerRuntime, worker) wired as the nodes wire them, for the robot file `robot`."""
    from .perception import ObservationPipeline
    from .runtime.controller_runtime import ControllerRuntime
    from .runtime.params import resolve
    from .runtime.policy_runtime import PolicyRuntime, PolicyRuntimeConfig, policy_factory
    from .runtime.schemas import CONTROLLER_SCHEMA, POLICY_SCHEMA
    from .runtime.worker import PolicyWorker

    pp = resolve(POLICY_SCHEMA, {
        "robot_file": robot.source, "model.checkpoint": str(checkpoint or ""), "model.config": "",
        "model.variant": _checkpoint_variant(checkpoint) if policy == "checkpoint" else "fastwam",
        "model.device": "cpu", "model.dtype": "float32", "model.warmup": False, "instruction": demo_cfg.instruction,
        "trigger.mode": "rate", "trigger.rate_hz": 1.0 / demo_cfg.replan_period_s, "model.seed_policy": "fixed",
        "model.seed": seed})
    cp = resolve(CONTROLLER_SCHEMA, {"robot_file": robot.source, "robot_description.source": "none"})
    if policy == "checkpoint":
        factory = policy_factory(pp, robot)  # checks the checkpoint's robot contract before building the model
    elif policy == "scripted":
        factory = lambda: ScriptedPolicy(sim, step_period_s=robot.chunk_step_period_s, seed=seed)  # noqa: E731
    else:
        raise ValueError(f"policy must be 'checkpoint' or 'scripted', got {policy!r}")
    worker = PolicyWorker(factory, instruction=demo_cfg.instruction, warmup=False)
    worker.start(timeout_s=600.0)
    prt = PolicyRuntime(PolicyRuntimeConfig.from_params(pp, robot, f"{policy}:demo"),
                        ObservationPipeline(robot.perception_config()), worker, instruction=demo_cfg.instruction,
                        enabled=True)
    return prt, ControllerRuntime(cp, robot), worker


def chunk_kwargs(f: Any) -> dict[str, Any]:
    """ChunkFields (what policy_node publishes) → ControllerRuntime.on_chunk keywords (what it receives)."""
    return dict(stamp=f.stamp, chunk_id=f.chunk_id, step_period_s=f.step_period_s, joint_names=list(f.joint_names),
                num_steps=f.num_steps, positions=np.asarray(f.positions, np.float64),
                velocities=np.asarray(f.velocities, np.float64), committed_steps=f.committed_steps,
                latency_s=f.latency_s, model_id=f.model_id, rtc_mode=f.rtc_mode, guided_steps=f.guided_steps)


def send_commands(bridge: Any, commands: list, now_s: float) -> None:
    """ControllerRuntime group commands → the simulator's command (as sim_node subscribes to them)."""
    from .runtime.chunks import join_stamp

    for c in commands:
        if c.trajectory is not None:
            tr = c.trajectory
            bridge.on_trajectory(c.group, tr.joint_names, join_stamp(*tr.stamp),
                                 [join_stamp(*t) for t in tr.times_from_start], np.asarray(tr.positions), now_s)
        elif c.joint_names:
            bridge.on_joint_state(c.joint_names, c.positions)
        else:
            bridge.on_positions(c.group, c.positions)


@dataclass
class EpisodeLog:
    """What one closed-loop episode did, per control tick (T ticks) and per chunk. Times in sim seconds."""

    joint_names: list[str]
    lower: np.ndarray  # [J] position limits (controller order)
    upper: np.ndarray
    max_velocity: np.ndarray  # [J] rad/s (grippers 1/s)
    control_rate_hz: float
    t_s: np.ndarray  # [T]
    command: np.ndarray  # [T, J] what the simulator was commanded
    measured: np.ndarray  # [T, J]
    fold_fraction: np.ndarray  # [T] towel fold progress 0..1 after each tick
    clamps_per_tick: np.ndarray  # [T, len(CLAMP_KINDS)] limiter clamp events (joint values clamped) at each tick
    chunk_age_s: np.ndarray  # [T] now - observation stamp of the newest accepted chunk (NaN before the first)
    chunk_arrival_s: list[float] = field(default_factory=list)
    chunk_ids: list[int] = field(default_factory=list)
    wall_latency_s: list[float] = field(default_factory=list)  # measured inference time per chunk (wall clock)
    sim_latency_s: list[float] = field(default_factory=list)  # latency charged in sim time per chunk
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    prefixed: int = 0
    produced: int = 0
    frame_png: np.ndarray | None = None
    runtime: dict[str, Any] = field(default_factory=dict)  # PolicyRuntime / ControllerRuntime counters
    controller_rejections: dict[str, int] = field(default_factory=dict)
    sim_command_clamps: int = 0

    @property
    def seconds(self) -> float:
        return len(self.t_s) / self.control_rate_hz

    def clamp_counts(self) -> dict[str, int]:
        """Limiter clamp events per kind over the episode (one event = one joint value clamped on one tick)."""
        return {k: int(self.clamps_per_tick[:, i].sum()) for i, k in enumerate(CLAMP_KINDS)}

    def clamped_tick_fraction(self) -> float:
        """Fraction of control ticks on which the limiter clamped at least one joint value."""
        return float(np.mean(self.clamps_per_tick.sum(axis=1) > 0)) if len(self.t_s) else 0.0


def _clamp_totals(crt: Any) -> np.ndarray:
    clamps = crt.core.metrics.clamps
    return np.array([int(clamps[k].sum()) for k in CLAMP_KINDS], dtype=np.int64)


def run_episode(robot: Any, sim: Any, policy: str, checkpoint: str | Path | None, demo_cfg: DemoConfig,
                seconds: float, seed: int = 0, frame_sink: Callable[[np.ndarray], None] | None = None,
                caption: str = "") -> EpisodeLog:
    """Run the closed loop from the simulator's current state (time 0) for `seconds` of sim time.

    `frame_sink` (optional) receives a composed video frame at ``demo_cfg.video_fps``; ``frame_png`` is the first
    such frame at or after 55 % of the episode. The policy worker is started and stopped here."""
    from .runtime.chunks import join_stamp
    from .runtime.sim_runtime import SimBridge

    prt = worker = None
    try:
        prt, crt, worker = build_runtimes(robot, checkpoint, policy, sim, demo_cfg, seed)
        ctrl_cfg = crt.config
        names = list(ctrl_cfg.joint_names)
        bridge = SimBridge(sim.joint_names, {g.name: list(g.joints) for g in robot.groups}, sim.joint_positions())
        sim_to_ctrl = np.array([sim.joint_names.index(n) for n in names])

        # Everything runs on an integer tick grid of the control rate (exact sim time).
        dt = 1.0 / ctrl_cfg.control_rate_hz
        n_ticks = int(round(seconds / dt))
        cam_every = max(1, int(round(ctrl_cfg.control_rate_hz / sim.config.camera_rate_hz)))
        video_every = max(1, int(round(ctrl_cfg.control_rate_hz / demo_cfg.video_fps)))
        measured_latency = demo_cfg.sim_latency_s == "measured"
        fixed_latency_ticks = 0 if measured_latency else int(math.ceil(float(demo_cfg.sim_latency_s) / dt - 1e-9))

        log = EpisodeLog(
            joint_names=names,
            lower=np.array([ctrl_cfg.limits[n].lower for n in names]),
            upper=np.array([ctrl_cfg.limits[n].upper for n in names]),
            max_velocity=np.array([ctrl_cfg.limits[n].max_velocity for n in names]),
            control_rate_hz=float(ctrl_cfg.control_rate_hz),
            t_s=np.zeros(n_ticks), command=np.zeros((n_ticks, len(names))), measured=np.zeros((n_ticks, len(names))),
            fold_fraction=np.zeros(n_ticks), clamps_per_tick=np.zeros((n_ticks, len(CLAMP_KINDS)), np.int64),
            chunk_age_s=np.full(n_ticks, np.nan))
        in_flight_until: int | None = None  # tick at which the worker's chunk is collected (sim-time latency)
        newest_stamp_s: float | None = None
        tiled_rgb = None
        clamp_prev = _clamp_totals(crt)
        reset_at_s, reset_back_s = demo_cfg.clock_reset or (math.inf, 0.0)
        stall_at_s, stall_s = demo_cfg.stall or (math.inf, 0.0)
        queued: list = []  # chunks published while the controller's executor stalls
        for tick in range(n_ticks):
            t_sim = tick * dt
            now = t_sim - (reset_back_s if t_sim >= reset_at_s - 1e-9 else 0.0)  # the nodes' clock
            stalled = stall_at_s - 1e-9 <= t_sim < stall_at_s + stall_s - 1e-9
            q = sim.joint_positions()
            prt.on_joint_state(now, sim.joint_names, q, now)
            if not stalled:
                crt.on_joint_state(now, sim.joint_names, q, now)
            if in_flight_until is not None and tick >= in_flight_until:
                queued += prt.collect(now)
                in_flight_until = None
            if not stalled:
                for o in queued:
                    err = crt.on_chunk(now, **chunk_kwargs(o.chunk))
                    log.chunk_ids.append(o.chunk.chunk_id)
                    log.prefixed += int(o.chunk.committed_steps > 0)  # prefix steps the policy honoured
                    if err is None:
                        log.accepted += 1
                        newest_stamp_s = join_stamp(*o.chunk.stamp)
                    else:
                        reason = err.split(": ", 1)[-1].split(" ")[0]
                        log.rejected[reason] = log.rejected.get(reason, 0) + 1
                        LOG.info("%s", err)
                    log.chunk_arrival_s.append(t_sim)
                queued = []
            if tick % cam_every == 0:
                for cam in robot.camera_names:
                    prt.on_image(cam, rgb8_message(sim.render(cam)), now, now)
                # the worker is busy (in sim time) until its chunk is collected: no new observation meanwhile
                if in_flight_until is None and prt.step(now):
                    done = prt.submissions
                    t0 = time.perf_counter()
                    while worker.completed + worker.errors < done:  # sim time stands still while it infers
                        if not worker.running or time.perf_counter() - t0 > 600.0:
                            raise RuntimeError(f"the policy worker did not finish: {worker.last_error}")
                        time.sleep(0.0005)
                    wall_s = time.perf_counter() - t0
                    log.wall_latency_s.append(wall_s)
                    lat_ticks = int(math.ceil(wall_s / dt)) if measured_latency else fixed_latency_ticks
                    log.sim_latency_s.append(max(lat_ticks, 1) * dt)
                    in_flight_until = tick + max(lat_ticks, 1)
                if frame_sink is not None:
                    tiled = prt.tiled_image_due(now)
                    tiled_rgb = tiled if tiled is not None else tiled_rgb
            if not stalled:
                tout = crt.tick(now)
                clamp_now = _clamp_totals(crt)
                log.clamps_per_tick[tick] = clamp_now - clamp_prev
                clamp_prev = clamp_now
                send_commands(bridge, tout.commands, now)
                if tout.prefix is not None:
                    pf = tout.prefix
                    prt.on_committed_prefix(join_stamp(*pf.stamp), pf.joint_names, pf.positions_array(), now,
                                            pf.step_period_s, chunk_id=pf.chunk_id)
            cmd = bridge.command_at(now)
            log.t_s[tick] = t_sim
            log.command[tick] = cmd[sim_to_ctrl]
            log.measured[tick] = q[sim_to_ctrl]
            if newest_stamp_s is not None:
                log.chunk_age_s[tick] = now - newest_stamp_s
            if frame_sink is not None and tick % video_every == 0:
                head = sim.render("head", 160, 320)
                text = (f"t={t_sim:5.2f}s  chunks {prt.published}  fold {sim.fold_fraction():.2f}  "
                        f"[{sim.render_backend}, {policy}]{caption}")
                vf = compose_video_frame(head, tiled_rgb, text)
                frame_sink(vf)
                if log.frame_png is None and t_sim >= 0.55 * seconds:
                    log.frame_png = vf
            sim.step(cmd, dt)
            log.fold_fraction[tick] = sim.fold_fraction()
        if worker.errors:
            LOG.warning("%d inference error(s); last: %s", worker.errors, worker.last_error)
        log.produced = prt.published
        log.runtime = {
            "policy_runtime": {"submissions": prt.submissions, "published": prt.published,
                               "worker_completed": worker.completed, "worker_errors": worker.errors,
                               "rejections": prt.rejections.as_dict()},
            "controller_runtime": {"last_chunk_id": None if crt.last_chunk is None else crt.last_chunk[0],
                                   "commands_sent": crt.commands_sent, "rejections": crt.rejections.as_dict(),
                                   "clock_resets": crt.core.metrics.clock_jumps,
                                   "tick_gaps": crt.core.metrics.tick_gaps},
        }
        log.controller_rejections = {k: v for k, v in crt.core.metrics.rejections.items() if v}
        log.sim_command_clamps = int(sim.command_clamp_count)
        return log
    finally:
        if worker is not None:
            worker.stop(timeout_s=10.0)
