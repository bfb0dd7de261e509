"""ROS-free closed-loop demo: simulated bimanual robot -> perception -> Fast-WAM policy -> chunk controller.

    python -m fastwam_ros.demo                     # 10 sim seconds, bundled checkpoint, writes outputs/demo/
    python -m fastwam_ros.demo --seconds 6 --sim-mode kinematic --out /tmp/demo

The robot is one robot file (``config/robots/demo_aloha.yaml``, ``--robot``). The glue the ROS nodes ship runs
in-process, in simulated time (nothing reads a wall clock to decide what happens; wall time is only measured):

* ``fastwam_ros.sim.BimanualSim`` renders the cameras at the robot file's ``sim.camera_rate_hz`` and follows the
  controller's per-group commands through ``runtime.sim_runtime.SimBridge`` (as ``sim_node`` does);
* ``runtime.policy_runtime.PolicyRuntime`` (what ``policy_node`` calls) receives the camera messages and joint
  states, synchronises and tiles them once (``perception.ObservationPipeline``), and hands observations to the
  ``PolicyWorker`` thread (trigger ``rate``, one inference every ``replan_period_s``), with the controller's
  committed prefix for real-time chunking. The checkpoint's robot contract is checked against the robot file when
  the worker loads it. Inference latency is charged in sim time: a chunk is collected ``sim_latency_s`` after its
  observation (``--latency measured`` charges the measured wall-clock time instead) while the robot keeps
  executing the previous plan;
* ``runtime.controller_runtime.ControllerRuntime`` (what ``controller_node`` calls) takes each chunk, splices it
  (latency-compensated from the observation stamp), enforces the limits and produces the group commands and the
  committed prefix.

Outputs in ``--out``: ``demo.mp4`` (or ``demo.gif`` without imageio-ffmpeg): the head camera next to the policy's
tiled input; ``joints.png``: commanded vs measured joint positions and the towel's fold progress;
``frame.png``: one video frame; ``summary.json``: chunk count and rate, latency, command extremes vs limits,
clamp counts, tracking error, fold progress; ``trace.npz``: the per-tick command / measured log.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

LOG = logging.getLogger("fastwam_ros.demo")


@dataclass
class DemoConfig:
    """Settings of the demo loop itself (not robot facts: those are in the robot file). Times in sim seconds."""

    instruction: str = "fold the towel in half"
    replan_period_s: float = 0.5  # start a new inference at most this often (sim seconds)
    sim_latency_s: float | str = 0.15  # inference latency charged in sim time, or "measured"
    video_fps: float = 15.0


DEFAULT_ROBOT = "demo_aloha"


def default_checkpoint() -> Path:
    from .resources import find_share_file

    return find_share_file("models", "demo")


# ------------------------------------------------------------------------------------------------------------
# policies
# ------------------------------------------------------------------------------------------------------------
class ScriptedPolicy:
    """Oracle "policy" for comparison and debugging: the scripted fold (from the sim's privileged towel pose)
    sampled as a chunk. Shows what the loop does with a perfect predictor."""

    kind = "scripted"

    def __init__(self, sim, horizon: int = 32, step_period_s: float = 1.0 / 30.0, seed: int = 0):
        from .sim.scripted import make_folder

        self.sim = sim
        self.folder = make_folder(sim.towel, np.random.default_rng(seed + 100_000))
        self.horizon = horizon
        self.dt = step_period_s

    def predict(self, frame, instruction, proprio, *, seed=None, prefix=None, prefix_weight=None,
                rtc_mode="inpaint", guidance_beta=5.0):
        """A chunk from the observation time on (sim time stands still while the demo waits for the worker)."""
        t0 = float(self.sim.time_s)
        return np.stack([self.folder.command(t0 + (k + 1) * self.dt) for k in range(self.horizon)])


# ------------------------------------------------------------------------------------------------------------
# outputs
# ------------------------------------------------------------------------------------------------------------
class VideoWriter:
    """mp4 (H.264 via imageio-ffmpeg) when available, else an animated GIF (imageio + Pillow)."""

    def __init__(self, out_dir: Path, fps: float):
        import imageio.v2 as iio

        self.fps = fps
        self.frames = 0
        self.hw: tuple[int, int] | None = None
        try:
            import imageio_ffmpeg  # noqa: F401

            self.path = out_dir / "demo.mp4"
            self._w = iio.get_writer(self.path, fps=fps, codec="libx264", quality=7, macro_block_size=16)
            self.format = "mp4"
        except Exception as exc:  # noqa: BLE001 - any ffmpeg problem -> GIF
            LOG.warning("mp4 writer unavailable (%s); writing a GIF", exc)
            self.path = out_dir / "demo.gif"
            self._w = iio.get_writer(self.path, mode="I", duration=1.0 / fps, loop=0)
            self.format = "gif"

    def add(self, frame: np.ndarray) -> None:
        self._w.append_data(frame)
        self.frames += 1
        self.hw = (int(frame.shape[0]), int(frame.shape[1]))

    def close(self) -> None:
        self._w.close()


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


def plot_joints(path: Path, t_s, cmd, meas, names, lower, upper, chunk_times_s, fold, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(8, 2, figsize=(11, 13), sharex=True)
    for j, name in enumerate(names):
        ax = axes[j % 7, j // 7]
        ax.plot(t_s, cmd[:, j], lw=1.2, label="commanded")
        ax.plot(t_s, meas[:, j], lw=1.0, ls="--", label="measured")
        lo, hi = lower[j], upper[j]
        span = max(np.ptp(cmd[:, j]), np.ptp(meas[:, j]), 1e-3)
        for lim in (lo, hi):  # draw a limit only when it is near the data
            if abs(lim - cmd[:, j].mean()) < 3 * span:
                ax.axhline(lim, color="r", lw=0.6, ls=":")
        for tc in chunk_times_s:
            ax.axvline(tc, color="0.85", lw=0.5, zorder=0)
        ax.set_ylabel(name.replace("_", "\n", 1), fontsize=7)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    for col in range(2):
        ax = axes[7, col]
        ax.plot(t_s, fold, color="tab:green", lw=1.2)
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel("towel fold\nfraction", fontsize=7)
        ax.set_xlabel("sim time [s]", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title + "\n(grey lines: chunk arrivals; red dotted: position limits)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------------------
# the loop
# ------------------------------------------------------------------------------------------------------------
def rgb8_message(image: np.ndarray) -> SimpleNamespace:
    """An HxWx3 uint8 image as the fields of a sensor_msgs/Image (rgb8), as sim_node publishes it."""
    img = np.ascontiguousarray(image, dtype=np.uint8)
    return SimpleNamespace(height=img.shape[0], width=img.shape[1], encoding="rgb8", is_bigendian=0,
                           step=img.shape[1] * 3, data=img.tobytes(), header=None)


def build_runtimes(robot: Any, checkpoint: str | Path | None, policy: str, sim: Any, demo_cfg: DemoConfig,
                   seed: int = 0):
    """(PolicyRuntime, ControllerRuntime, worker) wired as the nodes wire them, for the demo's robot file."""
    from .perception import ObservationPipeline
    from .runtime.controller_runtime import ControllerRuntime
    from .runtime.params import resolve
    from .runtime.policy_runtime import PolicyRuntime, PolicyRuntimeConfig, policy_factory
    from .runtime.schemas import CONTROLLER_SCHEMA, POLICY_SCHEMA
    from .runtime.worker import PolicyWorker

    pp = resolve(POLICY_SCHEMA, {
        "robot_file": robot.source, "model.checkpoint": str(checkpoint or ""), "model.config": "",
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


def run_demo(
    seconds: float = 10.0,
    out_dir: str | Path = "outputs/demo",
    checkpoint: str | Path | None = None,
    sim_mode: str = "auto",
    policy: str = "checkpoint",
    seed: int = 0,
    robot_file: str | Path | None = None,
    latency: str | float | None = None,
    video: bool = True,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Run the closed loop for `seconds` of sim time; write outputs to `out_dir`; return the summary dict."""
    from .robot import load_robot
    from .runtime.chunks import join_stamp
    from .runtime.sim_runtime import SimBridge
    from .sim import BimanualSim, SimConfig

    wall0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    robot = load_robot(robot_file or DEFAULT_ROBOT)
    demo_cfg = DemoConfig()
    if latency is not None:
        demo_cfg.sim_latency_s = latency
    if threads and policy == "checkpoint":  # the tiny model is fastest on one thread
        import torch

        torch.set_num_threads(int(threads))
    sim_cfg = SimConfig.from_dict(robot.sim)
    sim = BimanualSim(sim_cfg, mode=sim_mode, seed=seed)
    ckpt = (Path(checkpoint) if checkpoint else default_checkpoint()) if policy == "checkpoint" else None
    prt = worker = None
    try:
        prt, crt, worker = build_runtimes(robot, ckpt, policy, sim, demo_cfg, seed)
        ctrl_cfg = crt.config
        names = list(ctrl_cfg.joint_names)
        bridge = SimBridge(sim.joint_names, {g.name: list(g.joints) for g in robot.groups}, sim.joint_positions())
        sim_to_ctrl = np.array([sim.joint_names.index(n) for n in names])
        lower = np.array([ctrl_cfg.limits[n].lower for n in names])
        upper = np.array([ctrl_cfg.limits[n].upper for n in names])
        vmax = np.array([ctrl_cfg.limits[n].max_velocity for n in names])

        # Everything runs on an integer tick grid of the control rate (exact sim time).
        dt = 1.0 / ctrl_cfg.control_rate_hz
        n_ticks = int(round(seconds / dt))
        cam_every = max(1, int(round(ctrl_cfg.control_rate_hz / sim_cfg.camera_rate_hz)))
        video_every = max(1, int(round(ctrl_cfg.control_rate_hz / demo_cfg.video_fps)))
        measured_latency = demo_cfg.sim_latency_s == "measured"
        fixed_latency_ticks = 0 if measured_latency else int(math.ceil(float(demo_cfg.sim_latency_s) / dt - 1e-9))

        writer = VideoWriter(out, ctrl_cfg.control_rate_hz / video_every) if video else None
        in_flight_until: int | None = None  # tick at which the worker's chunk is collected (sim-time latency)
        accepted, rejected, prefixed = 0, {}, 0
        chunk_arrivals, wall_latencies, sim_latencies, chunk_ids = [], [], [], []
        log_t, log_cmd, log_meas, log_fold = [], [], [], []
        tiled_rgb = None
        frame_png = None
        for tick in range(n_ticks):
            now = tick * dt
            q = sim.joint_positions()
            prt.on_joint_state(now, sim.joint_names, q, now)
            crt.on_joint_state(now, sim.joint_names, q, now)
            if in_flight_until is not None and tick >= in_flight_until:
                for o in prt.collect(now):
                    err = crt.on_chunk(now, **chunk_kwargs(o.chunk))
                    chunk_ids.append(o.chunk.chunk_id)
                    prefixed += int(o.chunk.committed_steps > 0)  # prefix steps the policy honoured
                    if err is None:
                        accepted += 1
                    else:
                        reason = err.split(": ", 1)[-1].split(" ")[0]
                        rejected[reason] = rejected.get(reason, 0) + 1
                        LOG.info("%s", err)
                    chunk_arrivals.append(now)
                in_flight_until = None
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
                    wall_latencies.append(wall_s)
                    lat_ticks = int(math.ceil(wall_s / dt)) if measured_latency else fixed_latency_ticks
                    sim_latencies.append(max(lat_ticks, 1) * dt)
                    in_flight_until = tick + max(lat_ticks, 1)
                tiled = prt.tiled_image_due(now)
                tiled_rgb = tiled if tiled is not None else tiled_rgb
            tout = crt.tick(now)
            send_commands(bridge, tout.commands, now)
            if tout.prefix is not None:
                pf = tout.prefix
                prt.on_committed_prefix(join_stamp(*pf.stamp), pf.joint_names, pf.positions_array(), now,
                                        pf.step_period_s, chunk_id=pf.chunk_id)
            cmd = bridge.command_at(now)
            log_t.append(now)
            log_cmd.append(cmd[sim_to_ctrl])
            log_meas.append(q[sim_to_ctrl])
            log_fold.append(sim.fold_fraction())
            if writer is not None and tick % video_every == 0:
                head = sim.render("head", 160, 320)
                caption = (f"t={now:5.2f}s  chunks {prt.published}  fold {sim.fold_fraction():.2f}  "
                           f"[{sim.render_backend}, {policy}]")
                vf = compose_video_frame(head, tiled_rgb, caption)
                writer.add(vf)
                if frame_png is None and now >= 0.55 * seconds:
                    frame_png = vf
            sim.step(cmd, dt)
        if writer is not None:
            writer.close()
        if worker.errors:
            LOG.warning("%d inference error(s); last: %s", worker.errors, worker.last_error)
        produced = prt.published

        t_s = np.asarray(log_t)
        cmd_arr = np.asarray(log_cmd)
        meas_arr = np.asarray(log_meas)
        fold_arr = np.asarray(log_fold)
        metrics = crt.core.metrics.snapshot()
        clamps = {k: int(v.sum()) for k, v in metrics.clamps.items()}
        cmd_vel = np.abs(np.diff(cmd_arr, axis=0)) / dt if len(cmd_arr) > 1 else np.zeros((1, len(names)))
        title = (f"fastwam_ros demo: {policy} policy, sim {sim.mode} ({sim.render_backend}), "
                 f"{seconds:g} s, {produced} chunks")
        plot_path = out / "joints.png"
        plot_joints(plot_path, t_s, cmd_arr, meas_arr, names, lower, upper, chunk_arrivals, fold_arr, title)
        np.savez_compressed(out / "trace.npz", t_s=t_s, command=cmd_arr, measured=meas_arr, fold_fraction=fold_arr,
                            chunk_arrival_s=np.asarray(chunk_arrivals), joint_names=np.asarray(names))
        if frame_png is not None:
            import imageio.v2 as iio

            iio.imwrite(out / "frame.png", frame_png)
        replan_ticks = int(round(demo_cfg.replan_period_s / dt))
        expected_period_s = max(replan_ticks, max(fixed_latency_ticks, 1)) * dt if not measured_latency else None
        summary = {
            "robot": robot.name,
            "robot_file": robot.source,
            "sim_mode": sim.mode,
            "render_backend": sim.render_backend,
            "fallback_reason": sim.fallback_reason,
            "policy": policy,
            "checkpoint": str(ckpt) if ckpt else None,
            "instruction": demo_cfg.instruction,
            "seconds": seconds,
            "control_rate_hz": ctrl_cfg.control_rate_hz,
            "camera_rate_hz": sim_cfg.camera_rate_hz,
            "chunks_produced": produced,
            "chunks_accepted": accepted,
            "chunks_rejected": rejected,
            "chunk_ids": chunk_ids,
            "chunks_with_rtc_prefix": prefixed,
            "policy_runtime": {"submissions": prt.submissions, "published": prt.published,
                               "worker_completed": worker.completed, "worker_errors": worker.errors,
                               "rejections": prt.rejections.as_dict()},
            "controller_runtime": {"last_chunk_id": None if crt.last_chunk is None else crt.last_chunk[0],
                                   "commands_sent": crt.commands_sent, "rejections": crt.rejections.as_dict()},
            "chunk_rate_hz": produced / seconds if seconds > 0 else 0.0,
            "expected_chunk_rate_hz": (1.0 / expected_period_s) if expected_period_s else None,
            "chunk_step_period_s": robot.chunk_step_period_s,
            "latency": {
                "mode": "measured" if measured_latency else "fixed",
                "sim_latency_s_mean": float(np.mean(sim_latencies)) if sim_latencies else None,
                "wall_inference_s_mean": float(np.mean(wall_latencies)) if wall_latencies else None,
                "wall_inference_s_p50": float(np.median(wall_latencies)) if wall_latencies else None,
                "wall_inference_s_max": float(np.max(wall_latencies)) if wall_latencies else None,
            },
            "joint_names": names,
            "command_min": cmd_arr.min(axis=0).tolist(),
            "command_max": cmd_arr.max(axis=0).tolist(),
            "limits_lower": lower.tolist(),
            "limits_upper": upper.tolist(),
            "commands_within_limits": bool(np.all(cmd_arr >= lower - 1e-9) and np.all(cmd_arr <= upper + 1e-9)),
            "max_command_velocity": cmd_vel.max(axis=0).tolist(),
            "max_velocity_limit": vmax.tolist(),
            "max_abs_command": float(np.abs(cmd_arr).max()),
            "controller_clamps": clamps,
            "controller_rejections": {k: v for k, v in metrics.rejections.items() if v},
            "sim_command_clamps": int(sim.command_clamp_count),
            "tracking_error_max": float(np.abs(cmd_arr - meas_arr).max()),
            "tracking_error_mean": float(np.abs(cmd_arr - meas_arr).mean()),
            "fold_fraction_final": float(fold_arr[-1]) if len(fold_arr) else 0.0,
            "fold_fraction_max": float(fold_arr.max()) if len(fold_arr) else 0.0,
            "control_ticks": n_ticks,
            "video": None
            if writer is None
            else {"path": str(writer.path), "format": writer.format, "frames": writer.frames,
                  "fps": writer.fps, "height": writer.hw[0] if writer.hw else None,
                  "width": writer.hw[1] if writer.hw else None},
            "plot": str(plot_path),
            "frame_png": str(out / "frame.png") if frame_png is not None else None,
            "wall_s": round(time.perf_counter() - wall0, 2),
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary
    finally:
        if worker is not None:
            worker.stop(timeout_s=10.0)
        sim.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m fastwam_ros.demo",
        description="ROS-free closed loop: simulated bimanual robot + bundled tiny Fast-WAM checkpoint + "
        "chunk controller, in sim time. Writes a video, a joint plot and summary.json.",
    )
    ap.add_argument("--seconds", type=float, default=10.0, help="sim seconds to run (default: %(default)s)")
    ap.add_argument("--out", default="outputs/demo", help="output folder (default: %(default)s)")
    ap.add_argument("--checkpoint", default=None, help="policy directory (default: the bundled models/demo)")
    ap.add_argument("--sim-mode", default="auto", choices=["auto", "mujoco", "kinematic"])
    ap.add_argument("--policy", default="checkpoint", choices=["checkpoint", "scripted"],
                    help="'scripted' replays the scripted fold as chunks (an oracle, for comparison)")
    ap.add_argument("--latency", default=None,
                    help="inference latency charged in sim seconds, or 'measured' (default: config, 0.15)")
    ap.add_argument("--robot", default=None,
                    help="robot file: a path or a name under config/robots (default: demo_aloha)")
    ap.add_argument("--seed", type=int, default=0, help="towel pose / episode seed")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads for inference (default: 1)")
    ap.add_argument("--no-video", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("OpenGL").setLevel(logging.WARNING)
    latency: str | float | None = args.latency
    if latency is not None and latency != "measured":
        latency = float(latency)
    s = run_demo(args.seconds, args.out, args.checkpoint, args.sim_mode, args.policy, args.seed, args.robot,
                 latency, video=not args.no_video, threads=args.threads)
    print(
        f"sim {s['sim_mode']} ({s['render_backend']}), {s['policy']} policy: {s['chunks_produced']} chunks in "
        f"{s['seconds']:g} sim s ({s['chunk_rate_hz']:.2f} Hz), inference {s['latency']['wall_inference_s_mean']:.3f} s "
        f"wall (mean), commands within limits: {s['commands_within_limits']}, fold {s['fold_fraction_final']:.2f}"
    )
    if s["fallback_reason"]:
        print(f"note: {s['fallback_reason']}")
    print(f"wrote {s['video']['path'] if s['video'] else '(no video)'}, {s['plot']}, "
          f"{Path(args.out) / 'summary.json'}  ({s['wall_s']:.1f} s wall)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
