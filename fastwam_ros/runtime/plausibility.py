"""Plausibility checks on what the model produces, before anything reaches a robot (ROS-free).

Three places: at load (the normalisation statistics decide how far a normalised output can reach in physical
units: a scale of 1e-30 turns a clamp of 5 into actions of 5e30), at warm-up (a non-finite or mis-shaped output
fails configure), and per chunk (length = the model's horizon, finite, bounded, first step close to the state
the chunk was predicted from). Each per-chunk failure has a short reason the runtime counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Largest |action| (the dataset's physical units: rad, m) a normaliser may map its clamped output to. Real joint
# ranges are a few rad; 1e3 leaves room for any sane unit while refusing degenerate statistics.
DEFAULT_MAX_ABS_ACTION = 1e3


@dataclass
class OutputLimits:
    """Per-chunk bounds. ``horizon``: expected chunk length (None = not checked); ``max_abs``: |action| bound
    (physical units); ``max_first_step_distance``: largest |first step - current state| per joint (rad or the
    joint's unit; 0 = not checked)."""

    horizon: int | None = None
    max_abs: float = DEFAULT_MAX_ABS_ACTION
    max_first_step_distance: float = 0.0


def model_horizon(policy: Any) -> int | None:
    """The chunk length a policy promises (``horizon`` attribute/property), or None when it does not say."""
    h = getattr(policy, "horizon", None)
    if callable(h):
        h = h()
    try:
        h = int(h)
    except (TypeError, ValueError):
        return None
    return h if h > 0 else None


def _as_array(x: Any) -> np.ndarray | None:
    if x is None:
        return None
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64).reshape(-1)


def check_normalizer(policy: Any, max_abs_action: float = DEFAULT_MAX_ABS_ACTION) -> list[str]:
    """Sanity of ``policy.normalizer.action`` (scale/offset/clamp, y = x * scale + offset): finite, scale > 0,
    and the clamped output range mapped back, ``(clamp + |offset|) / scale``, within ``max_abs_action``.
    Returns the problems (empty = fine, or the policy has no normaliser to check)."""
    norm = getattr(getattr(policy, "normalizer", None), "action", None)
    if norm is None:
        return []
    scale, offset = _as_array(getattr(norm, "scale", None)), _as_array(getattr(norm, "offset", None))
    if scale is None or offset is None:
        return []
    problems = []
    if scale.shape != offset.shape:
        return [f"action normaliser: scale {scale.shape} and offset {offset.shape} differ in shape"]
    if not (np.all(np.isfinite(scale)) and np.all(np.isfinite(offset))):
        return ["action normaliser: scale/offset contain NaN or inf"]
    bad = np.flatnonzero(~(scale > 0))
    if bad.size:
        problems.append(f"action normaliser: scale must be > 0, dims {bad.tolist()} are {scale[bad].tolist()}")
        return problems
    clamp = float(getattr(norm, "clamp", 5.0) or 5.0)
    reach = (abs(clamp) + np.abs(offset)) / scale
    bad = np.flatnonzero(reach > max_abs_action)
    if bad.size:
        problems.append(
            f"action normaliser: dims {bad.tolist()} map the clamped output to |action| up to "
            f"{float(reach[bad].max()):.3g} > {max_abs_action:g} (scale {scale[bad].tolist()} is absurd; check "
            "stats.json)")
    return problems


def check_actions(actions: Any, limits: OutputLimits, proprio: Any = None) -> tuple[str, str] | None:
    """One chunk [H, A] against ``limits``; None when plausible, else (reason, detail)."""
    try:
        a = np.asarray(actions, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        return "malformed", f"actions are not numeric: {exc}"
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        return "shape", f"actions of shape {a.shape}, expected [H, A]"
    if limits.horizon is not None and a.shape[0] != limits.horizon:
        return "horizon", f"chunk has {a.shape[0]} steps, the model's horizon is {limits.horizon}"
    if not np.all(np.isfinite(a)):
        return "non_finite", "chunk contains NaN or inf"
    peak = float(np.max(np.abs(a)))
    if peak > limits.max_abs:
        return "magnitude", f"|action| reaches {peak:.3g} > {limits.max_abs:g}"
    if limits.max_first_step_distance > 0 and proprio is not None:
        q = np.asarray(proprio, dtype=np.float64).reshape(-1)
        if q.size == a.shape[1] and np.all(np.isfinite(q)):
            d = np.abs(a[0] - q)
            j = int(np.argmax(d))
            if d[j] > limits.max_first_step_distance:
                return "first_step_jump", (f"first step is {d[j]:.3f} from the current state on dim {j} "
                                           f"(> {limits.max_first_step_distance:g})")
    return None


def warmup_inputs(policy: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """A blank frame [3, H, W] and a neutral raw state for a warm-up prediction, when the policy says its input
    size (``image_size`` = (H, W), ``proprio_dim``); the state is the normaliser's zero mapped back when it has
    one. None when the policy does not describe its inputs (then its own ``warmup()`` is used)."""
    size, dim = getattr(policy, "image_size", None), getattr(policy, "proprio_dim", None)
    try:
        h, w = (int(v) for v in size)
        dim = int(dim)
    except (TypeError, ValueError):
        return None
    frame = np.zeros((3, h, w), np.float32)
    state = np.zeros(dim, np.float32)
    inverse = getattr(getattr(getattr(policy, "normalizer", None), "state", None), "inverse", None)
    if callable(inverse):
        try:
            import torch

            state = np.asarray(inverse(torch.zeros(dim)).detach().cpu().numpy(), np.float32)
        except Exception:  # noqa: BLE001 - fall back to a zero state
            state = np.zeros(dim, np.float32)
    return frame, state
