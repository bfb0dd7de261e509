#!/usr/bin/env python3
"""Train the bundled demo checkpoint (models/demo/) on the simulator's scripted demonstrations, on a CPU.

    python scripts/make_demo_data.py --out outputs/demo_data --episodes 320 --perturb 0.08 --modes kinematic
    python scripts/make_demo_checkpoint.py --data outputs/demo_data --out models/demo --threads 2

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


def _model_config_file(out_dir: Path, height: int, width: int, action_width: int = 64,
                       lambda_video: float = 1.0, initial_noise_scale: float = 0.0,
                       vae_stats: tuple[list, list] | None = None) -> Path:
    """The tiny preset with the demo frame size, an action expert `action_width` wide (the preset's 32 is too
    narrow to map the towel pose to 32-step chunks) and video loss weight `lambda_video`, written as a model
    config file for the trainer."""
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
    cfg["action"]["hidden_dim"] = int(action_width)
    cfg["action"]["ffn_dim"] = 4 * int(action_width)
    cfg["loss_lambda_video"] = float(lambda_video)
    # sample chunks from the noise mean: the tiny action expert's chunks from N(0, I) noise jitter step to step
    # (measured: 50-90 rad/s^2 peaks, the limiter clamped 88 % of ticks), from 0 they are smooth
    cfg["policy"]["initial_noise_scale"] = float(initial_noise_scale)
    if vae_stats is not None:  # per channel and latent position (encoders.position_latent_stats)
        cfg["vae"]["latents_mean"], cfg["vae"]["latents_std"] = vae_stats
    FastWAMConfig.from_dict(cfg)  # validate
    path = out_dir / "model_config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path

MODEL_CARD = """# Demo checkpoint: tiny Fast-WAM, scripted towel folds in simulation

**What this is.** A tiny Fast-WAM policy (the `tiny` preset's 2-layer video expert of width 64, with a 2-layer
action expert of width {action_width} instead of the preset's 32; {n_params:,} parameters including a
{n_vae:,}-parameter VAE) trained for {steps} optimizer steps (batch {batch}, lambda_video {lambda_video:g}) so that
`python -m fastwam_ros.demo`, `fastwam-eval` and `ros2 launch fastwam_ros towel_fold.launch.py demo:=true` run
out of the box, without a GPU and without the 20 GB of Wan2.2 / UMT5 weights. {size_mb:.1f} MB on disk.

**How well it does the task.** `fastwam-eval --episodes {n_ep} --seed 0` (kinematic simulator, seeds
0..{last_seed}: towel pose and start state drawn per seed, none of them in the training data):

{cl_table}

Success = fold fraction >= 0.8 reached and held to the end of the 8 s episode. {mujoco_note}

