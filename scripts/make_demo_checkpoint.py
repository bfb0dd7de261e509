#!/usr/bin/env python3
"""Train the bundled demo checkpoint (models/demo/) on the simulator's scripted demonstrations, on a CPU.

    python scripts/make_demo_data.py --out outputs/demo_data --episodes 48
    python scripts/make_demo_checkpoint.py --data outputs/demo_data --out models/demo --minutes 15

Model: the ``tiny`` Fast-WAM preset (~0.2 M transformer parameters) with its image size set to the demo
robot's tiled frame (96x128, robotwin layout from config/robots/demo_aloha.yaml) and a narrower VAE (0.8 M
parameters: base_dim 8 instead of 16/24, same 48-channel latent); random-initialised tiny VAE and
text encoder (the real Wan2.2 VAE / UMT5 are far too large for a demo), both frozen, as the trainer does with
``model.vae=random`` / ``model.text_encoder=random``. Training is the package's own Trainer
(fastwam_ros.training.Trainer: flow-matching action loss + video loss, AdamW, cosine schedule); the last
checkpoint's policy directory is re-saved with the VAE bundled so ``FastWAMPolicy.from_pretrained`` can load it
with nothing else. A training-loss curve and a short offline evaluation (action error on held-out episodes)
are written next to it (train_report.json, loss_curve.png).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _model_config_file(out_dir: Path, height: int, width: int) -> Path:
    """The tiny preset with the demo frame size, written as a model config file for the trainer."""
    import yaml

    from fastwam_ros.model.config import FastWAMConfig, load_config

    cfg = load_config("tiny").to_dict()
    cfg["name"] = "tiny_demo"
    cfg["policy"]["image_height"] = height
    cfg["policy"]["image_width"] = width
    # A narrower random VAE than the tiny preset's (same latent: 48 channels, 16x downsampling) keeps the
    # bundled checkpoint at a few MB; its decoder is never used by inference or by the latent-space losses.
    cfg["vae"]["base_dim"] = 8
    cfg["vae"]["decoder_base_dim"] = 8
    FastWAMConfig.from_dict(cfg)  # validate
    path = out_dir / "model_config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path

MODEL_CARD = """# Demo checkpoint: tiny Fast-WAM, scripted towel folds in simulation

**What this is.** A tiny Fast-WAM policy (the `tiny` preset: 2-layer video expert of width 64, 2-layer action
expert of width 32; {n_params:,} parameters including a {n_vae:,}-parameter VAE) trained for {steps} optimizer
steps (batch {batch}, {wall_min:.0f} min on {threads} CPU thread(s)) so that `python -m fastwam_ros.demo` and
`ros2 launch fastwam_ros towel_fold.launch.py demo:=true` run out of the box, without a GPU and without the
20 GB of Wan2.2 / UMT5 weights. {size_mb:.1f} MB on disk.

**Trained on.** {n_train} scripted demonstrations ({ticks:,} control ticks at {fps:g} Hz; {n_eval} more held out)
recorded in the package's own simulator (`fastwam_ros/sim`): two ALOHA ViperX-300s arms, head camera +
two wrist cameras tiled into one 96x128 frame (robotwin layout), 14 joint positions (rad; grippers as a
normalised opening 0..1). Sim modes in the data: {modes}. Each episode is the same open-loop script
("reach the towel's far corners, close, lift over, put down on the near corners, open, go home") with a
random towel pose (centre +-6 cm x, 44-54 cm y, yaw +-0.25 rad), +-10 % timing and a random gripper pitch.
Instruction: "{instruction}". The "towel" is a rigid two-part rectangle that follows a closed gripper, not
cloth physics.

