"""What a training run tells its user: start-up summary, per-step log lines, smoothed curves, a held-out
validation split, and optional experiment trackers (accelerate's TensorBoard / Weights & Biases integrations).

Kept apart from the training loop so each piece is testable without training.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .episode import Episode
from .errors import TrainConfigError

TRACKER_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}


# ------------------------------------------------------------------------------------------------ split
def split_episodes(episodes: Sequence[Episode], fraction: float, seed: int) -> tuple[list[Episode], list[Episode]]:
    """(train, validation) episodes: ``round(fraction * n)`` episodes (at least 1 when fraction > 0 and there are
    >= 2 episodes; never all of them) chosen by a permutation seeded with ``seed``. Each list keeps the input
    order. The split depends only on (number of episodes, fraction, seed)."""
    n = len(episodes)
    if fraction <= 0 or n < 2:
        return list(episodes), []
    n_val = min(n - 1, max(1, int(round(fraction * n))))
    perm = np.random.default_rng(int(seed)).permutation(n)
    val_ids = set(perm[:n_val].tolist())
    return ([e for i, e in enumerate(episodes) if i not in val_ids],
            [e for i, e in enumerate(episodes) if i in val_ids])


def spaced_indices(num_samples: int, count: int) -> list[int]:
    """``count`` sample indices evenly spaced over ``range(num_samples)`` (all of them when fewer)."""
    if num_samples <= 0:
        return []
    if count >= num_samples:
        return list(range(num_samples))
    return sorted({int(round(x)) for x in np.linspace(0, num_samples - 1, count)})


# ------------------------------------------------------------------------------------------------ smoothing
def smoothed(values: Sequence[float], weight: float) -> list[float]:
    """Debiased exponential moving average (TensorBoard's smoothing): s_t = w s_{t-1} + (1 - w) x_t, divided by
    (1 - w^t) so the first values are not pulled towards 0. ``weight`` 0 returns the values."""
    out, acc = [], 0.0
    for t, x in enumerate(values, start=1):
        acc = weight * acc + (1.0 - weight) * float(x)
        out.append(acc / (1.0 - weight**t) if weight > 0 else float(x))
    return out


def loss_series(history: Sequence[dict[str, Any]], val_history: Sequence[dict[str, Any]],
                weight: float) -> dict[str, tuple[list[int], list[float]]]:
    """The curves of the loss plot: ``train`` (per optimizer step), ``train_smoothed``, ``val`` (when any)."""
    steps = [int(h["step"]) for h in history]
    losses = [float(h["loss"]) for h in history]
    series = {"train": (steps, losses), "train_smoothed": (steps, smoothed(losses, weight))}
    if val_history:
        series["val"] = ([int(v["step"]) for v in val_history], [float(v["val_loss"]) for v in val_history])
    return series


# ------------------------------------------------------------------------------------------------ log lines
class StepLog:
    """Progress output: a tqdm bar when ``stream`` is a terminal and progress is on, otherwise one plain line per
    ``log_every`` steps (so a redirected log reads line by line, not as one carriage-return line)."""

    def __init__(self, total: int, initial: int, enabled: bool, progress: bool, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        isatty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.bar = None
        if enabled and progress and isatty:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True,
                            file=self.stream)
        self.total = total

    def step(self, rec: dict[str, Any], line_due: bool) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{rec['loss']:.4f}", smooth=f"{rec['loss_smoothed']:.4f}",
                                 act=f"{rec['loss_action']:.4f}", vid=f"{rec['loss_video']:.4f}")
        elif line_due:
            self.write(format_step(rec, self.total))

    def write(self, line: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def format_step(rec: dict[str, Any], total: int) -> str:
    parts = [f"step {rec['step']}/{total}", f"epoch {rec['epoch']}", f"loss {rec['loss']:.4f}",
             f"smoothed {rec['loss_smoothed']:.4f}", f"video {rec['loss_video']:.4f}",
             f"action {rec['loss_action']:.4f}", f"lr {rec['lr']:.3g}", f"{rec['samples_per_s']:.1f} samples/s"]
    if "grad_norm" in rec:
        parts.append(f"grad_norm {rec['grad_norm']:.3g}")
    return "  ".join(parts)


def format_val(rec: dict[str, Any]) -> str:
    return (f"validation @ step {rec['step']}: loss {rec['val_loss']:.4f} (video {rec['val_loss_video']:.4f}, "
            f"action {rec['val_loss_action']:.4f}) on {rec['val_samples']} samples")


def append_jsonl(path: Path, rec: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec) + "\n")


# ------------------------------------------------------------------------------------------------ summary
def count_parameters(module: Any) -> dict[str, int]:
    """Total / trainable parameter counts, plus per top-level child."""
    out = {"total": 0, "trainable": 0}
    for p in module.parameters():
        out["total"] += p.numel()
        out["trainable"] += p.numel() if p.requires_grad else 0
    for name, child in module.named_children():
        out[name] = sum(p.numel() for p in child.parameters())
    return out


def human(n: float) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return str(int(n))


def startup_summary(info: dict[str, Any]) -> str:
    """Multi-line run summary from a dict of facts (see Trainer.summary_info)."""
    p = info["parameters"]
    children = ", ".join(f"{k} {human(v)}" for k, v in p.items() if k not in ("total", "trainable"))
    val = (f"{info['val_episodes']} episodes ({info['val_samples']} samples, every {info['val_every']} steps)"
           if info["val_episodes"] else "none (needs >= 2 episodes and train.val_fraction > 0)")
    lines = [
        "Fast-WAM training",
        f"  data:        {info['format']} {info['paths']}",
        f"  episodes:    {info['train_episodes']} train / {info['val_episodes']} validation "
        f"(split seed {info['val_seed']}), {info['train_frames']} train frames at {info['fps']:g} Hz",
        f"  samples:     {info['train_samples']} train windows, {info['instructions']} distinct instruction(s)",
        f"  model:       {info['model_config']} variant {info['variant']}, {human(p['total'])} parameters "
        f"({human(p['trainable'])} trainable; {children})",
        f"  device:      {info['device']} x {info['num_processes']} process(es), precision {info['precision']}",
        f"  batch:       {info['batch_size']} per process x {info['num_processes']} x {info['grad_accum']} "
        f"accumulation = {info['effective_batch']} effective",
        f"  schedule:    {info['total_steps']} steps ({info['steps_per_epoch']} per epoch), warmup "
        f"{info['warmup_steps']}, lr {info['lr']:g}",
        f"  validation:  {val}",
        f"  output:      {info['output_dir']}",
    ]
    if info.get("report_to", "none") != "none":
        lines.append(f"  tracking:    {info['report_to']}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ trackers
def check_tracker(report_to: str) -> str | None:
    """accelerate ``log_with`` value for ``train.report_to`` (None for none); a clear error when the optional
    package is missing."""
    if report_to in (None, "", "none"):
        return None
    pkgs = TRACKER_PACKAGES.get(report_to)
    if pkgs is None:
        raise TrainConfigError(f"train.report_to must be none, tensorboard or wandb, got {report_to!r}")
    if not any(importlib.util.find_spec(p) is not None for p in pkgs):
        raise TrainConfigError(f"train.report_to={report_to} needs the {pkgs[0]} package, which is not installed: "
                               f"pip install {pkgs[0]}  (or pip install 'fastwam_ros[tracking]')")
    return report_to


def tracker_config(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """Flat scalar config for trackers (TensorBoard hparams accept only scalars)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(node, (int, float, str, bool)) and not (isinstance(node, float) and math.isnan(node)):
            flat[prefix] = node
        elif node is not None:
            flat[prefix] = json.dumps(node)

    walk("", cfg_dict)
    return flat


def ema_update(prev: tuple[float | None, int], loss: float, weight: float) -> tuple[float, int]:
    """One step of :func:`smoothed`: (debiased value, count) after ``count`` values -> after one more."""
    value, n = prev
    n += 1
    if weight <= 0 or value is None:
        return float(loss), n
    raw = value * (1.0 - weight ** (n - 1))  # undo the debiasing, update, debias again
    raw = weight * raw + (1.0 - weight) * float(loss)
    return raw / (1.0 - weight**n), n


# ------------------------------------------------------------------------------------------------ run facts
def summary_info(trainer: Any) -> dict[str, Any]:
    """Facts of the start-up summary (also saved as ``run_summary.json``) of a :class:`~.trainer.Trainer`."""
    t, acc = trainer.cfg.train, trainer.accelerator
    model = acc.unwrap_model(trainer.loss_module).model
    eps = trainer.dataset.episodes
    return {
        "format": trainer.cfg.data.format, "paths": list(trainer.cfg.data.paths),
        "train_episodes": len(eps), "val_episodes": len(trainer.val_dataset.episodes) if trainer.val_dataset else 0,
        "val_seed": t.val_seed, "val_samples": len(trainer.val_indices), "val_every": t.val_every,
        "train_frames": int(sum(len(e) for e in eps)), "fps": float(eps[0].fps),
        "train_samples": len(trainer.dataset), "instructions": len(trainer.text_embeds),
        "model_config": trainer.model_config.name, "variant": trainer.model_config.variant,
        "parameters": count_parameters(model),
        "device": str(acc.device), "num_processes": acc.num_processes, "precision": acc.mixed_precision,
        "batch_size": t.batch_size, "grad_accum": t.grad_accum_steps,
        "effective_batch": t.batch_size * acc.num_processes * t.grad_accum_steps,
        "total_steps": trainer.total_steps, "steps_per_epoch": trainer.steps_per_epoch,
        "warmup_steps": trainer.warmup_steps, "lr": t.lr, "output_dir": str(trainer.out), "report_to": t.report_to,
    }


def checkpoint_metrics(state: Any) -> dict[str, Any]:
    """Latest figures of a TrainerState for the checkpoint's metadata / model card."""
    out: dict[str, Any] = {"step": state.step, "epoch": state.epoch}
    if state.history:
        last = state.history[-1]
        out.update(train_loss=last["loss"], train_loss_smoothed=last.get("loss_smoothed", last["loss"]),
                   train_loss_action=last["loss_action"], train_loss_video=last["loss_video"])
    if state.val_history:
        v = state.val_history[-1]
        out.update(val_loss=v["val_loss"], val_loss_action=v["val_loss_action"],
                   val_loss_video=v["val_loss_video"], val_step=v["step"], val_samples=v["val_samples"])
    return out


def training_data(trainer: Any) -> dict[str, Any]:
    """What a checkpoint was trained on (metadata / model card)."""
    eps = trainer.dataset.episodes
    return {"format": trainer.cfg.data.format, "paths": [str(p) for p in trainer.cfg.data.paths],
            "train_episodes": len(eps), "val_episodes": len(trainer.val_dataset.episodes) if trainer.val_dataset else 0,
            "train_frames": int(sum(len(e) for e in eps)), "fps": float(eps[0].fps),
            "instructions": sorted(trainer.text_embeds)[:20], "init": trainer.cfg.model.init}
