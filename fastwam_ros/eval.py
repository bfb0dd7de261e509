"""Closed-loop evaluation in the demo simulator: ``fastwam-eval`` / ``python -m fastwam_ros.eval``.

    fastwam-eval --episodes 20 --seed 0                      # the bundled checkpoint (models/demo), kinematic sim
    fastwam-eval --policy scripted --episodes 20 --seed 0     # the scripted fold as an oracle policy
    fastwam-eval --policy path/to/policy_dir --sim-mode mujoco --out outputs/eval

Runs N seeded episodes (seeds ``seed .. seed+N-1``) through the loop the demo runs
(:func:`fastwam_ros.closed_loop.run_episode`: ``PolicyRuntime`` + its worker thread + ``ControllerRuntime``, in
simulated time, headless). Each episode's seed draws the towel pose (the sim's ranges) and the robot's start state
(:func:`episode_start`). Reports the paper's real-world metrics -- success rate (with a 95 % Wilson interval) and
average completion time of the successful episodes -- plus fold fraction, limiter clamps per second and the
fraction of clamped ticks, replan latency p50/p95 (measured inference wall time) and chunk age. Writes
``eval.json``, ``eval.png`` and (unless ``--no-video``) ``worst_episode/`` with the worst episode re-run with video.

Success is defined once, by :class:`SuccessCriterion`.

Also ``fastwam sim-eval`` (:func:`eval_command`, the umbrella CLI's signature); ``fastwam eval`` is the held-out
loss on a dataset. :func:`add_arguments` / :func:`run` fill and execute an ``argparse`` parser elsewhere.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .closed_loop import DemoConfig, EpisodeLog, run_episode

LOG = logging.getLogger("fastwam_ros.eval")
DEFAULT_ROBOT = "demo_aloha"


@dataclass(frozen=True)
class SuccessCriterion:
    """THE success definition of ``fastwam-eval``: the towel's fold fraction reaches ``fold_fraction`` and stays
    at or above it until the end of the episode, which lasts ``time_limit_s`` sim seconds. The completion time is
    the first tick from which it stays there (so a fold that is undone later does not count)."""

    fold_fraction: float = 0.8
    time_limit_s: float = 8.0

    def completion_time_s(self, t_s: np.ndarray, fold: np.ndarray) -> float | None:
        """Sim time (s) of the state after the tick from which ``fold >= fold_fraction`` holds to the end, or None.

        `fold[k]` is the fold fraction after the tick that starts at `t_s[k]`."""
        fold = np.asarray(fold, float)
        if fold.size == 0 or fold[-1] < self.fold_fraction:
            return None
        below = np.flatnonzero(fold < self.fold_fraction)
        k = 0 if below.size == 0 else int(below[-1]) + 1
        dt = float(t_s[1] - t_s[0]) if len(t_s) > 1 else 0.0
        return float(t_s[k]) + dt

    def success(self, t_s: np.ndarray, fold: np.ndarray) -> bool:
        return self.completion_time_s(t_s, fold) is not None


@dataclass(frozen=True)
class EpisodeVariation:
    """How seeds vary episodes: the towel pose comes from the sim's ranges (``SimConfig.towel_*_range``, drawn by
    ``BimanualSim.reset(seed)``); the start state is the home pose plus a uniform offset of up to
    ``arm_jitter_rad`` on every arm joint and ``gripper_jitter`` on the gripper openings."""

    arm_jitter_rad: float = 0.05
    gripper_jitter: float = 0.1


def episode_start(seed: int, home: np.ndarray, joint_names: list[str] | tuple[str, ...],
                  variation: EpisodeVariation = EpisodeVariation()) -> np.ndarray:
    """The robot's start positions for episode `seed` (sim joint order), from its own random stream."""
    rng = np.random.default_rng([int(seed), 0x5EED])
    grip = np.array(["gripper" in n for n in joint_names])
    scale = np.where(grip, variation.gripper_jitter, variation.arm_jitter_rad)
    return np.asarray(home, float) + rng.uniform(-1.0, 1.0, len(joint_names)) * scale


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def episode_metrics(log: EpisodeLog, criterion: SuccessCriterion) -> dict[str, Any]:
    """One episode's figures (JSON-ready)."""
    done_s = criterion.completion_time_s(log.t_s, log.fold_fraction)
    counts = log.clamp_counts()
    age = log.chunk_age_s[np.isfinite(log.chunk_age_s)]
    return {
        "success": done_s is not None,
        "completion_time_s": done_s,
        "fold_fraction_final": float(log.fold_fraction[-1]) if len(log.fold_fraction) else 0.0,
        "fold_fraction_max": float(log.fold_fraction.max()) if len(log.fold_fraction) else 0.0,
        "clamps": counts,
        "clamps_per_s": sum(counts.values()) / log.seconds if log.seconds > 0 else 0.0,
        "clamped_tick_fraction": log.clamped_tick_fraction(),
        "chunks_produced": log.produced,
        "chunks_accepted": log.accepted,
        "chunks_rejected": dict(log.rejected),
        "replan_latency_s": [float(x) for x in log.wall_latency_s],
        "chunk_age_s_mean": float(age.mean()) if age.size else None,
        "chunk_age_s_max": float(age.max()) if age.size else None,
        "sim_command_clamps": log.sim_command_clamps,
    }


