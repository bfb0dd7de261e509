"""ROS-free closed-loop demo: simulated bimanual robot -> perception -> Fast-WAM policy -> chunk controller.

    python -m fastwam_ros.demo                     # 10 sim seconds, bundled checkpoint, writes outputs/demo/
    python -m fastwam_ros.demo --seconds 6 --sim-mode kinematic --out /tmp/demo

The same cores the ROS nodes wrap run in-process, in simulated time (nothing reads a wall clock to decide what
happens; wall time is only measured and reported):

* ``fastwam_ros.sim.BimanualSim`` renders the head and wrist cameras at ``camera_rate_hz`` and executes the
  controller's position commands at ``control_rate_hz`` (MuJoCo ALOHA, or the kinematic fallback);
* ``fastwam_ros.perception.preprocess_frames`` tiles the three images into the policy's frame (the same
  function that built the training samples);
* ``fastwam_ros.model.inference.policy.FastWAMPolicy`` predicts a 32-step chunk (inline, one inference at a time). Its
  latency is charged in sim time: the chunk reaches the controller ``sim_latency_s`` after the inference
  started (``--latency measured`` charges the measured wall-clock time instead), while the robot keeps
  executing the previous plan;
* ``fastwam_ros.control.ChunkController`` splices each chunk into the plan (latency-compensated from the
  observation stamp), enforces the limits and produces the commands.

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
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

LOG = logging.getLogger("fastwam_ros.demo")


@dataclass
class DemoConfig:
    """The ``demo:`` section of config/demo_robot.yaml. Times in sim seconds, rates in Hz."""

    camera_rate_hz: float = 30.0
    chunk_step_period_s: float = 1.0 / 30.0
    instruction: str = "fold the towel in half"
    replan_period_s: float = 0.5
    sim_latency_s: float | str = 0.15  # or "measured"
    video_fps: float = 15.0

    @classmethod
    def from_dict(cls, d: dict | None) -> DemoConfig:
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"demo config: unknown keys {bad}; known: {sorted(known)}")
        return cls(**d)


def default_robot_config() -> Path:
    from .resources import find_share_file

    return find_share_file("config", "demo_robot.yaml")


def default_checkpoint() -> Path:
    from .resources import find_share_file

    return find_share_file("models", "demo")


# ------------------------------------------------------------------------------------------------------------
# policies
# ------------------------------------------------------------------------------------------------------------
class CheckpointPolicy:
    """A FastWAMPolicy loaded from a policy directory (CPU, float32)."""

    kind = "checkpoint"

    def __init__(self, path: str | Path, threads: int | None = 1):
        import torch

        from .model.policy import FastWAMPolicy

        if threads:  # the tiny model is fastest on one thread; more threads oversubscribe a busy CPU
            torch.set_num_threads(int(threads))

        self.path = Path(path)
        self.policy = FastWAMPolicy.from_pretrained(self.path, device="cpu")
        self.horizon = int(self.policy.horizon)

    def perception_dict(self) -> dict | None:
        """The perception config the checkpoint was trained with (perception.json), if bundled."""
        p = self.path / "perception.json"
        return json.loads(p.read_text()) if p.is_file() else None

    def predict(self, frame: np.ndarray, instruction: str, proprio: np.ndarray, obs_time_s: float):
        out = self.policy.predict(frame, instruction, proprio)
        return np.asarray(out.actions, np.float64), float(out.timing_s["total"])


class ScriptedPolicy:
    """Oracle "policy" for comparison and debugging: the scripted fold (from the sim's privileged towel pose)
    sampled as a chunk. Shows what the loop does with a perfect predictor."""

    kind = "scripted"

    def __init__(self, sim, horizon: int = 32, step_period_s: float = 1.0 / 30.0, seed: int = 0):
        from .sim.scripted import make_folder

        self.folder = make_folder(sim.towel, np.random.default_rng(seed + 100_000))
        self.horizon = horizon
        self.dt = step_period_s

    def perception_dict(self) -> None:
        return None

    def predict(self, frame, instruction, proprio, obs_time_s: float):
        t0 = time.perf_counter()
        acts = np.stack([self.folder.command(obs_time_s + (k + 1) * self.dt) for k in range(self.horizon)])
        return acts, time.perf_counter() - t0


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
def run_demo(
    seconds: float = 10.0,
    out_dir: str | Path = "outputs/demo",
    checkpoint: str | Path | None = None,
    sim_mode: str = "auto",
    policy: str = "checkpoint",
    seed: int = 0,
    robot_config: str | Path | None = None,
    latency: str | float | None = None,
    video: bool = True,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Run the closed loop for `seconds` of sim time; write outputs to `out_dir`; return the summary dict."""
    import yaml

    from .control import Chunk, ChunkController, ControllerConfig
    from .perception import PerceptionConfig, preprocess_frames, tile_frames
    from .sim import BimanualSim, SimConfig

    wall0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    robot_path = Path(robot_config) if robot_config else default_robot_config()
    robot = yaml.safe_load(robot_path.read_text())
    demo_cfg = DemoConfig.from_dict(robot.get("demo"))
    if latency is not None:
        demo_cfg.sim_latency_s = latency
    sim = BimanualSim(SimConfig.from_dict(robot.get("sim")), mode=sim_mode, seed=seed)
    try:
        if policy == "checkpoint":
            ckpt = Path(checkpoint) if checkpoint else default_checkpoint()
            pol: Any = CheckpointPolicy(ckpt, threads=threads)
        elif policy == "scripted":
            ckpt = None
            pol = ScriptedPolicy(sim, step_period_s=demo_cfg.chunk_step_period_s, seed=seed)
        else:
            raise ValueError(f"policy must be 'checkpoint' or 'scripted', got {policy!r}")
        perception = PerceptionConfig.from_dict(pol.perception_dict() or robot["perception"])
        ctrl_cfg = ControllerConfig.from_dict(robot["controller"], sim.urdf())
        ctrl = ChunkController(ctrl_cfg)
        names = list(ctrl_cfg.joint_names)
        sim_to_ctrl = np.array([sim.joint_names.index(n) for n in names])
        ctrl_to_sim = np.array([names.index(n) for n in sim.joint_names])
        lower = np.array([ctrl_cfg.limits[n].lower for n in names])
        upper = np.array([ctrl_cfg.limits[n].upper for n in names])
        vmax = np.array([ctrl_cfg.limits[n].max_velocity for n in names])

        # Everything runs on an integer tick grid of the control rate (exact sim time).
        dt = 1.0 / ctrl_cfg.control_rate_hz
        n_ticks = int(round(seconds / dt))
        cam_every = max(1, int(round(ctrl_cfg.control_rate_hz / demo_cfg.camera_rate_hz)))
        replan_every = max(1, int(round(demo_cfg.replan_period_s / dt)))
        video_every = max(1, int(round(ctrl_cfg.control_rate_hz / demo_cfg.video_fps)))
        measured_latency = demo_cfg.sim_latency_s == "measured"
        fixed_latency_ticks = 0 if measured_latency else int(math.ceil(float(demo_cfg.sim_latency_s) / dt - 1e-9))

        writer = VideoWriter(out, ctrl_cfg.control_rate_hz / video_every) if video else None
        q0 = sim.joint_positions()
        ctrl.update_joint_state(0.0, names, q0[sim_to_ctrl])
        ctrl.enable(0.0)

        pending = None  # (ready_tick, Chunk)
        next_replan_tick = 0
        chunk_id = 0
        produced, accepted, rejected = 0, 0, {}
        chunk_arrivals, wall_latencies, sim_latencies = [], [], []
        log_t, log_cmd, log_meas, log_fold = [], [], [], []
        tiled_rgb = None
        frame_png = None
        for tick in range(n_ticks):
            now = tick * dt
            q = sim.joint_positions()
            if pending is not None and tick >= pending[0]:
                res = ctrl.submit_chunk(pending[1], now)
                if res.accepted:
                    accepted += 1
                else:
                    rejected[res.reason] = rejected.get(res.reason, 0) + 1
                    LOG.info("chunk %d rejected: %s (%s)", pending[1].chunk_id, res.reason, res.detail)
                chunk_arrivals.append(now)
                pending = None
            # A new inference starts on the first camera tick once the previous chunk has been delivered and the
            # replan period has passed. Cameras are rendered only then (an unused frame would change nothing).
            if pending is None and tick >= next_replan_tick and tick % cam_every == 0:
                stamp, images, proprio = now, {cam: sim.render(cam) for cam in sim.cameras}, q.copy()
                frame = preprocess_frames(images, perception)
                tiled_rgb = tile_frames(images, perception)
                actions, wall_s = pol.predict(frame, demo_cfg.instruction, proprio, stamp)
                wall_latencies.append(wall_s)
                lat_ticks = int(math.ceil(wall_s / dt)) if measured_latency else fixed_latency_ticks
                sim_latencies.append(lat_ticks * dt)
                positions = actions[:, sim_to_ctrl]  # policy output is in the sim's (training) joint order
                chunk = Chunk(stamp_s=stamp, step_period_s=demo_cfg.chunk_step_period_s, joint_names=names,
                              positions=positions, chunk_id=chunk_id)
                chunk_id += 1
                produced += 1
                pending = (tick + max(lat_ticks, 1), chunk)
                next_replan_tick = tick + replan_every
            ctrl.update_joint_state(now, names, q[sim_to_ctrl], now_s=now)
            cout = ctrl.tick(now, with_trajectory=False)
            cmd = q[sim_to_ctrl].copy()  # hold the measured pose where a group has no valid output
            for g in cout.groups.values():
                if g.valid and g.positions is not None:
                    cmd[[names.index(j) for j in g.joint_names]] = g.positions
            log_t.append(now)
            log_cmd.append(cmd)
            log_meas.append(q[sim_to_ctrl])
            log_fold.append(sim.fold_fraction())
            if writer is not None and tick % video_every == 0:
                head = sim.render("head", 160, 320)
                caption = (f"t={now:5.2f}s  chunks {produced}  fold {sim.fold_fraction():.2f}  "
                           f"[{sim.render_backend}, {pol.kind}]")
                vf = compose_video_frame(head, tiled_rgb, caption)
                writer.add(vf)
                if frame_png is None and now >= 0.55 * seconds:
                    frame_png = vf
            sim.step(cmd[ctrl_to_sim], dt)
        if writer is not None:
            writer.close()

        t_s = np.asarray(log_t)
        cmd_arr = np.asarray(log_cmd)
        meas_arr = np.asarray(log_meas)
        fold_arr = np.asarray(log_fold)
        metrics = ctrl.metrics.snapshot()
        clamps = {k: int(v.sum()) for k, v in metrics.clamps.items()}
        cmd_vel = np.abs(np.diff(cmd_arr, axis=0)) / dt if len(cmd_arr) > 1 else np.zeros((1, len(names)))
        title = (f"fastwam_ros demo: {pol.kind} policy, sim {sim.mode} ({sim.render_backend}), "
                 f"{seconds:g} s, {produced} chunks")
        plot_path = out / "joints.png"
        plot_joints(plot_path, t_s, cmd_arr, meas_arr, names, lower, upper, chunk_arrivals, fold_arr, title)
        np.savez_compressed(out / "trace.npz", t_s=t_s, command=cmd_arr, measured=meas_arr, fold_fraction=fold_arr,
                            chunk_arrival_s=np.asarray(chunk_arrivals), joint_names=np.asarray(names))
        if frame_png is not None:
            import imageio.v2 as iio

            iio.imwrite(out / "frame.png", frame_png)
        expected_period_s = max(replan_every, max(fixed_latency_ticks, 1)) * dt if not measured_latency else None
        summary = {
            "sim_mode": sim.mode,
            "render_backend": sim.render_backend,
            "fallback_reason": sim.fallback_reason,
            "policy": pol.kind,
            "checkpoint": str(ckpt) if ckpt else None,
            "instruction": demo_cfg.instruction,
            "seconds": seconds,
            "control_rate_hz": ctrl_cfg.control_rate_hz,
            "camera_rate_hz": demo_cfg.camera_rate_hz,
            "chunks_produced": produced,
            "chunks_accepted": accepted,
            "chunks_rejected": rejected,
            "chunk_rate_hz": produced / seconds if seconds > 0 else 0.0,
            "expected_chunk_rate_hz": (1.0 / expected_period_s) if expected_period_s else None,
            "chunk_horizon": int(getattr(pol, "horizon", 32)),
            "chunk_step_period_s": demo_cfg.chunk_step_period_s,
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
    ap.add_argument("--config", default=None, help="robot YAML (default: config/demo_robot.yaml)")
    ap.add_argument("--seed", type=int, default=0, help="towel pose / episode seed")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads for inference (default: 1)")
    ap.add_argument("--no-video", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("OpenGL").setLevel(logging.WARNING)
    latency: str | float | None = args.latency
    if latency is not None and latency != "measured":
        latency = float(latency)
    s = run_demo(args.seconds, args.out, args.checkpoint, args.sim_mode, args.policy, args.seed, args.config,
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
