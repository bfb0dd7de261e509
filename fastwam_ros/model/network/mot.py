"""Mixture-of-Transformers layer loop: per layer each expert computes its own q/k/v (RMSNorm across heads, RoPE),
one attention runs over the concatenated sequence with a boolean mask, and each expert finishes with its own
output projection, cross-attention and FFN. Also: the per-layer video K/V cache (prefill once, reuse for every
action step) and the per-layer cross-attention context K/V.

Blocks are diffusers ``WanTransformerBlock`` modules (norm1 = self-attention LN, norm2 = affine cross-attention LN,
norm3 = FFN LN, ``scale_shift_table`` = modulation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .rope import apply_rope


@dataclass
class Stream:
    """One expert's token stream for a MoT forward.

    x: hidden states [B, S, D]; t_mod: modulation [B, S|1, 6, D]; angles: RoPE [S, head_dim/2];
    ctx_kv: per-layer cross-attention (k, v) pairs [B, L, inner] (see :func:`context_kv`)."""

    blocks: torch.nn.ModuleList
    num_heads: int
    x: torch.Tensor
    t_mod: torch.Tensor
    angles: torch.Tensor
    ctx_kv: list[tuple[torch.Tensor, torch.Tensor]]


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_heads: int, mask: torch.Tensor | None):
    """SDPA on [B, S, heads*hd] tensors; ``mask`` [Sq, Sk] bool (True = may attend) or None (all visible)."""
    b, sq, inner = q.shape
    hd = inner // num_heads
    qh = q.view(b, sq, num_heads, hd).transpose(1, 2)
    kh = k.view(b, k.shape[1], num_heads, hd).transpose(1, 2)
    vh = v.view(b, v.shape[1], num_heads, hd).transpose(1, 2)
    m = None if mask is None else mask.to(q.device)[None, None]
    o = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=m)
    return o.transpose(1, 2).reshape(b, sq, inner)


def context_kv(blocks, ctx: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-layer cross-attention keys (RMS-normed) and values of an expert-projected context [B, L, D].

    Row-wise: the K/V of a row depend only on that row, so text rows can be cached per instruction and
    concatenated with fresh proprio-row K/V (see :func:`concat_context_kv`)."""
    out = []
    for blk in blocks:
        a = blk.attn2
        out.append((a.norm_k(a.to_k(ctx)), a.to_v(ctx)))
    return out


def concat_context_kv(parts: list[list[tuple[torch.Tensor, torch.Tensor]]]):
    """Concatenate per-layer context K/V of row groups along the sequence axis."""
    return [
        (torch.cat([p[i][0] for p in parts], dim=1), torch.cat([p[i][1] for p in parts], dim=1))
        for i in range(len(parts[0]))
    ]


def _modulation(blk, t_mod: torch.Tensor):
    return (blk.scale_shift_table.unsqueeze(0) + t_mod.float()).chunk(6, dim=2)


def block_modulation(blk, t_mod: torch.Tensor) -> list[torch.Tensor]:
    """The six float32 modulation tensors [B, S|1, D] of one block (shift, scale, gate, c_shift, c_scale, c_gate).

    They depend only on the block's weights and the timestep, so a sampler with a fixed schedule can compute
    them once (see :mod:`fastwam_ros.model.inference.fast_path`)."""
    return [m.squeeze(2) for m in _modulation(blk, t_mod)]


def block_qkv_mods(blk, x: torch.Tensor, mods, rope: Callable[[torch.Tensor], torch.Tensor]):
    """Self-attention q, k (RMSNorm + ``rope``), v [B, S, inner] given precomputed modulation ``mods``."""
    shift, scale = mods[0], mods[1]
    h = (blk.norm1(x.float()) * (1 + scale) + shift).type_as(x)
    a = blk.attn1
    q = rope(a.norm_q(a.to_q(h)))
    k = rope(a.norm_k(a.to_k(h)))
    v = a.to_v(h)
    return q, k, v


def block_qkv(blk, x: torch.Tensor, t_mod: torch.Tensor, angles: torch.Tensor, num_heads: int):
    """Self-attention q, k (RMSNorm + RoPE), v [B, S, inner] and the six modulation tensors of one block."""
    mods = block_modulation(blk, t_mod)
    q, k, v = block_qkv_mods(blk, x, mods, lambda t: apply_rope(t, angles, num_heads))
    return q, k, v, mods