**Trained on.** {n_train} scripted demonstrations ({ticks:,} control ticks at {fps:g} Hz; {n_eval} more held out)
recorded in the package's own simulator (`fastwam_ros/sim`, kinematic mode): two ALOHA ViperX-300s arms, head
camera + two wrist cameras tiled into one 96x128 frame (robotwin layout), 14 joint positions (rad; grippers as a
normalised opening 0..1). Each episode is the scripted fold ("reach the towel's far corners, close, lift over, put
down on the near corners, open, go home") with a random towel pose (centre +-6 cm x, 44-54 cm y, yaw +-0.25 rad),
a random start state (home +-0.05 rad per arm joint, +-0.1 gripper), +-10 % timing and a random gripper pitch.
The script's segments are minimum-jerk and sized to stay under 60 % of the velocity limits and a third of the
demo robot's accelerations, with the grippers between 0.1 and 0.9, so nothing in the data asks the limiter to
clamp. Two thirds of the episodes are recorded DART-style: the command *executed* carries a smooth random offset
(up to 0.04 or 0.08 rad per arm joint) while the recorded action is the script's own, so the data shows how to get
back on track. Demonstrations that did not fold the towel (final fold fraction < 0.8: a perturbed grasp can
miss) are dropped. Training windows start every {stride} ticks ({windows:,} windows). Instruction: "{instruction}".
The "towel" is a rigid two-part rectangle that follows a closed gripper, not cloth physics.

**Encoders.** The VAE (a narrower copy of the tiny preset's, 48-channel latent) and the text encoder are
*random and frozen*: no Wan2.2 or UMT5 weights are involved. A linear probe on the random VAE's first-frame
latent recovers the towel centre (R^2 0.98, 5 mm RMS) but its yaw only roughly (R^2 0.35). {stats_note} The one
instruction's embedding is stored in `text_embeds.safetensors`; other instructions cannot be embedded.

**Offline.** On the {n_eval} held-out episodes the mean absolute error of the predicted 32-step chunks against
the script is {err:.3f} (rad / gripper units), versus {hold:.3f} for holding the current pose (first step:
{err0:.3f}). Training loss {loss0:.2f} -> {loss1:.2f} (last 50 steps; action part {lossa:.2f}).
CPU inference: about {lat_ms:.0f} ms per chunk (one thread, {machine}).

**Limitations.** {target_note} It only knows this simulated scene, camera placement and instruction; on any real robot, other
cameras or other tasks its output is meaningless. A missed grasp is not retried (the demonstrations never show a
retry). Not a benchmark and not a starting point for real training (fine-tune from the official Fast-WAM weights
instead: README, "Train on your robot's data").

**Regenerate** (times on a 2-core x86_64 machine shared with other jobs: data {data_note}, VAE latents
{encode_min:.0f} min, training {train_min:.0f} min on {threads} thread(s)).

```bash
python scripts/make_demo_data.py --out outputs/demo_data --episodes {n_total} --perturb 0.08 --modes kinematic
python scripts/make_demo_checkpoint.py --data outputs/demo_data --out models/demo --steps {steps} \\
    --window-stride {stride} --action-width {action_width} --latent-stats {latent_stats} \\
    --threads {threads}
```

Files: `model.safetensors` (model + VAE weights), `config.json` (model config), `stats.json` (normaliser),
`dataset_stats.json` (raw data statistics), `perception.json` (the tiling it was trained with),
`robot_contract.json` (the robot file it was trained for, `config/robots/demo_aloha.yaml`: checked at
deployment), `text_embeds.safetensors`, `meta.json`, `train_report.json` (the numbers above), `loss_curve.png`.
"""


def _cl_table(cl: dict) -> str:
    rows = ["| sim | success (95 % CI) | mean completion | mean final fold fraction | clamped ticks | clamps /s |",
            "|---|---|---|---|---|---|"]
    for mode in ("kinematic", "mujoco"):
        if mode not in cl:
            continue
        s = cl[mode]
        lo, hi = s["success_rate_ci95"]
        ct = s["completion_time_s_mean"]
        rows.append(f"| {mode} ({s['render_backend']} images) | {100 * s['success_rate']:.0f} % "
                    f"({s['successes']}/{s['episodes']}; {100 * lo:.0f}-{100 * hi:.0f} %) | "
                    f"{'-' if ct is None else f'{ct:.2f} s'} | {s['fold_fraction_final_mean']:.2f} | "
                    f"{100 * s['clamped_tick_fraction_mean']:.1f} % | {s['clamps_per_s_mean']:.1f} |")
    return "\n".join(rows)


def write_model_card(out: Path, report: dict, n_params: int, n_vae: int, n_total: int) -> None:
    import platform

    ev, tr, da, cl = report["eval_heldout"], report["train"], report["data"], report["closed_loop"]
    n_ep = cl["kinematic"]["episodes"] if "kinematic" in cl else 0
    mujoco_note = ("MuJoCo physics (gravity, contacts, position actuators) with the same synthetic camera images "
                   "(`MUJOCO_GL=disable`; the checkpoint never saw MuJoCo's own renders): see the mujoco row."
                   if "mujoco" in cl else "Not evaluated in MuJoCo here.")
    k = cl.get("kinematic")
    if k is None:
        target_note = "Not evaluated in closed loop here."
    else:
        misses = []
        if k["success_rate"] < 0.8:
            misses.append(f"the 80 % success the demo aims for ({100 * k['success_rate']:.0f} %)")
        if k["clamped_tick_fraction_mean"] > 0.05:
            misses.append(f"the 5 %-of-ticks clamp target ({100 * k['clamped_tick_fraction_mean']:.1f} %)")
        target_note = ("It does not reach " + " nor ".join(misses) + "." if misses else
                       f"It meets the demo's targets here ({100 * k['success_rate']:.0f} % success, "
                       f"{100 * k['clamped_tick_fraction_mean']:.1f} % of ticks clamped), in simulation only.")
    if tr.get("latent_stats", "channel") == "position":
        stats_note = ("Its latents are normalised per channel *and latent position* with the training set's "
                      "statistics (stored in the VAE config: `encoders.position_latent_stats`), not per channel "
                      "only: per channel, the towel moves the latents by about 3 % of their size (the table, the "
                      "robot's base and the random VAE's offsets are the rest), and checkpoints trained so ignored "
                      "the cameras (their first chunk moved the grippers by under 3 mm across towel poses that "
                      "move the corners by 3 cm; `test_the_policy_reads_the_towel_pose_from_the_cameras`).")
    else:
        stats_note = "Its latents are normalised per channel (the VAE config's defaults)."
    text = MODEL_CARD.format(
        target_note=target_note, stats_note=stats_note,
        latent_stats=tr.get("latent_stats", "channel"),
        action_width=tr.get("action_width", 32), lambda_video=tr.get("lambda_video", 1.0),
        n_params=n_params, n_vae=n_vae, steps=tr["steps"], batch=tr["batch_size"],
        size_mb=report["size_bytes"] / 2**20, n_ep=n_ep, last_seed=max(n_ep - 1, 0), cl_table=_cl_table(cl),
        mujoco_note=mujoco_note, n_train=da["episodes_train"], n_eval=da["episodes_eval"], n_total=n_total,
        ticks=da["ticks_train"], fps=da["fps"], stride=tr.get("window_stride", 1), windows=tr.get("windows", 0),
        instruction=da["instruction"], err=ev["mean_abs_action_error"], hold=ev["hold_still_baseline_error"],
        err0=ev["mean_abs_first_step_error"], loss0=tr["loss_first"], loss1=tr["loss_last_50_mean"],
        lossa=tr["loss_action_last_50_mean"], lat_ms=1000 * ev["cpu_latency_s_median"], machine=platform.machine(),
        data_note=report.get("data_note", "see README"), encode_min=tr.get("latent_encode_s", 0.0) / 60.0,
        train_min=(tr["wall_s"] - tr.get("latent_encode_s", 0.0)) / 60.0, threads=tr["threads"],
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
    ap.add_argument("--steps", type=int, default=12000, help="optimizer steps (default: %(default)s)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--variant", choices=("fastwam", "joint", "idm"), default="fastwam",
                    help="model variant (default: %(default)s; joint / idm: the paper's Fast-WAM-Joint / -IDM)")
    ap.add_argument("--latent-stats", choices=("position", "channel"), default="position",
                    help="normalise the VAE latents per channel and latent position with the training set's "
                         "statistics (default), or per channel only (the VAE config's defaults)")
    ap.add_argument("--holdout", type=int, default=4, help="episodes kept out of training for the evaluation")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--action-width", type=int, default=64, help="action expert width (default: %(default)s)")
    ap.add_argument("--lambda-video", type=float, default=1.0,
                    help="video co-training loss weight (default %(default)s; 0 = no video co-training)")
    ap.add_argument("--initial-noise-scale", type=float, default=0.0,
                    help="scale of the action sampling's initial noise in the saved config (default %(default)s)")
    ap.add_argument("--min-fold", type=float, default=0.8,
                    help="drop demonstrations whose final fold fraction is below this (a perturbed grasp can miss)")
    ap.add_argument("--window-stride", type=int, default=10,
                    help="train on windows starting every k-th tick (fewer VAE latents to encode; default %(default)s)")
    ap.add_argument("--latent-cache", default=None,
                    help="folder of the VAE latent cache (default: <work>/latents); several runs on the same data, "
                         "robot and --window-stride may share one")
    ap.add_argument("--prefill-only", action="store_true", help="only encode the latent cache, then exit")
    ap.add_argument("--prefill-part", default="0/1", help="i/n: encode every n-th missing latent from the i-th")
    ap.add_argument("--eval-episodes", type=int, default=20,
                    help="fastwam-eval episodes (kinematic sim, seeds 0..) for the report (default %(default)s)")
    ap.add_argument("--mujoco-episodes", type=int, default=0,
                    help="fastwam-eval episodes in MuJoCo physics too (default %(default)s; slow with MuJoCo rendering)")
    ap.add_argument("--data-note", default="", help="how long the data took, for the model card")
    ap.add_argument("--no-closed-loop", action="store_true", help="skip the fastwam-eval runs (and the model card)")
    ap.add_argument("--eval-only", action="store_true",
                    help="skip training: re-evaluate the policy in --out and rewrite its report and model card")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from fastwam_ros.sim.demo_data import read_episodes, read_meta

    work = Path(args.work)
    args.latent_cache = Path(args.latent_cache or work / "latents")
    if work.exists() and not (args.eval_only or args.prefill_only):
        for p in work.iterdir():  # a fresh run; a latent cache kept inside the work folder survives
            if p.resolve() != args.latent_cache.resolve():
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    work.mkdir(parents=True, exist_ok=True)
    from fastwam_ros.robot import load_robot

    robot = load_robot(args.robot)
    perception = robot.perception_config()
    h, w = perception.out_hw
    model_cfg = _model_config_file(work, h, w, args.action_width, args.lambda_video, args.initial_noise_scale)

    meta = read_meta(args.data)
    episodes = read_episodes(args.data)
    n_recorded = len(episodes)
    folds = {e["name"]: e["final_fold_fraction"] for e in meta["episodes"]}
    dropped = [e.name for e in episodes if folds[e.name] < args.min_fold]
    episodes = [e for e in episodes if folds[e.name] >= args.min_fold]
    if dropped:
        print(f"dropped {len(dropped)} demonstration(s) that did not fold the towel (< {args.min_fold:g}): {dropped}")
    train_eps, eval_eps = episodes[: -args.holdout or None], episodes[len(episodes) - args.holdout :]
    print(f"{len(train_eps)} training episodes ({sum(len(e) for e in train_eps)} ticks), {len(eval_eps)} held out")
    out = Path(args.out)
    if args.eval_only:
        train_info = json.loads((out / "train_report.json").read_text())["train"]
    else:
        train_info = train_and_save(args, work, model_cfg, robot, meta, train_eps, out)
        if args.prefill_only:
            return 0
    finish(args, work, out, perception, meta, n_recorded, train_eps, eval_eps, train_info)
    return 0


def _position_stats_trainer(args, work: Path, cfg, robot, trainer, train_eps: list):
    """The VAE with per-channel-and-position latent statistics of the training set, and a Trainer using it.

    The random VAE's latents normalised per channel vary by a few per cent with the towel's pose (the table, the
    robot's base and the VAE's own offsets make up the rest): the policy trained on them ignored the cameras (its
    first chunk moved the grippers by under 3 mm across towel poses that move the corners by 3-4 cm). The
    statistics of the cached latents (:func:`position_latent_stats`) go into the model config's VAE section, so
    training and deployment normalise with them alike; the cache is converted into ``work/latents_position``
    through the two VAEs' own ``denormalize`` / ``normalize`` (no second encoding)."""
    import dataclasses

    import torch

    from fastwam_ros.model.processing.encoders import WanVAE, position_latent_stats
    from fastwam_ros.training.trainer import Trainer

    old_vae = trainer.vae
    keys = range(len(trainer.dataset))
    vcfg = trainer.model_config.vae
    stats = position_latent_stats((trainer.cached_latent(k) for k in keys), vcfg.latents_mean, vcfg.latents_std)
    h, w = robot.perception_config().out_hw
    model_cfg = _model_config_file(work, h, w, args.action_width, args.lambda_video, args.initial_noise_scale,
                                   vae_stats=stats)
    new_vae = WanVAE.from_vae_config(dataclasses.replace(vcfg, latents_mean=stats[0], latents_std=stats[1]),
                                     seed=args.seed)
    cache = work / "latents_position"
    cache.mkdir(parents=True, exist_ok=True)
    for k in keys:
        z = trainer.cached_latent(k)
        torch.save(new_vae.normalize(old_vae.denormalize(z[None]))[0].clone(), cache / f"{k:09d}.pt")
    from fastwam_ros.training.config import config_from_dict

    d = cfg.to_dict()
    d["model"]["config"] = str(model_cfg)
    d["data"]["latent_cache_dir"] = str(cache)
    new = Trainer(config_from_dict(d), episodes=train_eps)
    new.prefill_latent_cache(16)  # every latent is there: nothing to encode, the dataset skips tiling frames
    print(f"latents standardised per channel and position ({len(keys)} samples) into {cache}", flush=True)
    return new


def train_and_save(args, work: Path, model_cfg: Path, robot, meta: dict, train_eps: list, out: Path) -> dict:
    """Train with the package's Trainer, then write the policy directory `out` (VAE bundled)."""
    from fastwam_ros.model.checkpoints.serialization import load_policy_dir, save_policy_dir
    from fastwam_ros.model.network.fastwam import FastWAM
    from fastwam_ros.training.config import config_from_dict
    from fastwam_ros.training.trainer import Trainer

    cfg = config_from_dict(
        {
            "output_dir": str(work),
            "model": {"config": str(model_cfg), "vae": "random", "text_encoder": "random", "seed": args.seed,
                      "variant": args.variant},
            "data": {
                "format": "cache",
                "paths": [str(work)],
                "perception": robot.source,
                "latent_cache": "disk",
                "latent_cache_dir": str(args.latent_cache),
                "window_stride": args.window_stride,
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
                "val_fraction": 0.0,  # --holdout episodes are the held-out set (evaluate() below)
            },
        }
    )
    t0 = time.perf_counter()
    trainer = Trainer(cfg, episodes=train_eps)
    part = tuple(int(x) for x in args.prefill_part.split("/"))
    n_enc = trainer.prefill_latent_cache(16, part, log=lambda m: print(m, flush=True))
    encode_s = time.perf_counter() - t0
    print(f"encoded {n_enc} latents in {encode_s:.0f} s", flush=True)
    if args.prefill_only:
        return {}
    if args.latent_stats == "position":
        trainer = _position_stats_trainer(args, work, cfg, robot, trainer, train_eps)
        encode_s = time.perf_counter() - t0
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
        "latent_encode_s": round(encode_s, 1),
        "windows": len(trainer.dataset),
        "window_stride": args.window_stride,
        "latent_stats": args.latent_stats,
        "variant": args.variant,
        "action_width": args.action_width,
        "lambda_video": args.lambda_video,
        "threads": args.threads,
        "loss_first": history[0]["loss"] if history else None,
        "loss_last_50_mean": (sum(h["loss"] for h in history[-50:]) / max(len(history[-50:]), 1))
        if history
        else None,
        "loss_action_last_50_mean": (sum(h["loss_action"] for h in history[-50:]) / max(len(history[-50:]), 1))
        if history
        else None,
    }


def finish(args, work, out, perception, meta, n_recorded, train_eps, eval_eps, train_info) -> None:
    """Offline evaluation on held-out episodes, fastwam-eval runs, train_report.json, model card."""
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
    if args.no_closed_loop:
        (out / "train_report.json").write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report, indent=2))
        return
    from fastwam_ros.eval import run_eval

    closed = {}
    for mode, n in (("kinematic", args.eval_episodes), ("mujoco", args.mujoco_episodes)):
        if n <= 0 or (mode == "mujoco" and not mb.mujoco_available()[0]):
            continue
        r = run_eval(str(out), episodes=n, seed=0, sim_mode=mode, out_dir=work / f"eval_{mode}",
                     threads=args.threads)
        closed[mode] = {**r["summary"], "render_backend": r["render_backend"], "seeds": r["seeds"]}
        print(f"fastwam-eval {mode}: success {100 * r['summary']['success_rate']:.0f} %", flush=True)
    report["closed_loop"] = closed
    if args.data_note:
        report["data_note"] = args.data_note
    (out / "train_report.json").write_text(json.dumps(report, indent=2) + "\n")
    n_vae = sum(p.numel() for p in policy.vae.vae.parameters())
    n_params = sum(p.numel() for p in policy.model.parameters()) + n_vae
    write_model_card(out, report, n_params, n_vae, n_recorded)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    raise SystemExit(main())
