"""Real-time chunking (RTC) for the flow-matching action sampler: the previous plan steers the new chunk.

This module is the schedule (modes, per-step weights, guidance weight; NumPy only, importable without torch);
the sampling steps are in :mod:`fastwam_ros.model.network.rtc_guidance`.

While a chunk is being computed the robot keeps executing the previous one. The new chunk's first ``d`` steps
(the *executed delay*: the steps that will be in the past, or already committed, when the chunk arrives) must
equal what the robot does meanwhile, and the rest of the overlap with the previous plan should stay close to
it, so that the switch to the new chunk neither jumps nor changes its mind (left vs right of an obstacle).

Modes (``rtc.mode``):

* ``off``: the plain sampler; any previous plan is ignored (bit-identical to sampling without one).
* ``inpaint``: after every Euler step each overlapping step is pulled towards the point of its straight
  noise→target path at the current σ, with a per-step weight ``w_i`` (:func:`~fastwam_ros.model.network.flow.
  inpaint_prefix`): ``x_i <- x_i + w_i ((1 - σ) y_i + σ ε_i - x_i)``. Training-free; with ``w_i = 1`` the
  final step reproduces ``y_i`` (σ = 0 after the last step).
* ``guided``: Black, Galliker & Levine 2025, "Real-Time Execution of Action Chunking Flow Policies"
  (arXiv 2506.07339), Algorithm 1 — pseudo-inverse guidance through a vector–Jacobian product of the
  denoiser (see :func:`fastwam_ros.model.network.rtc_guidance.guided_velocity`).

Weights over the chunk (:func:`rtc_weights`; the paper's soft mask, eq. 5): with executed delay ``d`` and
overlap ``L`` (= ``H - s`` in the paper: the number of new-chunk steps the previous plan still covers),

* ``w_i = 1`` for ``i < d`` (hard-constrained),
* ``w_i = c_i (e^{c_i} - 1) / (e - 1)`` with ``c_i = (L - i) / (L - d + 1)`` for ``d <= i < L``,
* ``w_i = 0`` for ``i >= L``.

``mask="hard"`` keeps only the first rule (1 for ``i < d``, 0 elsewhere): the previous, hard-masked RTC.

Conventions here (the official Fast-WAM scheduler): σ runs from 1 (noise) to 0 (data), ``x_σ = (1-σ) x0 +
σ ε``, the network predicts ``v = ε - x0`` and an Euler step is ``x <- x + (σ_next - σ) v``. The paper uses
τ = 1 - σ and the opposite velocity sign; the formulas below are the paper's, translated.
"""

from __future__ import annotations

import math

import numpy as np

RTC_MODES = ("off", "inpaint", "guided")
RTC_MASKS = ("soft", "hard")
DEFAULT_GUIDANCE_BETA = 5.0  # the paper's β (maximum guidance weight)


def check_mode(mode: str) -> str:
    if mode not in RTC_MODES:
        raise ValueError(f"rtc mode must be one of {RTC_MODES}, got {mode!r}")
    return mode


def rtc_weights(horizon: int, delay_steps: int, overlap_steps: int, mask: str = "soft") -> np.ndarray:
    """Per-step guidance weights [horizon] float64 in [0, 1] (schedule in the module docstring).

    ``delay_steps`` d: leading steps hard-constrained (weight 1); ``overlap_steps`` L: steps the previous
    plan covers (weights beyond it are 0). Both are clipped to [0, horizon]; d is clipped to L."""
    if mask not in RTC_MASKS:
        raise ValueError(f"rtc mask must be one of {RTC_MASKS}, got {mask!r}")
    h = int(horizon)
    if h < 0:
        raise ValueError(f"horizon must be >= 0, got {horizon}")
    big_l = min(max(int(overlap_steps), 0), h)
    d = min(max(int(delay_steps), 0), big_l)
    w = np.zeros(h, dtype=np.float64)
    w[:d] = 1.0
    if mask == "soft" and big_l > d:
        i = np.arange(d, big_l, dtype=np.float64)
        c = (big_l - i) / (big_l - d + 1)
        w[d:big_l] = c * np.expm1(c) / math.expm1(1.0)
    return w


def guidance_weight(sigma: float, beta: float = DEFAULT_GUIDANCE_BETA) -> float:
    """The paper's clipped guidance weight, ``min(β, (1 - τ) / (τ r_τ²))`` with ``r_τ² = (1 - τ)² / (τ² +
    (1 - τ)²)`` (the variance of the Gaussian ΠGDM places around the denoised estimate), i.e. with τ = 1 - σ:
    ``min(β, (σ² + (1 - σ)²) / (σ (1 - σ)))``. Unbounded at both ends of the path (σ → 1 and σ → 0), hence
    the clip; β = 5 in the paper."""
    if not beta > 0:
        raise ValueError(f"guidance beta must be > 0, got {beta}")
    s = float(sigma)
    if s <= 0.0 or s >= 1.0:
        return float(beta)
    return float(min(beta, (s * s + (1.0 - s) ** 2) / (s * (1.0 - s))))


__all__ = ["DEFAULT_GUIDANCE_BETA", "RTC_MASKS", "RTC_MODES", "check_mode", "guidance_weight", "rtc_weights"]
