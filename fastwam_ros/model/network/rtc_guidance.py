"""Real-time chunking sampling steps (torch): VJP guidance (the RTC paper's Algorithm 1), the per-run guide
used by the Fast-WAM samplers, and a generic Euler sampler for small policies. Schedule and conventions:
:mod:`fastwam_ros.model.network.rtc`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .flow import inpaint_prefix
from .rtc import DEFAULT_GUIDANCE_BETA, check_mode, guidance_weight


def guided_velocity(velocity_fn: Callable[[torch.Tensor], torch.Tensor], sample: torch.Tensor, sigma: float,
                    target: torch.Tensor, weight: torch.Tensor, beta: float = DEFAULT_GUIDANCE_BETA
                    ) -> torch.Tensor:
    """Velocity [B, H, A] for one guided Euler step (the paper's Algorithm 1, GUIDEDINFERENCE), detached.

    ``x̂0 = x - σ v(x)`` is the denoised estimate; ``e = W (y - x̂0)`` the weighted error to the previous plan
    ``target`` y [B, H, A] (``weight`` W [B, H, 1]); ``g = eᵀ ∂x̂0/∂x`` one vector–Jacobian product (a backward
    pass through the denoiser only: ``velocity_fn`` must be differentiable in its input; cached conditioning
    such as the video K/V is a constant). The paper's update ``A <- A + Δτ (v_τ + w g)`` becomes, in σ
    convention, ``x <- x + Δσ (v - w g)`` with ``w = guidance_weight(σ, β)``: this returns ``v - w g``."""
    with torch.enable_grad():
        x = sample.detach().requires_grad_(True)
        v = velocity_fn(x)
        x0_hat = x - sigma * v
        err = weight * (target - x0_hat)
        (g,) = torch.autograd.grad(x0_hat, x, grad_outputs=err.detach())
    return (v.detach() - guidance_weight(sigma, beta) * g).to(sample.dtype)


@dataclass
class PrefixGuide:
    """What one guided sampling run needs: the mode, the previous plan ``target`` [B, H, A] (normalised, any
    value where ``weight`` is 0), ``weight`` [B, H, 1], the initial ``noise`` [B, H, A], σ before each Euler
    step ``sigma_before`` [N] and after it ``sigma_after`` [N] (float32), and β."""

    mode: str
    target: torch.Tensor
    weight: torch.Tensor
    noise: torch.Tensor
    sigma_before: torch.Tensor
    sigma_after: torch.Tensor
    beta: float = DEFAULT_GUIDANCE_BETA

    def __post_init__(self) -> None:
        if check_mode(self.mode) == "off":
            raise ValueError("PrefixGuide is for the inpaint / guided modes; 'off' samples without one")
        if not self.beta > 0:
            raise ValueError(f"guidance beta must be > 0, got {self.beta}")

    @property
    def guided(self) -> bool:
        return self.mode == "guided"

    def velocity(self, velocity_fn: Callable[[torch.Tensor], torch.Tensor], sample: torch.Tensor, i: int
                 ) -> torch.Tensor:
        """Velocity of Euler step ``i`` (guided in ``guided`` mode, else the plain one)."""
        if not self.guided:
            return velocity_fn(sample)
        return guided_velocity(velocity_fn, sample, float(self.sigma_before[i]), self.target, self.weight,
                               self.beta)

    def after_step(self, sample: torch.Tensor, i: int) -> torch.Tensor:
        """Post-step correction (inpainting in ``inpaint`` mode; nothing in ``guided`` mode)."""
        if self.guided:
            return sample
        return inpaint_prefix(sample, self.noise, self.target, self.weight, self.sigma_after[i])


def euler_sample(velocity_fn: Callable[[torch.Tensor, int], torch.Tensor], noise: torch.Tensor,
                 sigmas: torch.Tensor, guide: PrefixGuide | None = None) -> torch.Tensor:
    """Generic Euler flow-matching sampler over ``sigmas`` [N + 1] (1 → 0) with optional RTC guidance:
    ``velocity_fn(x, i)`` -> velocity at step i. Used by small stand-alone policies (benchmarks); the Fast-WAM
    samplers run the same steps with their own caches."""
    x = noise
    for i in range(len(sigmas) - 1):
        delta = sigmas[i + 1] - sigmas[i]
        v = velocity_fn(x, i) if guide is None else guide.velocity(lambda y, i=i: velocity_fn(y, i), x, i)
        x = x + v * delta.to(x.dtype)
        if guide is not None:
            x = guide.after_step(x, i)
    return x


__all__ = ["PrefixGuide", "euler_sample", "guided_velocity"]
