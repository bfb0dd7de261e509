"""Wan2.2 VAE wrapper: frames in [-1, 1] -> normalised 48-channel latents, and back.

The Fast-WAM model sees the VAE posterior **mean** (no sampling), normalised per channel with the 48
``latents_mean`` / ``latents_std`` values stored in the diffusers VAE config:
``z = (mu - mean_c) / std_c`` (reference spec §1.11). Decoding inverts the normalisation. A VAE config may
instead hold ``[48, h, w]`` statistics per channel and latent position (:func:`position_latent_stats`; used by
the small random demo VAE, whose raw latents barely vary with the scene); they fix the frame size.

Shapes: video ``[B, 3, T, H, W]`` with ``T = 1 + 4k`` frames and ``H, W`` multiples of the spatial factor
(16 for Wan2.2) -> latents ``[B, 48, 1 + (T - 1) / 4, H / 16, W / 16]``. One image is a 1-frame video.

Weights only ever come from a local directory (diffusers layout, e.g. the ``vae/`` folder of
``Wan-AI/Wan2.2-TI2V-5B-Diffusers``); nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

# Wan2.2 (TI2V-5B) VAE latent statistics, identical to the diffusers VAE config and to the official
# ``wan_video_vae.py`` (diffusers_wan.md §2). Used as defaults of the tiny test VAE.
WAN22_LATENTS_MEAN: tuple[float, ...] = (
    -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557, -0.1382, 0.0542,
    0.2813, 0.0891, 0.1570, -0.0098, 0.0375, -0.1825, -0.2246, -0.1207, -0.0698, 0.5109,
    0.2665, -0.2108, -0.2158, 0.2502, -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899,
    -0.2799, -0.1230, -0.0313, -0.1649, 0.0117, 0.0723, -0.2839, -0.2083, -0.0520, 0.3748,
    0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667,
)  # fmt: skip
WAN22_LATENTS_STD: tuple[float, ...] = (
    0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013, 0.8158, 1.0344,
    0.5894, 1.0901, 0.6885, 0.6165, 0.8454, 0.4978, 0.5759, 0.3523, 0.7135, 0.6804,
    0.5833, 1.4146, 0.8986, 0.5659, 0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999,
    0.6866, 0.4093, 0.5709, 0.6065, 0.6415, 0.4944, 0.5726, 1.2042, 0.5458, 1.6887,
    0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744,
)  # fmt: skip

# Keys the (older) conversion script writes that the installed class rejects in its constructor.
_IGNORED_VAE_KEYS = ("clip_output",)


def wan22_vae_config(**overrides: Any) -> dict[str, Any]:
    """The full-size Wan2.2 (TI2V-5B) ``AutoencoderKLWan`` config (diffusers_wan.md §2), with overrides."""
    cfg: dict[str, Any] = {
        "base_dim": 160,
        "decoder_base_dim": 256,
        "z_dim": 48,
        "dim_mult": [1, 2, 4, 4],
        "num_res_blocks": 2,
        "attn_scales": [],
        "temperal_downsample": [False, True, True],
        "dropout": 0.0,
        "latents_mean": list(WAN22_LATENTS_MEAN),
        "latents_std": list(WAN22_LATENTS_STD),
        "is_residual": True,
        "in_channels": 12,
        "out_channels": 12,
        "patch_size": 2,
        "scale_factor_temporal": 4,
        "scale_factor_spatial": 16,
    }
    cfg.update(overrides)
    return cfg


def tiny_vae_config(base_dim: int = 8, decoder_base_dim: int | None = 8, **overrides: Any) -> dict[str, Any]:
    """A Wan2.2-structured VAE small enough for CPU tests (same z_dim 48, same ×16 / ×4 compression)."""
    cfg = wan22_vae_config(base_dim=base_dim, decoder_base_dim=decoder_base_dim, num_res_blocks=1)
    cfg.update(overrides)
    return cfg


def position_latent_stats(latents: Iterable[torch.Tensor], latents_mean: Sequence[float],
                          latents_std: Sequence[float], floor: float = 0.1) -> tuple[list, list]:
    """Per-channel-and-position latent statistics for a VAE config, from a dataset's latents.

    ``latents``: [z_dim, F, h, w] tensors (one per sample, any number of latent frames) normalised with the per
    channel ``latents_mean`` / ``latents_std`` [z_dim]. Returns ``(latents_mean, latents_std)`` as nested lists
    [z_dim][h][w] in raw VAE units, such that a VAE configured with them encodes to
    ``((mu - mean_c) / std_c - m) / s``: every latent value standardised by its channel-and-position mean ``m``
    and spread ``s = sqrt(sd**2 + (floor * mean(sd))**2)`` over the samples and frames (the floor keeps positions
    that never vary, such as a static background, from being scaled up). A scene whose content of interest is a
    small part of the frame (a towel on a table) gives latents that vary a few per cent around a large constant
    part; standardised, that variation is of order 1 where it occurs."""
    n, total, total_sq = 0, None, None
    for z in latents:
        z = z.detach().to(torch.float64)
        if z.ndim != 4:
            raise ValueError(f"latents must be [z_dim, F, h, w] tensors, got shape {tuple(z.shape)}")
        if total is None:
            total = torch.zeros(z.shape[0], *z.shape[2:], dtype=torch.float64)
            total_sq = torch.zeros_like(total)
        elif (z.shape[0], *z.shape[2:]) != tuple(total.shape):
            raise ValueError(f"latents of different shapes: {tuple(z.shape)} after [{total.shape[0]}, F, "
                             f"{total.shape[1]}, {total.shape[2]}]")
        total += z.sum(dim=1)
        total_sq += (z * z).sum(dim=1)
        n += z.shape[1]
    if total is None or n < 2:
        raise ValueError("position_latent_stats needs latents of at least 2 frames in all")
    m = total / n
    sd = ((total_sq / n - m * m).clamp_min(0.0) * (n / (n - 1))).sqrt()
    s = (sd * sd + (floor * sd.mean()) ** 2).sqrt()
    if not bool(torch.isfinite(m).all()) or not bool((s > 0).all()):
        raise ValueError("latent statistics are not finite or have no spread (all latents equal?)")
    cm = torch.tensor(list(latents_mean), dtype=torch.float64).view(-1, 1, 1)
    cs = torch.tensor(list(latents_std), dtype=torch.float64).view(-1, 1, 1)
    if cm.shape[0] != m.shape[0] or cs.shape[0] != m.shape[0]:
        raise ValueError(f"{cm.shape[0]} channel means / {cs.shape[0]} stds for {m.shape[0]}-channel latents")
    return (cm + cs * m).tolist(), (cs * s).tolist()


def _resolve_component_dir(path: str | Path, subfolder: str) -> Path:
    """``path`` itself if it holds ``config.json``, else ``path/subfolder`` (a full pipeline directory)."""
    p = Path(path).expanduser()
    if (p / "config.json").is_file():
        return p
    if (p / subfolder / "config.json").is_file():
        return p / subfolder
    raise FileNotFoundError(
        f"no {subfolder} found at {p}: expected {p / 'config.json'} or {p / subfolder / 'config.json'} "
        f"(a local diffusers-layout directory, e.g. Wan-AI/Wan2.2-TI2V-5B-Diffusers/{subfolder})"
    )


class WanVAE(nn.Module):
    """Normalising wrapper around diffusers' ``AutoencoderKLWan`` (Wan2.2 flavour).

    ``encode`` takes pixels in [-1, 1] and returns normalised posterior means; ``decode`` is the inverse.
    """

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae
        cfg = vae.config
        try:
            mean = torch.tensor(cfg.latents_mean, dtype=torch.float32)
            std = torch.tensor(cfg.latents_std, dtype=torch.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"VAE config latents_mean / latents_std must be numbers per channel [z_dim] or per "
                             f"channel and latent position [z_dim][h][w]: {exc}") from None
        # per channel (the Wan2.2 VAE: [z_dim]) or per channel and latent position ([z_dim, h, w]: statistics of a
        # dataset's latents at one frame size, see position_latent_stats)
        if mean.shape != std.shape or mean.ndim not in (1, 3) or mean.shape[0] != cfg.z_dim:
            raise ValueError(
                f"VAE config has z_dim={cfg.z_dim} but latents_mean has shape {tuple(mean.shape)} and latents_std "
                f"{tuple(std.shape)}; both must be [z_dim] or the same [z_dim, h, w]"
            )
        if not bool(torch.isfinite(mean).all()) or not bool(torch.isfinite(std).all()):
            raise ValueError("VAE config latents_mean / latents_std must be finite")
        if bool((std <= 0).any()):
            raise ValueError("VAE config latents_std must be strictly positive")
        grid = (1, 1) if mean.ndim == 1 else tuple(mean.shape[1:])
        # Kept in float32 whatever the VAE dtype; applied in float32 (non-persistent: part of the config).
        self.register_buffer("latents_mean", mean.view(1, -1, 1, *grid), persistent=False)
        self.register_buffer("latents_std", std.view(1, -1, 1, *grid), persistent=False)
        # the latent grid (h, w) of per-position statistics (they fix the frame size: 16h x 16w px); None: per channel
        self.position_grid: tuple[int, int] | None = None if mean.ndim == 1 else grid

    # ----------------------------------------------------------------------------------- construction
    @classmethod
    def from_config(cls, config: dict[str, Any], *, seed: int | None = None) -> WanVAE:
        """Randomly initialised VAE from a config dict (see :func:`tiny_vae_config`)."""
        from diffusers import AutoencoderKLWan

        cfg = {k: v for k, v in config.items() if not k.startswith("_") and k not in _IGNORED_VAE_KEYS}
        if seed is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                vae = AutoencoderKLWan(**cfg)
        else:
            vae = AutoencoderKLWan(**cfg)
        return cls(vae.eval())

    @classmethod
    def from_vae_config(cls, vae_cfg: Any, *, seed: int | None = None) -> WanVAE:
        """Random VAE from a ``fastwam_ros.model.config.VAEConfig`` (or a plain dict of the same fields)."""
        d = dict(vae_cfg.__dict__) if hasattr(vae_cfg, "__dataclass_fields__") else dict(vae_cfg)
        return cls.from_config(wan22_vae_config(**d), seed=seed)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> WanVAE:
        """Load from a LOCAL diffusers-layout directory (the ``vae/`` folder or the pipeline root)."""
        from diffusers import AutoencoderKLWan

        d = _resolve_component_dir(path, "vae")
        vae = AutoencoderKLWan.from_pretrained(str(d), torch_dtype=dtype, local_files_only=True)
        if int(vae.config.z_dim) != 48 or not vae.config.is_residual:
            raise ValueError(
                f"{d}: not a Wan2.2 VAE (z_dim={vae.config.z_dim}, is_residual={vae.config.is_residual}); "
                "Fast-WAM needs the 48-channel Wan2.2 VAE (Wan-AI/Wan2.2-TI2V-5B-Diffusers/vae)"
            )
        return cls(vae.eval()).to(device)

    # ----------------------------------------------------------------------------------- properties
    @property
    def z_dim(self) -> int:
        return int(self.vae.config.z_dim)

    @property
    def spatial_factor(self) -> int:
        return int(self.vae.config.scale_factor_spatial or 8)

    @property
    def temporal_factor(self) -> int:
        return int(self.vae.config.scale_factor_temporal or 4)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(C, F, h, w) of the latents of a ``num_frames × height × width`` video (pixels)."""
        self._check_video_dims(num_frames, height, width)
        f = 1 + (num_frames - 1) // self.temporal_factor
        return (self.z_dim, f, height // self.spatial_factor, width // self.spatial_factor)

    def _check_video_dims(self, num_frames: int, height: int, width: int) -> None:
        s, t = self.spatial_factor, self.temporal_factor
        if height % s or width % s or height <= 0 or width <= 0:
            raise ValueError(f"frame size {height}x{width} (H x W pixels) must be positive multiples of {s}")
        if num_frames < 1 or (num_frames - 1) % t:
            raise ValueError(f"number of frames {num_frames} must be 1 + {t}*k (causal temporal compression)")

    # ----------------------------------------------------------------------------------- normalisation
    def _check_grid(self, z: torch.Tensor) -> None:
        if self.position_grid is not None and tuple(z.shape[-2:]) != self.position_grid:
            h, w = self.position_grid
            raise ValueError(
                f"this VAE's latent statistics are per position for a {h}x{w} latent grid ({16 * h}x{16 * w} px "
                f"frames); got a {z.shape[-2]}x{z.shape[-1]} latent grid ({16 * z.shape[-2]}x{16 * z.shape[-1]} px)"
            )

    def normalize(self, mu: torch.Tensor) -> torch.Tensor:
        """Raw posterior mean -> model latents: (mu - mean) / std per channel (per channel and latent position
        when the config holds [z_dim, h, w] statistics), computed in float32."""
        self._check_grid(mu)
        out = (mu.float() - self.latents_mean.to(mu.device)) / self.latents_std.to(mu.device)
        return out.to(mu.dtype)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """Model latents -> raw VAE latents: z * std + mean, computed in float32."""
        self._check_grid(z)
        out = z.float() * self.latents_std.to(z.device) + self.latents_mean.to(z.device)
        return out.to(z.dtype)

    # ----------------------------------------------------------------------------------- encode / decode
    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """[B, 3, T, H, W] pixels in [-1, 1] -> normalised posterior mean [B, 48, F, H/16, W/16].

        Output dtype = the VAE dtype.
        """
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"video must be [B, 3, T, H, W], got shape {tuple(video.shape)}")
        self._check_video_dims(video.shape[2], video.shape[3], video.shape[4])
        x = video.to(device=self.device, dtype=self.dtype)
        posterior = self.vae.encode(x).latent_dist
        return self.normalize(posterior.mean)

    @torch.no_grad()
    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] in [-1, 1] -> first-frame latents [B, 48, 1, H/16, W/16]."""
        if frames.ndim != 4:
            raise ValueError(f"frames must be [B, 3, H, W], got shape {tuple(frames.shape)}")
        return self.encode(frames.unsqueeze(2))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents [B, 48, F, h, w] -> video [B, 3, 1 + 4(F-1), 16h, 16w], clamped to [-1, 1]."""
        if latents.ndim != 5 or latents.shape[1] != self.z_dim:
            raise ValueError(f"latents must be [B, {self.z_dim}, F, h, w], got shape {tuple(latents.shape)}")
        z = self.denormalize(latents.to(device=self.device, dtype=self.dtype))
        return self.vae.decode(z).sample.clamp(-1.0, 1.0)