def block_post(blk, x: torch.Tensor, attn_out: torch.Tensor, mods, ctx_kv, num_heads: int) -> torch.Tensor:
    """Everything after the shared softmax: o-proj + gate, cross-attention, modulated FFN."""
    gate, c_shift, c_scale, c_gate = mods[2], mods[3], mods[4], mods[5]
    x = (x.float() + blk.attn1.to_out[0](attn_out) * gate).type_as(x)
    h = blk.norm2(x.float()).type_as(x)
    a2 = blk.attn2
    q = a2.norm_q(a2.to_q(h))
    x = x + a2.to_out[0](attention(q, ctx_kv[0], ctx_kv[1], num_heads, None))
    h = (blk.norm3(x.float()) * (1 + c_scale) + c_shift).type_as(x)
    return (x.float() + blk.ffn(h).float() * c_gate).type_as(x)


def mot_forward(streams: list[Stream], mask: torch.Tensor | None) -> list[torch.Tensor]:
    """Run all layers over the concatenated streams (in order) with one [S, S] boolean mask."""
    n_layers = len(streams[0].blocks)
    if any(len(s.blocks) != n_layers for s in streams):
        raise ValueError("all experts must have the same number of layers")
    heads = streams[0].num_heads
    xs = [s.x for s in streams]
    sizes = [x.shape[1] for x in xs]
    total = sum(sizes)
    if mask is not None and tuple(mask.shape) != (total, total):
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match the joint sequence length {total}")
    for i in range(n_layers):
        qs, ks, vs, mods = [], [], [], []
        for s, x in zip(streams, xs):
            q, k, v, m = block_qkv(s.blocks[i], x, s.t_mod, s.angles, s.num_heads)
            qs.append(q)
            ks.append(k)
            vs.append(v)
            mods.append(m)
        o = attention(torch.cat(qs, 1), torch.cat(ks, 1), torch.cat(vs, 1), heads, mask)
        outs = o.split(sizes, dim=1)
        xs = [
            block_post(s.blocks[i], x, oo, m, s.ctx_kv[i], s.num_heads)
            for s, x, oo, m in zip(streams, xs, outs, mods)
        ]
    return xs


@dataclass
class VideoKVCache:
    """Per-layer video keys (after RMSNorm + RoPE) and values, each [B, Sv, inner]."""

    k: list[torch.Tensor]
    v: list[torch.Tensor]

    @property
    def seq_len(self) -> int:
        return int(self.k[0].shape[1])


def prefill_video_cache(video: Stream, mask: torch.Tensor | None) -> VideoKVCache:
    """Run the video stream alone (video->video ``mask`` [Sv, Sv]) and keep every layer's K/V."""
    ks, vs = [], []
    x = video.x
    n = len(video.blocks)
    for i, blk in enumerate(video.blocks):
        q, k, v, mods = block_qkv(blk, x, video.t_mod, video.angles, video.num_heads)
        ks.append(k)
        vs.append(v)
        if i < n - 1:  # the last layer's output is never used by the actions
            o = attention(q, k, v, video.num_heads, mask)
            x = block_post(blk, x, o, mods, video.ctx_kv[i], video.num_heads)
    return VideoKVCache(ks, vs)


def forward_with_video_cache(stream: Stream, cache: VideoKVCache, mask_rows: torch.Tensor | None) -> torch.Tensor:
    """Run a (action) stream whose queries attend to [cached video ; own tokens].

    ``mask_rows`` [Sa, Sv + Sa] are the stream's rows of the joint mask (None = all visible)."""
    x = stream.x
    for i, blk in enumerate(stream.blocks):
        q, k, v, mods = block_qkv(blk, x, stream.t_mod, stream.angles, stream.num_heads)
        kk = torch.cat([cache.k[i].expand(k.shape[0], -1, -1), k], dim=1)
        vv = torch.cat([cache.v[i].expand(v.shape[0], -1, -1), v], dim=1)
        o = attention(q, kk, vv, stream.num_heads, mask_rows)
        x = block_post(blk, x, o, mods, stream.ctx_kv[i], stream.num_heads)
    return x
