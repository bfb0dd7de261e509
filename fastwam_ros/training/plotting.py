"""Loss-curve PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def plot_loss_curve(history: Sequence[dict[str, Any]], path: str | Path, title: str = "Fast-WAM training",
                    val_history: Sequence[dict[str, Any]] = (), smoothing: float = 0.9) -> Path:
    """Write a PNG of the training loss (per step, faint), its smoothed curve, the validation loss (markers),
    the smoothed video / action losses (log scale) and the learning rate over optimizer steps."""
    import matplotlib

    from .observe import loss_series, smoothed

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    steps = [h["step"] for h in history]
    fig, (ax, ax_lr) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    series = loss_series(history, val_history, smoothing)
    if history:
        ax.plot(*series["train"], label="train", color="tab:blue", alpha=0.3, linewidth=1.0)
        ax.plot(*series["train_smoothed"], label=f"train (smoothed {smoothing:g})", color="tab:blue", linewidth=1.5)
        for key, label, color in (("loss_video", "video (smoothed)", "tab:green"),
                                  ("loss_action", "action (smoothed)", "tab:orange")):
            vals = [h.get(key) for h in history]
            if all(v is not None for v in vals):
                ax.plot(steps, smoothed(vals, smoothing), label=label, color=color, linewidth=1.0, linestyle="--")
    if "val" in series:
        ax.plot(*series["val"], label="validation", color="tab:red", marker="o", linewidth=1.5)
    if history:
        positive = [h["loss"] for h in history if h.get("loss", 0) > 0]
        if positive:
            ax.set_yscale("log")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # nothing to label before the first step
        ax.legend()
    ax_lr.plot(steps, [h.get("lr") for h in history], color="tab:gray", linewidth=1.0)
    ax_lr.set_ylabel("lr")
    ax_lr.set_xlabel("optimizer step")
    ax_lr.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
