"""Action expert (ActionDiT): same depth, heads and head dim as the video expert but its own width, so each
diffusers ``WanTransformerBlock`` gets its attentions replaced by ``WanAttention(dim, heads, dim_head)``.

Input: a linear action encoder on the noisy action chunk [B, H, action_dim]; one scalar timestep per sample;
1-D RoPE over the action slots 0..H-1 (full head dim); output: a bare Linear head to action_dim.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from diffusers.models.transformers.transformer_wan import (
    WanAttention,
    WanAttnProcessor,
    WanTimeTextImageEmbedding,
    WanTransformerBlock,
)

from ..config import ActionExpertConfig
from .rope import action_rope_angles
from .video_expert import time_condition


def make_block(dim: int, ffn_dim: int, num_heads: int, head_dim: int, eps: float) -> WanTransformerBlock:
    """A Wan block of width ``dim`` whose attentions use ``num_heads * head_dim`` inner channels."""
    block = WanTransformerBlock(dim, ffn_dim, num_heads, "rms_norm_across_heads", True, eps)
    if dim != num_heads * head_dim:
        block.attn1 = WanAttention(dim=dim, heads=num_heads, dim_head=head_dim, eps=eps, processor=WanAttnProcessor())
        block.attn2 = WanAttention(
            dim=dim,
            heads=num_heads,
            dim_head=head_dim,
            eps=eps,
            cross_attention_dim_head=head_dim,
            processor=WanAttnProcessor(),
        )
    return block


class ActionExpert(nn.Module):
    """ActionDiT as a MoT expert."""

    def __init__(self, cfg: ActionExpertConfig):
        super().__init__()
        self.cfg = cfg
        self.num_heads = cfg.num_heads
        d = cfg.hidden_dim
        self.action_encoder = nn.Linear(cfg.action_dim, d)
        self.condition_embedder = WanTimeTextImageEmbedding(
            dim=d, time_freq_dim=cfg.freq_dim, time_proj_dim=6 * d, text_embed_dim=cfg.text_dim
        )
        self.blocks = nn.ModuleList(
            [make_block(d, cfg.ffn_dim, cfg.num_heads, cfg.attn_head_dim, cfg.eps) for _ in range(cfg.num_layers)]
        )
        self.head = nn.Linear(d, cfg.action_dim)

    def embed_actions(self, noisy_actions: torch.Tensor) -> torch.Tensor:
        """[B, H, action_dim] -> tokens [B, H, D]."""
        if noisy_actions.shape[-1] != self.cfg.action_dim:
            raise ValueError(f"actions have dim {noisy_actions.shape[-1]}, expected {self.cfg.action_dim}")
        return self.action_encoder(noisy_actions.to(self.action_encoder.weight.dtype))

    def time_condition(self, timestep: torch.Tensor, dtype: torch.dtype):
        """(temb [B, 1, D], t_mod [B, 1, 6, D]) for one timestep per sample [B] (broadcast over tokens)."""
        temb, t_mod = time_condition(self.condition_embedder, timestep.reshape(-1), self.cfg.freq_dim, dtype)
        return temb[:, None], t_mod[:, None]

    def embed_context(self, context: torch.Tensor) -> torch.Tensor:
        te = self.condition_embedder.text_embedder
        return te(context.to(te.linear_1.weight.dtype))

    def rope_angles(self, num_tokens: int, device=None) -> torch.Tensor:
        return action_rope_angles(num_tokens, self.cfg.attn_head_dim, self.cfg.rope_theta).to(device)

    def output(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens [B, H, D] -> velocity [B, H, action_dim]."""
        return self.head(x)
