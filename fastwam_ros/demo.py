"""ROS-free closed-loop demo: simulated bimanual robot -> perception -> Fast-WAM policy -> chunk controller.

    python -m fastwam_ros.demo                     # 10 sim seconds, bundled checkpoint, kinematic sim, outputs/demo/
    python -m fastwam_ros.demo --seconds 6 --sim-mode mujoco --out /tmp/demo

The robot is one robot file (``config/robots/demo_aloha.yaml``, ``--robot``). The loop
(:func:`fastwam_ros.closed_loop.run_episode`, shared with ``fastwam-eval``) runs the glue the ROS nodes ship --
``PolicyRuntime``, its ``PolicyWorker`` thread and ``ControllerRuntime`` -- in-process, in simulated time, against
``fastwam_ros.sim.BimanualSim`` (see that module for how latency is charged).

Outputs in ``--out``: ``demo.mp4`` (or ``demo.gif`` without imageio-ffmpeg): the head camera next to the policy's
tiled input; ``joints.png``: commanded vs measured joint positions and the towel's fold progress;
``frame.png``: one video frame; ``summary.json``: chunk count and rate, latency, command extremes vs limits,
limiter clamps (counts per kind, per second, fraction of ticks clamped), chunk age, tracking error, fold
progress; ``trace.npz``: the per-tick command / measured / clamp log.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from .closed_loop import DemoConfig, EpisodeLog, compose_video_frame, run_episode
from .control.limits import CLAMP_KINDS

LOG = logging.getLogger("fastwam_ros.demo")
DEFAULT_ROBOT = "demo_aloha"
__all__ = ["DemoConfig", "compose_video_frame", "default_checkpoint", "main", "run_demo"]


def default_checkpoint() -> Path:
    from .resources import find_share_file

    return find_share_file("models", "demo")


# ------------------------------------------------------------------------------------------------------------
# outputs
# ------------------------------------------------------------------------------------------------------------
class VideoWriter:
    """mp4 (H.264 via imageio-ffmpeg) when available, else an animated GIF (imageio + Pillow)."""

    def __init__(self, out_dir: Path, fps: float, stem: str = "demo"):
        import imageio.v2 as iio

        self.fps = fps
        self.frames = 0
        self.hw: tuple[int, int] | None = None
        try:
            import imageio_ffmpeg  # noqa: F401

            self.path = out_dir / f"{stem}.mp4"
            self._w = iio.get_writer(self.path, fps=fps, codec="libx264", quality=7, macro_block_size=16)
            self.format = "mp4"
        except Exception as exc:  # noqa: BLE001 - any ffmpeg problem -> GIF
            LOG.warning("mp4 writer unavailable (%s); writing a GIF", exc)
            self.path = out_dir / f"{stem}.gif"
            self._w = iio.get_writer(self.path, mode="I", duration=1.0 / fps, loop=0)
            self.format = "gif"

    def add(self, frame: np.ndarray) -> None:
        self._w.append_data(frame)
        self.frames += 1
        self.hw = (int(frame.shape[0]), int(frame.shape[1]))

    def close(self) -> None:
        self._w.close()

    def info(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.format, "frames": self.frames, "fps": self.fps,
                "height": self.hw[0] if self.hw else None, "width": self.hw[1] if self.hw else None}


MIN_AXIS_SPAN = 0.2  # rad (grippers: normalised opening): smallest y range of a joint panel, so noise stays flat


def readable_ylim(*series: np.ndarray, min_span: float = MIN_AXIS_SPAN) -> tuple[float, float]:
    """y limits covering the data with 10 % margins and at least `min_span` wide (centred on the data), so a
    constant signal with 1e-10 noise plots as a flat line rather than auto-scaled "jitter"."""
    lo = min(float(np.min(s)) for s in series)
    hi = max(float(np.max(s)) for s in series)
    span = max(hi - lo, min_span)
    mid = 0.5 * (lo + hi)
    return mid - 0.55 * span, mid + 0.55 * span


def plot_joints(path: Path, log: EpisodeLog, title: str) -> None:
    """One panel per joint (left arm | right arm), then fold progress and the limiter's clamps over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, cmd, meas = log.t_s, log.command, log.measured
    fig, axes = plt.subplots(8, 2, figsize=(11, 13), sharex=True)
    for j, name in enumerate(log.joint_names):
        ax = axes[j % 7, j // 7]
        ax.plot(t, cmd[:, j], lw=1.2, label="commanded")
        ax.plot(t, meas[:, j], lw=1.0, ls="--", label="measured")
        for tc in log.chunk_arrival_s:
            ax.axvline(tc, color="0.85", lw=0.5, zorder=0)
        for lim in (log.lower[j], log.upper[j]):
            ax.axhline(lim, color="r", lw=0.6, ls=":")  # outside the view when far from the data
        ax.set_ylim(*readable_ylim(cmd[:, j], meas[:, j]))
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        ax.set_ylabel(name.replace("_", "\n", 1), fontsize=7)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    ax = axes[7, 0]
    ax.plot(t, log.fold_fraction, color="tab:green", lw=1.2)
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("towel fold\nfraction", fontsize=7)
    ax = axes[7, 1]
    for i, kind in enumerate(CLAMP_KINDS):
        total = np.cumsum(log.clamps_per_tick[:, i])
        if len(total) and total[-1] > 0:
            ax.plot(t, total, lw=1.2, label=f"{kind} ({int(total[-1])})")
    ax.set_ylim(bottom=0, top=max(10.0, 1.1 * float(log.clamps_per_tick.sum(axis=0).max(initial=0))))
    ax.set_ylabel("limiter clamps\n(cumulative)", fontsize=7)
    if log.clamps_per_tick.any():
        ax.legend(fontsize=7, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no clamps", transform=ax.transAxes, ha="center", va="center", fontsize=8)
    for ax in axes[7]:
        ax.set_xlabel("sim time [s]", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title + "\n(grey lines: chunk arrivals; red dotted: position limits; y ranges >= "
                 f"{MIN_AXIS_SPAN:g})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def clamp_summary(log: EpisodeLog) -> dict[str, Any]:
    """The limiter's clamps: counts per kind, events per sim second and the fraction of ticks clamped."""
    counts = log.clamp_counts()
    seconds = log.seconds
    return {
        "controller_clamps": counts,
        "controller_clamps_per_s": {k: (v / seconds if seconds > 0 else 0.0) for k, v in counts.items()},
        "clamped_ticks": int(np.count_nonzero(log.clamps_per_tick.sum(axis=1))),
        "clamped_tick_fraction": log.clamped_tick_fraction(),
    }


# ------------------------------------------------------------------------------------------------------------
# the demo
# ------------------------------------------------------------------------------------------------------------
def run_demo(
    seconds: float = 10.0,
    out_dir: str | Path = "outputs/demo",
    checkpoint: str | Path | None = None,
    sim_mode: str = "kinematic",
    policy: str = "checkpoint",
    seed: int = 0,
    robot_file: str | Path | None = None,
    latency: str | float | None = None,
    video: bool = True,
    threads: int | None = 1,
    start_positions: np.ndarray | None = None,
    video_stem: str = "demo",
    clock_reset: tuple[float, float] | None = None,
    stall: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Run the closed loop for `seconds` of sim time; write outputs to `out_dir`; return the summary dict.

    `seed` draws the towel pose (and seeds the policy); `start_positions` (sim joint order, default the robot's
    home pose) is the robot's start state; `clock_reset` = (at_s, back_s): from sim time at_s on the nodes'
    clock reads back_s less (see ``DemoConfig.clock_reset``); `stall` = (at_s, duration_s): the controller's
    executor handles nothing for duration_s from sim time at_s (see ``DemoConfig.stall``)."""
    from .robot import load_robot
    from .sim import BimanualSim, SimConfig

    wall0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    robot = load_robot(robot_file or DEFAULT_ROBOT)
    demo_cfg = DemoConfig()
    if latency is not None:
        demo_cfg.sim_latency_s = latency
    if clock_reset is not None:
        demo_cfg.clock_reset = (float(clock_reset[0]), float(clock_reset[1]))
    if stall is not None:
        demo_cfg.stall = (float(stall[0]), float(stall[1]))
    if threads and policy == "checkpoint":  # the tiny model is fastest on one thread
        import torch

        torch.set_num_threads(int(threads))
    sim_cfg = SimConfig.from_dict(robot.sim)
    sim = BimanualSim(sim_cfg, mode=sim_mode, seed=seed)
    if start_positions is not None:
        sim.reset(seed, positions=np.asarray(start_positions, float))
    ckpt = (Path(checkpoint) if checkpoint else default_checkpoint()) if policy == "checkpoint" else None
    writer = None
    try:
        writer = VideoWriter(out, demo_cfg.video_fps, video_stem) if video else None
        log = run_episode(robot, sim, policy, ckpt, demo_cfg, seconds, seed,
                          frame_sink=writer.add if writer is not None else None)
    finally:
        if writer is not None:
            writer.close()
        sim.close()
    dt = 1.0 / log.control_rate_hz
    names = log.joint_names
    cmd_arr, meas_arr, fold_arr = log.command, log.measured, log.fold_fraction
    produced = log.produced
    title = (f"fastwam_ros demo: {policy} policy, sim {sim.mode} ({sim.render_backend}), "
             f"{seconds:g} s, {produced} chunks")
    plot_path = out / "joints.png"
    plot_joints(plot_path, log, title)
    np.savez_compressed(out / "trace.npz", t_s=log.t_s, command=cmd_arr, measured=meas_arr, fold_fraction=fold_arr,
                        chunk_arrival_s=np.asarray(log.chunk_arrival_s), joint_names=np.asarray(names),
                        clamps_per_tick=log.clamps_per_tick, clamp_kinds=np.asarray(CLAMP_KINDS),
                        chunk_age_s=log.chunk_age_s)
    if log.frame_png is not None:
        import imageio.v2 as iio

        iio.imwrite(out / "frame.png", log.frame_png)
    measured_latency = demo_cfg.sim_latency_s == "measured"
    replan_ticks = int(round(demo_cfg.replan_period_s / dt))
    fixed_latency_ticks = 0 if measured_latency else int(np.ceil(float(demo_cfg.sim_latency_s) / dt - 1e-9))
    expected_period_s = max(replan_ticks, max(fixed_latency_ticks, 1)) * dt if not measured_latency else None
    cmd_vel = np.abs(np.diff(cmd_arr, axis=0)) / dt if len(cmd_arr) > 1 else np.zeros((1, len(names)))
    wall, age = log.wall_latency_s, log.chunk_age_s[np.isfinite(log.chunk_age_s)]
    summary = {
        "robot": robot.name,
        "robot_file": robot.source,
        "sim_mode": sim.mode,
        "render_backend": sim.render_backend,
        "fallback_reason": sim.fallback_reason,
        "policy": policy,
        "checkpoint": str(ckpt) if ckpt else None,
        "instruction": demo_cfg.instruction,
        "seed": seed,
        "seconds": seconds,
        "control_rate_hz": log.control_rate_hz,
        "camera_rate_hz": sim_cfg.camera_rate_hz,
        "chunks_produced": produced,
        "chunks_accepted": log.accepted,
        "chunks_rejected": log.rejected,
        "chunk_ids": log.chunk_ids,
        "chunks_with_rtc_prefix": log.prefixed,
        **log.runtime,
        "chunk_rate_hz": produced / seconds if seconds > 0 else 0.0,
        "expected_chunk_rate_hz": (1.0 / expected_period_s) if expected_period_s else None,
        "chunk_step_period_s": robot.chunk_step_period_s,
        "latency": {
            "mode": "measured" if measured_latency else "fixed",
            "sim_latency_s_mean": float(np.mean(log.sim_latency_s)) if log.sim_latency_s else None,
            "wall_inference_s_mean": float(np.mean(wall)) if wall else None,
            "wall_inference_s_p50": float(np.median(wall)) if wall else None,
            "wall_inference_s_max": float(np.max(wall)) if wall else None,
        },
        "chunk_age_s": {"mean": float(age.mean()) if age.size else None,
                        "max": float(age.max()) if age.size else None},
        "joint_names": names,
        "command_min": cmd_arr.min(axis=0).tolist(),
        "command_max": cmd_arr.max(axis=0).tolist(),
        "limits_lower": log.lower.tolist(),
        "limits_upper": log.upper.tolist(),
        "commands_within_limits": bool(np.all(cmd_arr >= log.lower - 1e-9) and np.all(cmd_arr <= log.upper + 1e-9)),
        "max_command_velocity": cmd_vel.max(axis=0).tolist(),
        "max_velocity_limit": log.max_velocity.tolist(),
        "max_abs_command": float(np.abs(cmd_arr).max()),
        **clamp_summary(log),
        "controller_rejections": log.controller_rejections,
        "sim_command_clamps": log.sim_command_clamps,
        "tracking_error_max": float(np.abs(cmd_arr - meas_arr).max()),
        "tracking_error_mean": float(np.abs(cmd_arr - meas_arr).mean()),
        "fold_fraction_final": float(fold_arr[-1]) if len(fold_arr) else 0.0,
        "fold_fraction_max": float(fold_arr.max()) if len(fold_arr) else 0.0,
        "control_ticks": len(log.t_s),
        "video": None if writer is None else writer.info(),
        "plot": str(plot_path),
        "frame_png": str(out / "frame.png") if log.frame_png is not None else None,
        "wall_s": round(time.perf_counter() - wall0, 2),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def format_clamps(s: dict[str, Any]) -> str:
    """'limiter clamped 12 % of ticks (acceleration 98 = 9.8/s, velocity 41 = 4.1/s)' from a demo summary."""
    parts = [f"{k} {v} = {s['controller_clamps_per_s'][k]:.1f}/s" for k, v in s["controller_clamps"].items() if v]
    return (f"limiter clamped {100 * s['clamped_tick_fraction']:.1f} % of {s['control_ticks']} ticks"
            + (f" ({', '.join(parts)})" if parts else " (no clamps)"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m fastwam_ros.demo",
        description="ROS-free closed loop: simulated bimanual robot + bundled tiny Fast-WAM checkpoint + "
        "chunk controller, in sim time. Writes a video, a joint plot and summary.json.",
    )
    ap.add_argument("--seconds", type=float, default=10.0, help="sim seconds to run (default: %(default)s)")
    ap.add_argument("--out", default="outputs/demo", help="output folder (default: %(default)s)")
    ap.add_argument("--checkpoint", default=None, help="policy directory (default: the bundled models/demo)")
    ap.add_argument("--sim-mode", default="kinematic", choices=["auto", "mujoco", "kinematic"],
                    help="simulator (default %(default)s: the images the bundled checkpoint was trained on; 'mujoco' "
                         "= MuJoCo physics, with MuJoCo's renders unless MUJOCO_GL=disable)")
    ap.add_argument("--policy", default="checkpoint", choices=["checkpoint", "scripted"],
                    help="'scripted' replays the scripted fold as chunks (an oracle, for comparison)")
    ap.add_argument("--latency", default=None,
                    help="inference latency charged in sim seconds, or 'measured' (default: config, 0.15)")
    ap.add_argument("--robot", default=None,
                    help="robot file: a path or a name under config/robots (default: demo_aloha)")
    ap.add_argument("--seed", type=int, default=0, help="towel pose / episode seed")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads for inference (default: 1)")
    ap.add_argument("--no-video", action="store_true")
    ap.add_argument("--clock-reset", type=float, nargs=2, default=None, metavar=("AT_S", "BACK_S"),
                    help="fault injection: at sim time AT_S the nodes' clock goes back BACK_S seconds (a bag loop or "
                         "simulator reset under use_sim_time); the world goes on")
    ap.add_argument("--stall", type=float, nargs=2, default=None, metavar=("AT_S", "DURATION_S"),
                    help="fault injection: at sim time AT_S the controller's executor stalls for DURATION_S seconds "
                         "(no tick, joint state or chunk handled); the robot runs the last trajectory meanwhile")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("OpenGL").setLevel(logging.WARNING)
    latency: str | float | None = args.latency
    if latency is not None and latency != "measured":
        latency = float(latency)
    s = run_demo(args.seconds, args.out, args.checkpoint, args.sim_mode, args.policy, args.seed, args.robot,
                 latency, video=not args.no_video, threads=args.threads, clock_reset=args.clock_reset,
                 stall=args.stall)
    print(
        f"sim {s['sim_mode']} ({s['render_backend']}), {s['policy']} policy: {s['chunks_produced']} chunks in "
        f"{s['seconds']:g} sim s ({s['chunk_rate_hz']:.2f} Hz), inference {s['latency']['wall_inference_s_mean']:.3f} s "
        f"wall (mean), fold {s['fold_fraction_final']:.2f}"
    )
    print(f"{format_clamps(s)}; commands within position limits: {s['commands_within_limits']}")
    if s["fallback_reason"]:
        print(f"note: {s['fallback_reason']}")
    print(f"wrote {s['video']['path'] if s['video'] else '(no video)'}, {s['plot']}, "
          f"{Path(args.out) / 'summary.json'}  ({s['wall_s']:.1f} s wall)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
