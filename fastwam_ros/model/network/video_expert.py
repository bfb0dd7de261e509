"""Video expert: the Wan2.2-TI2V DiT, held as a diffusers ``WanTransformer3DModel`` (its weights, embeddings and
blocks) and driven by our own layer loop (see :mod:`fastwam_ros.model.network.mot`).

Per-token timesteps: every token of a latent frame carries that frame's timestep; latent frame 0 is the clean
conditioning image and always gets t = 0.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from diffusers.models.transformers.transformer_wan import WanTransformer3DModel

from ..config import VideoExpertConfig
from .rope import video_rope_angles


def timestep_sinusoid(timesteps: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal timestep embedding [..., dim]: cos half first, then sin; frequencies 10000^(-i/(dim/2)).

    Computed in float64 and cast to the timestep dtype (as the official Wan code does)."""
    half = dim // 2
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=timesteps.device).div(half))
    arg = timesteps.to(torch.float64)[..., None] * freqs
    out = torch.cat([torch.cos(arg), torch.sin(arg)], dim=-1)
    dtype = timesteps.dtype if timesteps.is_floating_point() else torch.float32
    return out.to(dtype)


def time_condition(condition_embedder: nn.Module, timesteps: torch.Tensor, freq_dim: int, dtype: torch.dtype):
    """(temb [..., D], t_mod [..., 6, D]) from timesteps of any shape, using a diffusers
    ``WanTimeTextImageEmbedding``'s ``time_embedder`` and ``time_proj``."""
    emb = timestep_sinusoid(timesteps, freq_dim)
    lin_dtype = condition_embedder.time_embedder.linear_1.weight.dtype
    temb = condition_embedder.time_embedder(emb.to(lin_dtype)).to(dtype)
    t_mod = condition_embedder.time_proj(condition_embedder.act_fn(temb))
    return temb, t_mod.unflatten(-1, (6, -1))


class VideoExpert(nn.Module):
    """Wan2.2 TI2V DiT as a MoT expert. ``transformer`` is a stock diffusers model (state-dict keys in diffusers
    layout under ``transformer.``)."""

    def __init__(self, cfg: VideoExpertConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.num_heads = cfg.num_heads
        self.transformer = WanTransformer3DModel(
            patch_size=tuple(cfg.patch_size),
            num_attention_heads=cfg.num_heads,
            attention_head_dim=cfg.attn_head_dim,
            in_channels=cfg.in_dim,
            out_channels=cfg.out_dim,
            text_dim=cfg.text_dim,
            freq_dim=cfg.freq_dim,
            ffn_dim=cfg.ffn_dim,
            num_layers=cfg.num_layers,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            eps=cfg.eps,
            rope_max_seq_len=cfg.rope_max_seq_len,
        )

    @property
    def blocks(self) -> nn.ModuleList:
        return self.transformer.blocks

    # ---- inputs -----------------------------------------------------------------------------------
    def token_grid(self, latent_shape) -> tuple[int, int, int]:
        """(frames, rows, cols) of the token grid for latents [B, C, F, h, w]."""
        _, c, f, h, w = latent_shape
        pt, ph, pw = self.cfg.patch_size
        if c != self.cfg.in_dim:
            raise ValueError(f"video latents have {c} channels, the video expert expects {self.cfg.in_dim}")
        if f % pt or h % ph or w % pw:
            raise ValueError(f"latent size (F={f}, h={h}, w={w}) is not divisible by patch {self.cfg.patch_size}")
        return f // pt, h // ph, w // pw

    def patchify(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [B, C, F, h, w] -> tokens [B, S, D] in (frame, row, col) order."""
        x = self.transformer.patch_embedding(latents.to(self.transformer.patch_embedding.weight.dtype))
        return x.flatten(2).transpose(1, 2)

    def token_timesteps(self, timestep: torch.Tensor, num_frames: int, tokens_per_frame: int) -> torch.Tensor:
        """Per-token timesteps [B, F*tpf]: ``timestep`` [B] everywhere except latent frame 0 (t = 0)."""
        t = timestep.reshape(-1, 1, 1).expand(-1, num_frames, tokens_per_frame).clone()
        t[:, 0] = 0
        return t.flatten(1)

    def time_condition(self, token_timesteps: torch.Tensor, dtype: torch.dtype):
        """(temb [B, S, D], t_mod [B, S, 6, D]) for per-token timesteps [B, S]."""
        return time_condition(self.transformer.condition_embedder, token_timesteps, self.cfg.freq_dim, dtype)

    def embed_context(self, context: torch.Tensor) -> torch.Tensor:
        """Project the shared context [B, L, text_dim] to the expert width [B, L, D]."""
        te = self.transformer.condition_embedder.text_embedder
        return te(context.to(te.linear_1.weight.dtype))

    def rope_angles(self, grid: tuple[int, int, int], device=None) -> torch.Tensor:
        f, h, w = grid
        return video_rope_angles(f, h, w, self.cfg.attn_head_dim, self.cfg.rope_theta).to(device)

    # ---- output -----------------------------------------------------------------------------------
    def head(self, x: torch.Tensor, temb: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """Tokens [B, S, D] + per-token temb [B, S, D] -> velocity [B, C, F, h, w]."""
        tr = self.transformer
        shift, scale = (tr.scale_shift_table.unsqueeze(0) + temb.unsqueeze(2)).chunk(2, dim=2)
        shift, scale = shift.squeeze(2), scale.squeeze(2)
        y = (tr.norm_out(x.float()) * (1 + scale) + shift).type_as(x)
        y = tr.proj_out(y)
        b = x.shape[0]
        f, h, w = grid
        pt, ph, pw = self.cfg.patch_size
        y = y.reshape(b, f, h, w, pt, ph, pw, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return y.flatten(6, 7).flatten(4, 5).flatten(2, 3)