def aggregate(episodes: list[dict[str, Any]], ages: np.ndarray) -> dict[str, Any]:
    """Figures over episodes: rates, means, pooled percentiles. `ages`: every tick's chunk age (s), pooled."""
    n = len(episodes)
    wins = [e for e in episodes if e["success"]]
    lat = np.array([x for e in episodes for x in e["replan_latency_s"]], float)
    lo, hi = wilson_interval(len(wins), n)

    def pct(a: np.ndarray, q: float) -> float | None:
        return float(np.percentile(a, q)) if a.size else None

    return {
        "episodes": n,
        "successes": len(wins),
        "success_rate": len(wins) / n if n else 0.0,
        "success_rate_ci95": [lo, hi],
        "completion_time_s_mean": float(np.mean([e["completion_time_s"] for e in wins])) if wins else None,
        "fold_fraction_final_mean": float(np.mean([e["fold_fraction_final"] for e in episodes])) if n else 0.0,
        "clamps_per_s_mean": float(np.mean([e["clamps_per_s"] for e in episodes])) if n else 0.0,
        "clamped_tick_fraction_mean": float(np.mean([e["clamped_tick_fraction"] for e in episodes])) if n else 0.0,
        "replan_latency_s_p50": pct(lat, 50),
        "replan_latency_s_p95": pct(lat, 95),
        "chunk_age_s_p50": pct(ages, 50),
        "chunk_age_s_p95": pct(ages, 95),
        "chunk_age_s_max": float(ages.max()) if ages.size else None,
    }


def worst_index(episodes: list[dict[str, Any]]) -> int:
    """The worst episode: a failure with the lowest final fold fraction; if all succeeded, the slowest."""
    def key(i: int):
        e = episodes[i]
        return (1, -e["completion_time_s"]) if e["success"] else (0, e["fold_fraction_final"])

    return min(range(len(episodes)), key=key)


