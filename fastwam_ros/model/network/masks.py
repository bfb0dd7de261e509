"""Boolean MoT attention masks ([query, key], True = may attend), exactly as the official variants build them.

Sequence layouts: Fast-WAM / Joint ``[video (Sv) ; action (Sa)]``; IDM teacher forcing
``[noisy video (Sv) ; conditioning video (Sv) ; action (Sa)]``. ``tpf`` = video tokens per latent frame.
"""

from __future__ import annotations

import torch


def video_to_video_mask(sv: int, tpf: int, mode: str = "first_frame_causal") -> torch.Tensor:
    """[Sv, Sv] video self-attention mask.

    ``first_frame_causal``: all ones except first-frame rows cannot see later frames.
    ``bidirectional``: all ones. ``per_frame_causal``: a token sees its own and earlier frames.
    """
    if tpf <= 0:
        raise ValueError(f"tokens per frame must be positive, got {tpf}")
    if mode == "bidirectional":
        return torch.ones(sv, sv, dtype=torch.bool)
    if mode == "first_frame_causal":
        m = torch.ones(sv, sv, dtype=torch.bool)
        f0 = min(tpf, sv)
        m[:f0, f0:] = False
        return m
    if mode == "per_frame_causal":
        frame = torch.arange(sv) // tpf
        return frame[:, None] >= frame[None, :]
    raise ValueError(f"unknown video attention mask mode {mode!r}")


def fastwam_mask(sv: int, sa: int, tpf: int, video_mode: str = "first_frame_causal") -> torch.Tensor:
    """Fast-WAM ("uncond"): actions see the first frame and actions, never future frames; video never sees actions."""
    m = torch.zeros(sv + sa, sv + sa, dtype=torch.bool)
    m[:sv, :sv] = video_to_video_mask(sv, tpf, video_mode)
    m[sv:, sv:] = True
    m[sv:, : min(tpf, sv)] = True
    return m


def joint_mask(sv: int, sa: int, tpf: int, video_mode: str = "first_frame_causal") -> torch.Tensor:
    """Fast-WAM-Joint: actions see all video tokens and actions; video never sees actions."""
    m = torch.zeros(sv + sa, sv + sa, dtype=torch.bool)
    m[:sv, :sv] = video_to_video_mask(sv, tpf, video_mode)
    m[sv:, :] = True
    return m


def idm_teacher_forcing_mask(sv: int, sa: int, tpf: int, video_mode: str = "first_frame_causal") -> torch.Tensor:
    """Fast-WAM-IDM training over [noisy N ; cond C ; actions]: N and C each see only themselves (video mask),
    actions see C and actions, never N."""
    n = 2 * sv + sa
    m = torch.zeros(n, n, dtype=torch.bool)
    vv = video_to_video_mask(sv, tpf, video_mode)
    m[:sv, :sv] = vv
    m[sv : 2 * sv, sv : 2 * sv] = vv
    m[2 * sv :, sv:] = True
    return m


def variant_mask(variant: str, sv: int, sa: int, tpf: int, video_mode: str = "first_frame_causal") -> torch.Tensor:
    """The training / joint-inference mask of a variant (IDM: its stage-2 inference mask = Joint)."""
    if variant in ("fastwam", "fastwam_no_video"):
        return fastwam_mask(sv, sa, tpf, video_mode)
    if variant in ("joint", "idm"):
        return joint_mask(sv, sa, tpf, video_mode)
    raise ValueError(f"unknown variant {variant!r}")
