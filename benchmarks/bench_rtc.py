"""Real-time chunking benchmark: closed loop in simulated time, five ways of joining consecutive chunks.

Two settings, both run through the real :class:`fastwam_ros.control.ChunkController` (100 Hz / the demo robot's
rate), with the inference latency charged in sim time (log-normal, median ``--latency-s``, spread 0.25: the robot
keeps executing the previous plan meanwhile), a new inference on the first camera tick after the previous chunk
arrived (continuous trigger), fresh noise per replan (seed policy ``increment``), and the policy side exactly as
the policy runtime does it (:class:`~fastwam_ros.runtime.policy_runtime.DelayEstimator`, the executing plan
published at 20 Hz and aligned with :func:`~fastwam_ros.runtime.policy_runtime.rtc_request`):

* ``toy``: a 2-D point robot (first-order lag, 50 ms) goes from (0, 0) to (1, 0) past a disc obstacle at (0.5, 0);
  the demonstrations pass it left or right (50/50, a bimodal task). A small flow-matching policy (MLP, same
  flow conventions and Euler sampler as Fast-WAM: shift 5, 10 steps, 32-step chunks at 30 Hz) is trained here
  on CPU in seconds.
* ``demo``: the bundled demo checkpoint (``models/demo``, tiny Fast-WAM) in the demo simulator (kinematic), the
  towel-fold instruction, the demo robot's controller settings.

Variants: ``replace`` (no RTC, the new chunk takes over at the hand-off without blending), ``splice`` (no RTC,
blended over the controller's blend window), ``inpaint_hard`` (inpainting, weight 1 over the estimated delay d,
0 after), ``inpaint_soft`` (inpainting with the RTC paper's soft mask over the whole overlap) and ``guided`` (the
paper's VJP guidance, soft mask, β = 5). All but ``replace`` use the blend window.

Figures per variant (mean over runs; seams are the hand-offs between consecutive accepted chunks):

  seam_pos_jump / _max   |new chunk − previous chunk| at the hand-off time (rad or m; mean over seams / max)
  seam_vel_jump / _max   the same for their step velocities (rad/s or m/s)
  mode_switches          toy: consecutive chunks that pass the obstacle on different sides (per run)
  tracking_rms           command vs the newest accepted chunk at the same time (what blending / limits changed)
  robot_tracking_rms     command vs the robot's measured position
  replan_ms / replan_x   policy wall time per replan (minimum over --reps interleaved replans on identical inputs,
                         ms; the median is in the JSON) and its ratio to the plain sampler (replace); demo: the
                         whole FastWAMPolicy.predict (VAE encode, prefill, action steps)
  collisions / success   toy: runs that touched the obstacle / reached the goal

Usage: python benchmarks/bench_rtc.py [--json] [--setting toy|demo|both] [--runs 32] [--demo-runs 6] [--seconds 4]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastwam_ros.control import Chunk, ChunkController, ControllerConfig  # noqa: E402
from fastwam_ros.model.network.flow import FlowMatchScheduler  # noqa: E402
from fastwam_ros.model.network.rtc import rtc_weights  # noqa: E402
from fastwam_ros.model.network.rtc_guidance import PrefixGuide, euler_sample  # noqa: E402
from fastwam_ros.runtime.policy_runtime import DelayEstimator, PrefixState, rtc_request  # noqa: E402

# variant -> (rtc mode, mask, blend)
VARIANTS = {
    "replace": ("off", "soft", False),
    "splice": ("off", "soft", True),
    "inpaint_hard": ("inpaint", "hard", True),
    "inpaint_soft": ("inpaint", "soft", True),
    "guided": ("guided", "soft", True),
}
PLAN_PERIOD_S = 0.05  # the controller runtime publishes the executing plan at 20 Hz (+ after each new chunk)
PLAN_WAIT_S = 0.1  # rtc.plan_wait_s


# ------------------------------------------------------------------------------------------------ toy task
TOY_H, TOY_DT, TOY_STEPS, TOY_SCALE = 32, 1.0 / 30.0, 10, 0.5
OBSTACLE, OBSTACLE_R = np.array([0.5, 0.0]), 0.12


def toy_demo(rng: np.random.Generator) -> np.ndarray:
    """One demonstration [T, 2] at 30 Hz: min-jerk from near (0, 0) to (1, 0), passing left or right."""
    dur = rng.uniform(2.5, 3.5)
    t = np.arange(0.0, dur + TOY_DT, TOY_DT) / dur
    s = np.clip(10 * t**3 - 15 * t**4 + 6 * t**5, 0, 1)
    x0, y0 = rng.normal(0.0, 0.02, 2)
    side, amp = rng.choice([-1.0, 1.0]), rng.uniform(0.22, 0.3)
    path = np.stack([x0 + (1.0 - x0) * s, y0 * (1 - s) + side * amp * np.sin(np.pi * s)], axis=1)
    return np.concatenate([path, np.repeat(path[-1:], 20, axis=0)])


class ToyNet(torch.nn.Module):
    """Velocity field v(x_σ, σ | position) over a flattened 32 x 2 chunk (relative to the position)."""

    def __init__(self, hidden: int = 256):
        super().__init__()
        self.freqs = torch.arange(1, 9, dtype=torch.float32) * math.pi
        self.net = torch.nn.Sequential(
            torch.nn.Linear(TOY_H * 2 + 2 + 16, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, hidden),
            torch.nn.SiLU(), torch.nn.Linear(hidden, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, TOY_H * 2))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        f = sigma.reshape(-1, 1) * self.freqs
        h = torch.cat([x.reshape(x.shape[0], -1), obs, torch.sin(f), torch.cos(f)], dim=1)
        return self.net(h).reshape(x.shape)


class ToyPolicy:
    """The toy's flow-matching policy: chunk row k (absolute x, y) is meant for stamp + k * 1/30 s."""

    kind = "toy"

    def __init__(self, seed: int = 0, iters: int = 2500, cache: Path | None = None):
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        obs, chunks = [], []
        for _ in range(200):
            d = toy_demo(rng)
            for i in range(len(d) - 1):
                rows = d[i: i + TOY_H]
                rows = np.concatenate([rows, np.repeat(rows[-1:], TOY_H - len(rows), axis=0)])
                obs.append(d[i])
                chunks.append((rows - d[i]) / TOY_SCALE)
        obs_t = torch.tensor(np.array(obs), dtype=torch.float32)
        x0_t = torch.tensor(np.array(chunks), dtype=torch.float32)
        self.sched = FlowMatchScheduler()
        self.net = ToyNet()
        self.train_s, self.final_loss, self.samples = 0.0, float("nan"), len(obs_t)
        if cache is not None and Path(cache).is_file():
            self.net.load_state_dict(torch.load(cache))
        else:
            self._train(obs_t, x0_t, iters, seed)
            if cache is not None:
                torch.save(self.net.state_dict(), cache)
        self.net.eval().requires_grad_(False)
        self.sigmas = self.sched.sigmas(TOY_STEPS)
        self.horizon = TOY_H

    def _train(self, obs_t: torch.Tensor, x0_t: torch.Tensor, iters: int, seed: int) -> None:
        """Flow matching as Fast-WAM trains it: shifted σ, x_σ = (1-σ) x0 + σ ε, target ε - x0 (MSE)."""
        opt = torch.optim.Adam(self.net.parameters(), lr=2e-3)
        lr = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iters)
        g = torch.Generator().manual_seed(seed)
        t0 = time.perf_counter()
        for _ in range(iters):
            idx = torch.randint(0, len(obs_t), (512,), generator=g)
            x0, o = x0_t[idx], obs_t[idx]
            sigma = self.sched.sample_training_t(len(idx), generator=g) / self.sched.num_train_timesteps
            eps = torch.randn(x0.shape, generator=g)
            xt = (1 - sigma[:, None, None]) * x0 + sigma[:, None, None] * eps
            loss = ((self.net(xt, sigma, o) - (eps - x0)) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            lr.step()
        self.train_s, self.final_loss = time.perf_counter() - t0, float(loss.detach())

    @torch.no_grad()
    def predict(self, obs: np.ndarray, seed: int, prefix=None, weight=None, mode: str = "off"):
        t0 = time.perf_counter()
        o = torch.tensor(obs[None], dtype=torch.float32)
        noise = torch.randn((1, TOY_H, 2), generator=torch.Generator().manual_seed(seed))
        guide = None
        if mode != "off" and prefix is not None:
            n = min(len(prefix), TOY_H)
            target = torch.zeros(1, TOY_H, 2)
            target[0, :n] = torch.tensor((prefix[:n] - obs) / TOY_SCALE, dtype=torch.float32)
            w = torch.zeros(1, TOY_H, 1)
            w[0, :n, 0] = torch.tensor(weight[:n], dtype=torch.float32)
            guide = PrefixGuide(mode, target, w, noise, self.sigmas[:-1], self.sigmas[1:])
        x = euler_sample(lambda y, i: self.net(y, self.sigmas[i].reshape(1), o), noise, self.sigmas, guide)
        return obs + TOY_SCALE * x[0].numpy().astype(np.float64), time.perf_counter() - t0


class PointRobot:
    joint_names = ["x", "y"]

    def __init__(self, seed: int):
        self.q = np.random.default_rng(seed).normal(0.0, 0.02, 2)

    def positions(self) -> np.ndarray:
        return self.q.copy()

    def step(self, cmd: np.ndarray, dt: float) -> None:
        self.q += (1.0 - math.exp(-dt / 0.05)) * (cmd - self.q)


def toy_controller(blend: bool) -> ControllerConfig:
    lim = {"lower": -2.0, "upper": 2.0, "max_velocity": 3.0, "max_acceleration": 40.0}
    return ControllerConfig.from_dict({
        "control_rate_hz": 100.0, "blend_window_s": 0.1 if blend else 0.0, "handoff_margin_s": 0.02,
        "enable_ramp_s": 0.0, "trajectory_horizon_s": 0.0,
        "groups": [{"name": "xy", "joints": ["x", "y"], "limits": lim}]})


def toy_side(chunk: np.ndarray) -> int:
    """Which side of the obstacle a chunk passes on (+1 / -1), 0 when it does not reach it."""
    near = np.abs(chunk[:, 0] - OBSTACLE[0]) < 0.2
    if not near.any():
        return 0
    y = float(chunk[near, 1].mean())
    return 0 if abs(y) < 0.03 else int(np.sign(y))


# ------------------------------------------------------------------------------------------------ demo task
class DemoSetting:
    """The bundled demo checkpoint in the kinematic demo simulator, its robot file (``demo_aloha``)."""

    kind = "demo"

    def __init__(self):
        from fastwam_ros.demo import DEFAULT_ROBOT, DemoConfig, default_checkpoint
        from fastwam_ros.model.inference.policy import FastWAMPolicy
        from fastwam_ros.robot import load_robot

        self.robot = load_robot(DEFAULT_ROBOT)
        self.policy = FastWAMPolicy.from_pretrained(default_checkpoint(), device="cpu")
        self.perception = self.robot.perception_config()
        self.instruction = DemoConfig().instruction
        self.horizon = self.policy.horizon
        self.dt = float(self.robot.chunk_step_period_s)

    def make(self, seed: int, blend: bool):
        """(sim, controller config); sets the joint maps sim -> policy, policy -> controller, controller -> sim."""
        from fastwam_ros.sim import BimanualSim, SimConfig

        sim = BimanualSim(SimConfig.from_dict(self.robot.sim), mode="kinematic", seed=seed)
        c = self.robot.controller_dict()
        if not blend:
            c["blend_window_s"] = 0.0
        cfg = ControllerConfig.from_dict(c, sim.urdf())
        names, pol = list(cfg.joint_names), list(self.robot.joint_names)
        self.sim_to_pol = np.array([sim.joint_names.index(n) for n in pol])
        self.pol_to_ctrl = np.array([pol.index(n) for n in names])
        self.ctrl_to_pol = np.array([names.index(n) for n in pol])
        self.to_ctrl = np.array([sim.joint_names.index(n) for n in names])
        self.to_sim = np.array([names.index(n) for n in sim.joint_names])
        return sim, cfg

    def observe(self, sim) -> tuple[np.ndarray, np.ndarray]:
        from fastwam_ros.perception import preprocess_frames

        images = {cam: sim.render(cam) for cam in sim.cameras}
        return preprocess_frames(images, self.perception), sim.joint_positions()[self.sim_to_pol]

    def predict(self, obs, seed: int, prefix=None, weight=None, mode: str = "off"):
        frame, q = obs
        t0 = time.perf_counter()
        kw = {} if prefix is None or mode == "off" else {
            "prefix": prefix[:, self.ctrl_to_pol], "prefix_weight": weight, "rtc_mode": mode}
        out = self.policy.predict(frame, self.instruction, q, seed=seed, **kw)
        return np.asarray(out.actions, np.float64)[:, self.pol_to_ctrl], time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------ closed loop
@dataclass
class RunResult:
    seam_pos: list
    seam_vel: list
    switches: int
    tracking: list
    robot_tracking: list
    collided: bool
    success: bool


def _interp(chunk: Chunk, t: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Position and step velocity of a chunk at time t (None outside it)."""
    k = (t - chunk.stamp_s) / chunk.step_period_s
    n = len(chunk.positions)
    if k < 0 or k > n - 1:
        return None
    i = min(int(k), n - 2)
    a = k - i
    p = (1 - a) * chunk.positions[i] + a * chunk.positions[i + 1]
    return p, (chunk.positions[i + 1] - chunk.positions[i]) / chunk.step_period_s


def run_closed_loop(setting, variant: str, seed: int, seconds: float, latency_s: float) -> RunResult:
    mode, mask, blend = VARIANTS[variant]
    toy = setting.kind == "toy"
    if toy:
        robot, cfg = PointRobot(seed), toy_controller(blend)
        step_period = TOY_DT
    else:
        robot, cfg = setting.make(seed, blend)
        step_period = setting.dt
    ctrl = ChunkController(cfg)
    names = list(cfg.joint_names)
    to_ctrl = None if toy else setting.to_ctrl
    rng = np.random.default_rng(10_000 + seed)
    dt = cfg.period_s
    n_ticks = int(round(seconds / dt))
    cam_every = max(1, int(round(1.0 / (30.0 * dt))))

    def measured():
        q = robot.positions() if toy else robot.joint_positions()
        return q if toy else q[to_ctrl]

    ctrl.update_joint_state(0.0, names, measured())
    ctrl.enable(0.0)
    est = DelayEstimator(90.0, 20, cfg.handoff_margin_s)
    plan, last_plan_s = None, -1.0
    pending, chunks, seam_pos, seam_vel, sides = None, [], [], [], []
    track, robot_track, min_obst = [], [], np.inf
    n_replans = 0
    last_sent_id, last_sent_s = None, 0.0
    for tick in range(n_ticks):
        now = tick * dt
        q = measured()
        if pending is not None and tick >= pending[0]:
            chunk, stamp = pending[1], pending[1].stamp_s
            t_h = now + cfg.handoff_margin_s
            before = ctrl.committed_prefix(now, duration_s=cfg.handoff_margin_s + 2 * step_period) \
                if chunks else None
            res = ctrl.submit_chunk(chunk, now)
            est.add(now - stamp)
            last_sent_id, last_sent_s = chunk.chunk_id, now
            if res.accepted:
                new = _interp(chunk, t_h)
                if before is not None and before.num_steps >= 2 and new is not None:
                    # the plan the robot was executing vs the new chunk, where the new chunk takes over
                    old_p = np.array([np.interp(t_h, before.times_s, c) for c in before.positions.T])
                    old_v = np.array([np.interp(t_h, before.times_s[1:], c)
                                      for c in (np.diff(before.positions, axis=0) / step_period).T])
                    seam_pos.append(float(np.abs(new[0] - old_p).max()))
                    seam_vel.append(float(np.abs(new[1] - old_v).max()))
                chunks.append(chunk)
                if toy:
                    sides.append(toy_side(chunk.positions))
                last_plan_s = -1.0  # the controller runtime publishes the plan with this chunk at once
            pending = None
        # RTC waits (at most plan_wait_s) for the controller's plan that contains the chunk it just sent
        waiting = mode != "off" and last_sent_id is not None and now - last_sent_s < PLAN_WAIT_S \
            and (plan is None or plan.chunk_id < last_sent_id)
        if pending is None and not waiting and tick % cam_every == 0:
            obs = q.copy() if toy else setting.observe(robot)
            prefix = weight = None
            if mode != "off" and plan is not None:
                d = est.delay_steps(step_period, fallback_s=0.0)
                req = rtc_request(plan, now, step_period, d, mask, setting.horizon)
                if req is not None:
                    prefix, weight = req
            actions, _ = setting.predict(obs, seed * 1000 + n_replans, prefix, weight, mode)
            n_replans += 1
            lat = float(np.exp(np.log(latency_s) + 0.25 * rng.normal()))
            chunk = Chunk(stamp_s=now, step_period_s=step_period, joint_names=names, positions=actions,
                          chunk_id=n_replans)
            pending = (tick + max(1, int(math.ceil(lat / dt - 1e-9))), chunk)
        ctrl.update_joint_state(now, names, q, now_s=now)
        out = ctrl.tick(now, with_trajectory=False, with_prefix=False)
        cmd = q.copy()
        for g in out.groups.values():
            if g.valid and g.positions is not None:
                cmd[[names.index(j) for j in g.joint_names]] = g.positions
        if out.plan_active and (last_plan_s < 0 or now - last_plan_s >= PLAN_PERIOD_S - 1e-9):
            # what the controller runtime publishes: the whole remaining plan from now
            cp = ctrl.committed_prefix(now, duration_s=max(cfg.rtc_prefix_s, out.metrics.plan_depth_s))
            plan = PrefixState(cp.stamp_s, cp.positions, now, cp.step_period_s, cp.newest_chunk_id)
            last_plan_s = now
        if chunks and out.plan_active:
            ref = _interp(chunks[-1], now)
            if ref is not None:
                track.append(float(np.sqrt(np.mean((cmd - ref[0]) ** 2))))
            robot_track.append(float(np.sqrt(np.mean((cmd - q) ** 2))))
        if toy:
            min_obst = min(min_obst, float(np.linalg.norm(q - OBSTACLE)))
            robot.step(cmd, dt)
        else:
            robot.step(cmd[setting.to_sim], dt)
    if not toy:
        robot.close()
    switches = sum(1 for a, b in zip(sides, sides[1:]) if a and b and a != b)
    final = measured()
    return RunResult(seam_pos, seam_vel, switches, track, robot_track,
                     collided=bool(toy and min_obst < OBSTACLE_R),
                     success=bool(toy and final[0] > 0.9 and abs(final[1]) < 0.1))


def summarise(results: list[RunResult], toy: bool) -> dict:
    def cat(name):
        return np.array([x for r in results for x in getattr(r, name)] or [np.nan])

    sp, sv = cat("seam_pos"), cat("seam_vel")
    out = {
        "runs": len(results),
        "seams": int(sum(len(r.seam_pos) for r in results)),
        "seam_pos_jump": float(np.nanmean(sp)), "seam_pos_jump_max": float(np.nanmax(sp)),
        "seam_vel_jump": float(np.nanmean(sv)), "seam_vel_jump_max": float(np.nanmax(sv)),
        "mode_switches": float(np.mean([r.switches for r in results])) if toy else None,
        "tracking_rms": float(np.sqrt(np.nanmean(cat("tracking") ** 2))),
        "robot_tracking_rms": float(np.sqrt(np.nanmean(cat("robot_tracking") ** 2))),
    }
    if toy:
        out["collisions"] = int(sum(r.collided for r in results))
        out["success"] = int(sum(r.success for r in results))
    return out


def replan_cost(setting, reps: int) -> dict[str, float]:
    """(min, median) wall time (ms) of one replan per variant on identical inputs, the variants interleaved
    round-robin: the previous plan is a sampled chunk, d = 6, overlap 24 steps. The minimum is the compute
    cost; the median also carries whatever else the CPU was doing."""
    if setting.kind == "toy":
        obs, sim = np.zeros(2), None
    else:
        sim, _ = setting.make(0, True)
        obs = setting.observe(sim)
    plan, _ = setting.predict(obs, 1)
    combos = sorted({(m, k) for m, k, _ in VARIANTS.values()})  # replace and splice sample alike
    times: dict[tuple, list] = {c: [] for c in combos}
    for it in range(reps + 2):
        for mode, mask in combos:
            _, wall = setting.predict(obs, it, plan[:24], rtc_weights(24, 6, 24, mask), mode)
            if it >= 2:  # warm-up
                times[(mode, mask)].append(wall)
    if sim is not None:
        sim.close()
    return {v: (1e3 * float(np.min(times[(m, k)])), 1e3 * float(np.median(times[(m, k)])))
            for v, (m, k, _) in VARIANTS.items()}


def bench(setting, runs: int, seconds: float, latency_s: float, reps: int) -> dict:
    table = {}
    for v in VARIANTS:
        res = [run_closed_loop(setting, v, seed, seconds, latency_s) for seed in range(runs)]
        table[v] = summarise(res, setting.kind == "toy")
    cost = replan_cost(setting, reps)
    for v, row in table.items():
        row["replan_ms"], row["replan_ms_median"] = cost[v]
        row["replan_x"] = cost[v][0] / cost["replace"][0]
    return table


def markdown(name: str, table: dict) -> str:
    cols = ["seam_pos_jump", "seam_pos_jump_max", "seam_vel_jump", "mode_switches", "tracking_rms", "replan_ms",
            "replan_x"]
    if "collisions" in next(iter(table.values())):
        cols += ["collisions", "success"]
    lines = [f"| {name} | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for v, row in table.items():
        cells = ["—" if row[c] is None else (f"{row[c]:.3g}" if isinstance(row[c], float) else str(row[c]))
                 for c in cols]
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print JSON only")
    ap.add_argument("--setting", choices=("toy", "demo", "both"), default="both")
    ap.add_argument("--runs", type=int, default=32, help="toy: closed-loop runs (seeds) per variant")
    ap.add_argument("--demo-runs", type=int, default=6, help="demo: closed-loop runs (seeds) per variant")
    ap.add_argument("--seconds", type=float, default=4.0, help="sim seconds per run")
    ap.add_argument("--latency-s", type=float, default=0.18, help="median inference latency charged in sim time")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--reps", type=int, default=30, help="timed replans per variant for the replan cost")
    ap.add_argument("--toy-cache", type=Path, default=None,
                    help="load the toy policy's weights from this file if it exists, else train and save them")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    report: dict = {"command": "python benchmarks/bench_rtc.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                    "latency_s_median": args.latency_s, "runs": args.runs, "demo_runs": args.demo_runs, "seconds": args.seconds,
                    "torch_threads": args.threads}
    t0 = time.perf_counter()
    if args.setting in ("toy", "both"):
        toy = ToyPolicy(cache=args.toy_cache)
        report["toy_policy"] = {"train_s": round(toy.train_s, 1), "final_loss": toy.final_loss,
                                "training_samples": toy.samples}
        report["toy"] = bench(toy, args.runs, args.seconds, args.latency_s, args.reps)
    if args.setting in ("demo", "both"):
        report["demo"] = bench(DemoSetting(), args.demo_runs, args.seconds, args.latency_s, args.reps)
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name in ("toy", "demo"):
            if name in report:
                print(markdown(name, report[name]) + "\n")
        print(json.dumps({k: v for k, v in report.items() if k not in ("toy", "demo")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
