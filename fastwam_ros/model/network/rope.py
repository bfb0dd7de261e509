"""Rotary position embeddings (RoPE) on interleaved channel pairs, computed in float64 like the official code.

Per axis of size ``d`` the pair ``(x[2i], x[2i+1])`` at integer position ``p`` is rotated by ``p * theta^(-2i/d)``.
Video tokens use 3-D RoPE: the head dim is split into frame / height / width parts with
``h = w = 2 * (head_dim // 6)`` and ``t = head_dim - h - w`` (44/42/42 for 128), like diffusers'
``WanRotaryPosEmbed``. Action tokens use 1-D RoPE over the full head dim at positions 0..H-1.
"""

from __future__ import annotations

import torch


def axis_angles(positions: torch.Tensor, dim: int, theta: float = 10000.0) -> torch.Tensor:
    """Rotation angles [len(positions), dim // 2] (float64, radians) for one axis of ``dim`` channels."""
    if dim % 2:
        raise ValueError(f"RoPE axis dim must be even, got {dim}")
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    return positions.to(torch.float64)[:, None] * inv_freq[None, :]


def video_axis_dims(head_dim: int) -> tuple[int, int, int]:
    """(frame, height, width) channel counts of the 3-D video RoPE."""
    hw = 2 * (head_dim // 6)
    return head_dim - 2 * hw, hw, hw


def video_rope_angles(
    num_frames: int, height: int, width: int, head_dim: int, theta: float = 10000.0, frame_offset: int = 0
) -> torch.Tensor:
    """Angles [F*h*w, head_dim // 2] for video tokens in (frame, row, column) order.

    ``height``/``width`` are token-grid sizes (latent size / patch size). Frames start at ``frame_offset``.
    """
    td, hd, wd = video_axis_dims(head_dim)
    f = axis_angles(torch.arange(frame_offset, frame_offset + num_frames), td, theta)
    h = axis_angles(torch.arange(height), hd, theta)
    w = axis_angles(torch.arange(width), wd, theta)
    grid = torch.cat(
        [
            f[:, None, None, :].expand(num_frames, height, width, -1),
            h[None, :, None, :].expand(num_frames, height, width, -1),
            w[None, None, :, :].expand(num_frames, height, width, -1),
        ],
        dim=-1,
    )
    return grid.reshape(num_frames * height * width, head_dim // 2)


def action_rope_angles(num_tokens: int, head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """Angles [num_tokens, head_dim // 2] of the 1-D action RoPE (positions 0..num_tokens-1, full head dim)."""
    return axis_angles(torch.arange(num_tokens), head_dim, theta)


def apply_rope(x: torch.Tensor, angles: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Rotate ``x`` [B, S, num_heads*head_dim] by ``angles`` [S, head_dim//2]; math in float64, result in x.dtype."""
    b, s, inner = x.shape
    hd = inner // num_heads
    if angles.shape != (s, hd // 2):
        raise ValueError(f"RoPE angles shape {tuple(angles.shape)} does not match tokens ({s}, {hd // 2})")
    xp = x.to(torch.float64).reshape(b, s, num_heads, hd // 2, 2)
    cos = torch.cos(angles).to(x.device)[None, :, None, :]
    sin = torch.sin(angles).to(x.device)[None, :, None, :]
    x0, x1 = xp[..., 0], xp[..., 1]
    out = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    return out.reshape(b, s, inner).to(x.dtype)