**Encoders.** The VAE (a narrower copy of the tiny preset's, 48-channel latent) and the text encoder are
*random and frozen*: no Wan2.2 or UMT5 weights are involved. The one instruction's embedding is stored in
`text_embeds.safetensors`; other instructions cannot be embedded (there is no text encoder bundled).

**How well it works (honestly).** On {n_eval} held-out episodes the mean absolute error of the predicted
32-step chunks against the script is {err:.3f} (rad / gripper units), versus {hold:.3f} for the trivial chunk
that holds the current pose (first step: {err0:.3f}). Training loss went from {loss0:.2f} to {loss1:.2f}
(last 50 steps; action part {lossa:.2f}). {learnt}

Closed loop (`python -m fastwam_ros.demo`, {cl_seconds:g} sim s, seeds {cl_seeds}; the scripted demonstrations
reach a fold fraction of ~1.0; a value between 0 and 1 means a corner was picked up and dropped part-way):

{cl_table}

{cl_verdict} It only knows this simulated scene, camera placement and instruction; on any real
robot, other cameras or other tasks its output is meaningless. CPU inference: about {lat_ms:.0f} ms per chunk
(one thread, {machine}).

**What it is for.** Exercising the whole pipeline end to end — perception tiling, the policy API, chunk
latency compensation and splicing, limits, the ROS graph — with a model whose outputs are in the robot's
units and move the arms plausibly. Not a benchmark and not a starting point for real training (fine-tune
from the official Fast-WAM weights instead: README, "Train on your robot's data").

**Regenerate.**

```bash
python scripts/make_demo_data.py --out outputs/demo_data --episodes {n_total}
python scripts/make_demo_checkpoint.py --data outputs/demo_data --out models/demo --steps {steps}
```

Files: `model.safetensors` (model + VAE weights), `config.json` (model config), `stats.json` (normaliser),
`dataset_stats.json` (raw data statistics), `perception.json` (the tiling it was trained with), `robot_contract.json` (the robot file it was trained
for, `config/robots/demo_aloha.yaml`: checked at deployment),
`text_embeds.safetensors`, `meta.json`, `train_report.json` (the numbers above), `loss_curve.png`.
"""


def _verdict(folds: list[float], grip_min: float) -> str:
    n_ok = sum(f > 0.8 for f in folds)
    if n_ok == len(folds):
        text = "It folded the towel in all of these runs; expect failures on other seeds and longer runs."
    elif n_ok:
        text = f"It folded the towel in {n_ok} of {len(folds)} runs: it does not do the task reliably."
    else:
        text = "It did not fold the towel in any of these runs: it does not do the task."
    if grip_min > 0.3:
        text += (f" The arms reach out and come back, but the grippers never close (lowest command {grip_min:.2f};"
                 " a corner is grasped below 0.3).")
    return text


def write_model_card(out: Path, report: dict, n_params: int, n_vae: int, n_total: int) -> None:
    import platform

    ev, tr, da, cl = report["eval_heldout"], report["train"], report["data"], report["closed_loop"]
    modes = [m for m in ("kinematic", "mujoco") if m in cl]
    text = MODEL_CARD.format(
        n_params=n_params,
        n_vae=n_vae,
        steps=tr["steps"],
        batch=tr["batch_size"],
        wall_min=tr["wall_s"] / 60.0,
        threads=tr["threads"],
        size_mb=report["size_bytes"] / 2**20,
        n_train=da["episodes_train"],
        n_eval=da["episodes_eval"],
        n_total=n_total,
        ticks=da["ticks_train"],
        fps=da["fps"],
        modes=", ".join(da["sim_modes"]),
        instruction=da["instruction"],
        err=ev["mean_abs_action_error"],
        hold=ev["hold_still_baseline_error"],
        err0=ev["mean_abs_first_step_error"],
        loss0=tr["loss_first"],
        loss1=tr["loss_last_50_mean"],
        lossa=tr["loss_action_last_50_mean"],
        lat_ms=1000 * ev["cpu_latency_s_median"],
        machine=platform.machine(),
        learnt=(
            "Its chunks are closer to the demonstrations than holding still, so it has learnt the coarse motion "
            "from images + joint state."
            if ev["mean_abs_action_error"] < ev["hold_still_baseline_error"]
            else "Its chunks are *not* closer to the demonstrations than holding still: it has learnt little."
        ),
        cl_seconds=cl["seconds"],
        cl_seeds=", ".join(str(x) for x in cl["seeds"]),
        cl_table="\n".join(
            ["| sim | final fold fraction per seed (0 untouched, 1 folded) | lowest gripper command (0 = closed) |",
             "|---|---|---|"]
            + [f"| {m} | {', '.join(f'{x:.2f}' for x in cl[m]['fold_fraction_final'])} | "
               f"{min(cl[m]['min_gripper_command']):.2f} |" for m in modes]
        ),
        cl_verdict=_verdict([x for m in modes for x in cl[m]["fold_fraction_final"]],
                            min(min(cl[m]["min_gripper_command"]) for m in modes)),
    )
    (out / "README.md").write_text(text)



def evaluate(policy, episodes, perception, n_obs: int = 8) -> dict:
    """Mean |predicted - recorded| action error (rad / gripper units) over the chunk, on `episodes`."""
    import numpy as np

    from fastwam_ros.perception import preprocess_frames

    errs, first_step_errs, lat = [], [], []
    for ep in episodes:
        T = len(ep)
        for k in np.linspace(0, T - 33, n_obs).astype(int):
            images = {cam: seq.frame(int(k)) for cam, seq in ep.cameras.items()}
            frame = preprocess_frames(images, perception)
            out = policy.predict(frame, ep.instruction, ep.state[k])
            ref = ep.action[k : k + 32]
            errs.append(float(np.abs(out.actions[: len(ref)] - ref).mean()))
            first_step_errs.append(float(np.abs(out.actions[0] - ref[0]).mean()))
            lat.append(out.timing_s["total"])
    # A trivial baseline: hold the current state for the whole chunk.
    hold = []
    for ep in episodes:
        T = len(ep)
        for k in np.linspace(0, T - 33, n_obs).astype(int):
            hold.append(float(np.abs(ep.action[k : k + 32] - ep.state[k]).mean()))
    return {
        "mean_abs_action_error": float(np.mean(errs)),
        "mean_abs_first_step_error": float(np.mean(first_step_errs)),
        "hold_still_baseline_error": float(np.mean(hold)),
        "cpu_latency_s_median": float(np.median(lat)),
        "n_observations": len(errs),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="outputs/demo_data", help="dataset from make_demo_data.py")
    ap.add_argument("--out", default="models/demo", help="policy directory to write (default: %(default)s)")
    ap.add_argument("--work", default="outputs/demo_train", help="trainer run directory (default: %(default)s)")
    ap.add_argument("--robot", default=str(REPO / "config" / "robots" / "demo_aloha.yaml"), help="robot file")
    ap.add_argument("--steps", type=int, default=4000, help="optimizer steps (default: %(default)s)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--holdout", type=int, default=4, help="episodes kept out of training for the evaluation")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-only", action="store_true",
                    help="skip training: re-evaluate the policy in --out and rewrite its report and model card")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from fastwam_ros.sim.demo_data import read_episodes, read_meta

    work = Path(args.work)
    if work.exists() and not args.eval_only:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    from fastwam_ros.robot import load_robot

    robot = load_robot(args.robot)
    perception = robot.perception_config()
    h, w = perception.out_hw
    model_cfg = _model_config_file(work, h, w)

    meta = read_meta(args.data)
    episodes = read_episodes(args.data)
    train_eps, eval_eps = episodes[: -args.holdout or None], episodes[len(episodes) - args.holdout :]
    print(f"{len(train_eps)} training episodes ({sum(len(e) for e in train_eps)} ticks), {len(eval_eps)} held out")
    out = Path(args.out)
    if args.eval_only:
        train_info = json.loads((out / "train_report.json").read_text())["train"]
    else:
        train_info = train_and_save(args, work, model_cfg, robot, meta, train_eps, out)
    finish(args, work, out, perception, meta, episodes, train_eps, eval_eps, train_info)
    return 0


def train_and_save(args, work: Path, model_cfg: Path, robot, meta: dict, train_eps: list, out: Path) -> dict:
    """Train with the package's Trainer, then write the policy directory `out` (VAE bundled)."""
    from fastwam_ros.model.checkpoints.serialization import load_policy_dir, save_policy_dir
    from fastwam_ros.model.network.fastwam import FastWAM
    from fastwam_ros.training.config import config_from_dict
    from fastwam_ros.training.trainer import Trainer

    cfg = config_from_dict(
        {
            "output_dir": str(work),
            "model": {"config": str(model_cfg), "vae": "random", "text_encoder": "random", "seed": args.seed},
            "data": {
                "format": "cache",
                "paths": [str(work)],
                "perception": robot.source,
                "latent_cache": "memory",
            },
            "train": {
                "batch_size": args.batch_size,
                "max_steps": args.steps,
                "lr": args.lr,
                "warmup_ratio": 0.03,
                "min_lr": args.lr * 0.05,
                "cpu": True,
                "mixed_precision": "no",
                "save_every": args.steps,
                "log_every": 25,
                "keep_last": 1,
                "progress": False,
                "seed": args.seed,
            },
        }
    )
    t0 = time.perf_counter()
    trainer = Trainer(cfg, episodes=train_eps)
    print(f"training {trainer.total_steps} steps, batch {args.batch_size}, on {len(trainer.dataset)} windows")
    history = trainer.train()
    train_s = time.perf_counter() - t0
    ckpt = Path(trainer.out) / "checkpoints" / f"step_{trainer.state.step:08d}" / "policy"

    # Re-save the final policy with the (random, frozen) tiny VAE bundled: deployment must encode frames with
    # exactly the VAE the model was trained against.
    if out.exists():
        for p in out.iterdir():
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    bundle = load_policy_dir(ckpt)
    model = FastWAM(bundle.config)
    model.load_state_dict(bundle.model_state, strict=True)
    save_policy_dir(
        out,
        model,
        bundle.normalizer,
        vae=trainer.vae.vae,
        text_embeds=bundle.text_embeds,
        text_encoder_id=bundle.text_encoder_id,
        raw_stats=json.loads((ckpt / "dataset_stats.json").read_text()),
        extra_meta={
            "trained_on": "fastwam_ros demo simulator, scripted towel-fold demonstrations",
            "train_steps": int(trainer.state.step),
            "fps": float(meta["fps"]),
        },
    )
    for name in ("dataset_stats.json", "perception.json", "robot_contract.json"):
        shutil.copyfile(ckpt / name, out / name)
    if (work / "loss_curve.png").is_file():
        shutil.copyfile(work / "loss_curve.png", out / "loss_curve.png")

    return {
        "steps": int(trainer.state.step),
        "batch_size": args.batch_size,
        "lr": args.lr,
        "wall_s": round(train_s, 1),
        "threads": args.threads,
        "loss_first": history[0]["loss"] if history else None,
        "loss_last_50_mean": (sum(h["loss"] for h in history[-50:]) / max(len(history[-50:]), 1))
        if history
        else None,
        "loss_action_last_50_mean": (sum(h["loss_action"] for h in history[-50:]) / max(len(history[-50:]), 1))
        if history
        else None,
    }


def finish(args, work, out, perception, meta, episodes, train_eps, eval_eps, train_info) -> None:
    """Offline evaluation on held-out episodes, closed-loop runs of the demo, train_report.json, model card."""
    import numpy as np

    from fastwam_ros.demo import run_demo
    from fastwam_ros.model.inference.policy import FastWAMPolicy
    from fastwam_ros.sim import mujoco_backend as mb

    policy = FastWAMPolicy.from_pretrained(out)
    report = {
        "data": {
            "episodes_train": len(train_eps),
            "episodes_eval": len(eval_eps),
            "ticks_train": int(sum(len(e) for e in train_eps)),
            "fps": meta["fps"],
            "sim_modes": sorted({e["sim_mode"] for e in meta["episodes"]}),
            "instruction": meta["instruction"],
        },
        "train": train_info,
        "eval_heldout": evaluate(policy, eval_eps, perception),
        "size_bytes": int(sum(p.stat().st_size for p in out.rglob("*") if p.is_file())),
    }
    modes = ["kinematic"]
    if mb.mujoco_available()[0] and mb.probe_render_backend() is not None:
        modes.append("mujoco")
    seeds = [0, 1, 2, 3]
    closed = {"seconds": 8.0, "seeds": seeds}
    for mode in modes:
        folds, grip_min = [], []
        for sd in seeds:
            run_dir = work / f"closed_loop_{mode}_{sd}"
            r = run_demo(seconds=8.0, out_dir=run_dir, checkpoint=out, sim_mode=mode, seed=sd, latency=0.15,
                         video=False, threads=args.threads)
            folds.append(r["fold_fraction_final"])
            names = r["joint_names"]
            cmd = np.load(run_dir / "trace.npz")["command"]
            grip_min.append(float(cmd[:, [names.index("left_gripper"), names.index("right_gripper")]].min()))
        closed[mode] = {"fold_fraction_final": folds, "min_gripper_command": grip_min}
    report["closed_loop"] = closed
    (out / "train_report.json").write_text(json.dumps(report, indent=2) + "\n")
    n_vae = sum(p.numel() for p in policy.vae.vae.parameters())
    n_params = sum(p.numel() for p in policy.model.parameters()) + n_vae
    write_model_card(out, report, n_params, n_vae, len(episodes))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    raise SystemExit(main())