def plot_summary(path: Path, logs: list[EpisodeLog], episodes: list[dict[str, Any]], seeds: list[int],
                 criterion: SuccessCriterion, agg: dict[str, Any], title: str) -> None:
    """Fold fraction of every episode over time (with the success threshold), then per-episode bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    ax = axes[0, 0]
    for log, e in zip(logs, episodes):
        ax.plot(log.t_s, log.fold_fraction, lw=1.0, color="tab:green" if e["success"] else "tab:red", alpha=0.7)
    ax.axhline(criterion.fold_fraction, color="k", ls=":", lw=0.8, label=f"success >= {criterion.fold_fraction:g}")
    ax.set(ylim=(-0.05, 1.05), xlim=(0, criterion.time_limit_s), xlabel="sim time [s]",
           ylabel="towel fold fraction", title="fold progress (green: success, red: failure)")
    ax.legend(fontsize=8, loc="upper left")
    x = np.arange(len(seeds))
    ax = axes[0, 1]
    done = [e["completion_time_s"] if e["success"] else 0.0 for e in episodes]
    ax.bar(x, done, color="tab:green")
    ax.set(ylim=(0, criterion.time_limit_s), xlabel="episode seed", ylabel="completion time [s]",
           title="completion time (no bar: failure)")
    ax = axes[1, 0]
    ax.bar(x, [100 * e["clamped_tick_fraction"] for e in episodes], color="tab:orange")
    ax.set(ylim=(0, 100), xlabel="episode seed", ylabel="% of control ticks clamped", title="limiter clamps")
    ax = axes[1, 1]
    lat_ms = [1e3 * v for e in episodes for v in e["replan_latency_s"]]
    ax.hist(lat_ms, bins=30, color="tab:blue")
    ax.set(xlim=(0, max(lat_ms + [1.0]) * 1.1), xlabel="replan latency (inference wall time) [ms]",
           ylabel="chunks", title="replan latency")
    for a in axes[0, 1], axes[1, 0]:
        a.set_xticks(x, [str(s) for s in seeds], fontsize=7)
    ci = agg["success_rate_ci95"]
    ct = agg["completion_time_s_mean"]
    fig.suptitle(f"{title}\nsuccess {100 * agg['success_rate']:.0f} % ({agg['successes']}/{agg['episodes']}, "
                 f"95 % CI {100 * ci[0]:.0f}-{100 * ci[1]:.0f} %), mean completion "
                 f"{'-' if ct is None else f'{ct:.2f} s'}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run_eval(policy: str = "demo", episodes: int = 20, seed: int = 0, sim_mode: str = "kinematic",
             out_dir: str | Path = "outputs/eval", robot_file: str | Path | None = None,
             criterion: SuccessCriterion = SuccessCriterion(), variation: EpisodeVariation = EpisodeVariation(),
             latency: float | str = 0.15, video: bool = False, threads: int = 1) -> dict[str, Any]:
    """Run `episodes` seeded episodes; write eval.json / eval.png (and the worst episode's video); return the report.

    `policy`: ``"scripted"``, ``"demo"`` (the bundled checkpoint) or a policy directory."""
    from .demo import default_checkpoint, run_demo
    from .robot import load_robot
    from .sim import BimanualSim, SimConfig

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    wall0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    robot = load_robot(robot_file or DEFAULT_ROBOT)
    kind = "scripted" if policy == "scripted" else "checkpoint"
    ckpt = None if kind == "scripted" else (default_checkpoint() if policy == "demo" else Path(policy))
    if ckpt is not None and not ckpt.is_dir():
        raise FileNotFoundError(f"policy directory {ckpt} not found (or pass --policy scripted / demo)")
    if kind == "checkpoint" and threads:
        import torch

        torch.set_num_threads(int(threads))
    demo_cfg = DemoConfig(sim_latency_s=latency)
    sim_cfg = SimConfig.from_dict(robot.sim)
    seeds = [seed + i for i in range(episodes)]
    logs, results, starts = [], [], []
    sim_info = {}
    for sd in seeds:
        sim = BimanualSim(sim_cfg, mode=sim_mode, seed=sd)
        try:
            start = episode_start(sd, np.asarray(sim_cfg.initial_positions), sim.joint_names, variation)
            sim.reset(sd, positions=start)
            starts.append(sim.joint_positions())
            towel = sim.towel.params
            sim_info = {"sim_mode": sim.mode, "render_backend": sim.render_backend,
                        "fallback_reason": sim.fallback_reason}
            log = run_episode(robot, sim, kind, ckpt, demo_cfg, criterion.time_limit_s, sd)
        finally:
            sim.close()
        m = episode_metrics(log, criterion)
        m = {"seed": sd, "towel_centre_xy_m": list(towel.centre_xy_m), "towel_yaw_rad": towel.yaw_rad,
             "start_positions": starts[-1].tolist(), **m}
        LOG.info("seed %d: %s, fold %.2f, completion %s, clamped %.1f %% of ticks", sd,
                 "success" if m["success"] else "failure", m["fold_fraction_final"], m["completion_time_s"],
                 100 * m["clamped_tick_fraction"])
        logs.append(log)
        results.append(m)
    ages = np.concatenate([lg.chunk_age_s[np.isfinite(lg.chunk_age_s)] for lg in logs])
    agg = aggregate(results, ages)
    worst = worst_index(results)
    label = "scripted" if kind == "scripted" else str(ckpt)
    title = f"fastwam-eval: {label}, sim {sim_info['sim_mode']}, {episodes} episodes from seed {seed}"
    plot_summary(out / "eval.png", logs, results, seeds, criterion, agg, title)
    worst_run = None
    if video:
        s = run_demo(seconds=criterion.time_limit_s, out_dir=out / "worst_episode", checkpoint=ckpt, sim_mode=sim_mode,
                     policy=kind, seed=seeds[worst], robot_file=robot_file, latency=latency, video=True,
                     threads=threads, start_positions=starts[worst], video_stem=f"seed{seeds[worst]}")
        worst_run = {"dir": str(out / "worst_episode"), "video": s["video"], "fold_fraction_final":
                     s["fold_fraction_final"]}
    report = {
        "policy": label,
        "robot": robot.name,
        **sim_info,
        "seeds": seeds,
        "success_criterion": asdict(criterion),
        "episode_variation": {**asdict(variation), "towel": {
            "centre_x_range_m": list(sim_cfg.towel_centre_x_range_m),
            "centre_y_range_m": list(sim_cfg.towel_centre_y_range_m),
            "yaw_range_rad": list(sim_cfg.towel_yaw_range_rad)}},
        "loop": asdict(demo_cfg),
        "summary": agg,
        "worst_episode": {"seed": seeds[worst], "run": worst_run},
        "episodes": results,
        "plot": str(out / "eval.png"),
        "wall_s": round(time.perf_counter() - wall0, 1),
    }
    (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def format_report(r: dict[str, Any]) -> str:
    s = r["summary"]
    ci = s["success_rate_ci95"]
    ct = s["completion_time_s_mean"]
    crit = r["success_criterion"]

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{1e3 * v:.1f} ms"

    return "\n".join([
        f"policy {r['policy']}, sim {r['sim_mode']} ({r['render_backend']}), {s['episodes']} episodes "
        f"(seeds {r['seeds'][0]}..{r['seeds'][-1]})",
        f"success rate      {100 * s['success_rate']:.1f} % ({s['successes']}/{s['episodes']}; 95 % CI "
        f"{100 * ci[0]:.1f}-{100 * ci[1]:.1f} %)  [fold fraction >= {crit['fold_fraction']:g} held to the end of "
        f"{crit['time_limit_s']:g} s]",
        f"completion time   {'-' if ct is None else f'{ct:.2f} s'} (mean over successes)",
        f"fold fraction     {s['fold_fraction_final_mean']:.2f} (mean final)",
        f"limiter clamps    {s['clamps_per_s_mean']:.1f} /s, {100 * s['clamped_tick_fraction_mean']:.1f} % of ticks",
        f"replan latency    p50 {ms(s['replan_latency_s_p50'])}, p95 {ms(s['replan_latency_s_p95'])} "
        f"(inference wall time; charged {r['loop']['sim_latency_s']} s in sim time)",
        f"chunk age         p50 {ms(s['chunk_age_s_p50'])}, p95 {ms(s['chunk_age_s_p95'])}",
        f"worst episode     seed {r['worst_episode']['seed']}",
    ])


def add_arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The evaluation's options (for ``fastwam-eval`` and for an umbrella CLI's sub-command)."""
    d = SuccessCriterion()
    ap.add_argument("--policy", default="demo",
                    help="'demo' (the bundled checkpoint), 'scripted' (oracle) or a policy directory")
    ap.add_argument("--episodes", type=int, default=20, help="number of episodes (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="first episode seed; episodes use seed..seed+N-1")
    ap.add_argument("--sim-mode", default="kinematic", choices=["kinematic", "mujoco", "auto"],
                    help="simulator physics (default: %(default)s; 'auto' uses MuJoCo when it works here)")
    ap.add_argument("--out", default="outputs/eval", help="output folder (default: %(default)s)")
    ap.add_argument("--robot", default=None, help="robot file: a path or a name under config/robots")
    ap.add_argument("--time-limit", type=float, default=d.time_limit_s, help="episode length, sim s (default: %(default)s)")
    ap.add_argument("--success-fold", type=float, default=d.fold_fraction,
                    help="fold fraction that counts as success (default: %(default)s)")
    ap.add_argument("--latency", default="0.15", help="inference latency charged in sim s, or 'measured'")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    ap.add_argument("--no-video", action="store_true", help="skip re-running the worst episode with video")
    ap.add_argument("--json", action="store_true", help="print the whole report as JSON")
    return ap


def run(args: argparse.Namespace) -> int:
    """Execute a namespace parsed with :func:`add_arguments`."""
    latency: float | str = args.latency if args.latency == "measured" else float(args.latency)
    r = run_eval(args.policy, args.episodes, args.seed, args.sim_mode, args.out, args.robot,
                 SuccessCriterion(args.success_fold, args.time_limit), latency=latency, video=not args.no_video,
                 threads=args.threads)
    print(json.dumps(r, indent=2) if args.json else format_report(r))
    if r["fallback_reason"]:
        print(f"note: {r['fallback_reason']}")
    print(f"wrote {Path(args.out) / 'eval.json'}, {r['plot']}"
          + (f", {r['worst_episode']['run']['video']['path']}" if r["worst_episode"]["run"] else "")
          + f"  ({r['wall_s']:.0f} s wall)")
    return 0


def eval_command(argv: list[str] | None, prog: str = "fastwam-eval") -> int:
    """Entry point with the umbrella CLI's signature (``fastwam sim-eval``)."""
    ap = add_arguments(argparse.ArgumentParser(
        prog=prog, description="Closed-loop evaluation of a policy in the demo simulator (seeded "
        "episodes through PolicyRuntime + ControllerRuntime): success rate, completion time, clamps, latency."))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run(args)


def main(argv: list[str] | None = None) -> int:
    """``fastwam-eval`` / ``python -m fastwam_ros.eval``."""
    return eval_command(argv, "fastwam-eval")


if __name__ == "__main__":
    raise SystemExit(main())
