"""Flow matching as in the official ``WanContinuousFlowMatchScheduler``: shift map, schedules, Euler steps,
training timestep sampling and the Gaussian loss weighting.

Conventions: sigma in [0, 1]; model timestep t = num_train_timesteps * sigma; x_t = (1 - sigma) x0 + sigma eps;
the model predicts the velocity eps - x0; Euler: x <- x + v * (sigma_next - sigma).
"""

from __future__ import annotations

import torch


def shift_sigma(u: torch.Tensor, shift: float) -> torch.Tensor:
    """phi(u) = s*u / (1 + (s-1)*u)."""
    return shift * u / (1.0 + (shift - 1.0) * u)


class FlowMatchScheduler:
    """Shifted flow-matching schedule (shift 5, 1000 train timesteps by default)."""

    def __init__(self, num_train_timesteps: int = 1000, shift: float = 5.0, eps: float = 1e-10):
        if num_train_timesteps <= 0:
            raise ValueError(f"num_train_timesteps must be positive, got {num_train_timesteps}")
        if shift <= 0:
            raise ValueError(f"shift must be positive, got {shift}")
        self.num_train_timesteps = int(num_train_timesteps)
        self.shift = float(shift)
        self.eps = float(eps)
        # Loss-weight statistics on the shifted training grid (float64).
        n = self.num_train_timesteps
        u = torch.linspace(1.0, 0.0, n + 1, dtype=torch.float64, device="cpu")[:-1]  # CPU even under a meta device
        y = torch.exp(-2.0 * ((shift_sigma(u, self.shift) * n - n / 2.0) / n) ** 2)
        self.weight_y_min = float(y.min())
        self.weight_norm_const = float((y - self.weight_y_min).mean())

    # ---- inference --------------------------------------------------------------------------------
    def sigmas(self, num_steps: int, shift: float | None = None) -> torch.Tensor:
        """[num_steps + 1] float32 sigmas phi(linspace(1, 0, N+1)); the last is 0."""
        if num_steps <= 0:
            raise ValueError(f"num_steps must be positive, got {num_steps}")
        s = self.shift if shift is None else float(shift)
        if s <= 0:
            raise ValueError(f"shift must be positive, got {s}")
        return shift_sigma(torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float32), s)

    def inference_schedule(
        self, num_steps: int, dtype: torch.dtype = torch.float32, shift: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(timesteps [N], deltas [N]) cast to ``dtype`` (bf16 reproduces the official bf16 quirk)."""
        sig = self.sigmas(num_steps, shift)
        timesteps = sig[:-1] * float(self.num_train_timesteps)
        deltas = sig[1:] - sig[:-1]
        return timesteps.to(dtype), deltas.to(dtype)

    def sigmas_after_steps(self, num_steps: int, shift: float | None = None) -> torch.Tensor:
        """σ reached after each Euler step, float32 [N] (the last is exactly 0): where prefix guidance pins
        the committed steps after step i."""
        return self.sigmas(num_steps, shift)[1:]

    @staticmethod
    def step(velocity: torch.Tensor, delta: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        """One Euler step x + v * delta (delta cast to the sample's dtype)."""
        return sample + velocity * delta.to(sample.device, sample.dtype)

    # ---- training ---------------------------------------------------------------------------------
    def timesteps_from_uniform(self, u: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Training timesteps 1000 * phi(u) from uniform draws u (float32 math, then cast to ``dtype``)."""
        return (shift_sigma(u.to(torch.float32), self.shift) * float(self.num_train_timesteps)).to(dtype)

    def sample_training_t(
        self,
        batch_size: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Draw u ~ U(0,1) [batch_size] (one ``torch.rand`` call) and map to timesteps."""
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        u = torch.rand((batch_size,), device=device, dtype=torch.float32, generator=generator)
        return self.timesteps_from_uniform(u, dtype)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """(1 - sigma) x0 + sigma eps with sigma = t / num_train_timesteps, per sample."""
        sigma = (timestep / float(self.num_train_timesteps)).to(x0.device, x0.dtype)
        if sigma.ndim:
            sigma = sigma.view(-1, *([1] * (x0.ndim - 1)))
        return (1 - sigma) * x0 + sigma * noise

    @staticmethod
    def training_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Velocity target eps - x0."""
        return noise - x0

    def training_weight(self, timestep: torch.Tensor) -> torch.Tensor:
        """w(t) = (exp(-2((t-500)/1000)^2) - y_min) / mean_grid(y - y_min), float32."""
        t = timestep.to(torch.float32)
        n = float(self.num_train_timesteps)
        y = torch.exp(-2.0 * ((t - n / 2.0) / n) ** 2)
        return (y - self.weight_y_min) / (self.weight_norm_const + self.eps)



def inpaint_prefix(sample: torch.Tensor, noise: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                   sigma: torch.Tensor | float) -> torch.Tensor:
    """Real-time-chunking guidance by inpainting (training-free): pull the committed steps of the chunk towards
    the point at ``sigma`` of the straight path from their noise to the committed actions,
    x <- x + w * ((1 - sigma) * target + sigma * noise - x).

    ``target`` [B, H, A] normalised committed actions (any value where ``weight`` is 0), ``weight`` [B, H, 1] in
    [0, 1] (1 = committed, 0 = free). With weight 1 and sigma 0 (after the last step) the committed steps equal
    ``target`` exactly; a zero weight leaves ``sample`` bit-identical. The free steps follow through the action
    tokens' self-attention, so the new chunk continues from what the robot is already executing."""
    path = target + sigma * (noise - target)
    return sample + weight * (path - sample)
