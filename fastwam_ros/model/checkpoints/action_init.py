"""Initialise the action expert from a video-expert (Wan DiT) state dict, as the official
``scripts/preprocess_action_dit_backbone.py`` does ("linear interp" + "alphascale").

For every action-expert key except ``action_encoder.*`` and ``head.*`` (left at their random init) the same
official key of the video expert is copied when shapes match, otherwise resized in float32 one dimension at a time
(dim 0 first) with 1-D linear interpolation (``align_corners=True``). With alpha scaling, a resized tensor with
ndim >= 2 whose LAST dim changed is multiplied by sqrt(src_last / tgt_last); this includes the ``modulation``
table [1, 6, D] (a quirk of the official rule).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from ..config import ActionExpertConfig

SKIP_PREFIXES = ("action_encoder.", "head.")


def resize_tensor(src: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Sequential per-dim linear resize (float32, align_corners=True) of ``src`` to ``shape``."""
    if src.ndim != len(shape):
        raise ValueError(f"cannot resize {tuple(src.shape)} to {tuple(shape)}: rank differs")
    x = src.to(torch.float32)
    for d, n in enumerate(shape):
        if x.shape[d] == n:
            continue
        moved = x.movedim(d, -1)
        lead = moved.shape[:-1]
        flat = moved.reshape(1, -1, moved.shape[-1])
        out = F.interpolate(flat, size=n, mode="linear", align_corners=True)
        x = out.reshape(*lead, n).movedim(-1, d)
    return x


def action_expert_official_shapes(cfg: ActionExpertConfig) -> dict[str, tuple[int, ...]]:
    """Official (original Wan naming) action-expert key -> shape, from a meta-device model."""
    from ..network.action_expert import ActionExpert
    from .checkpoint import _guess_official

    with torch.device("meta"):
        ae = ActionExpert(cfg)
    out = {}
    for k, v in ae.state_dict().items():
        name = _guess_official("action", k)[len("mixtures.action.") :]
        out[name] = tuple(v.shape)
    return out


def init_action_expert_state(
    video_state: Mapping[str, torch.Tensor],
    cfg: ActionExpertConfig,
    alpha_scaling: bool = True,
    dtype: torch.dtype = torch.float32,
) -> tuple[dict[str, torch.Tensor], dict[str, dict]]:
    """(backbone state dict in official action-expert key names, per-key treatment report).

    ``video_state`` uses official video-expert keys (no ``mixtures.video.`` prefix). Raises KeyError listing
    every target key missing from it."""
    shapes = action_expert_official_shapes(cfg)
    targets = {k: s for k, s in shapes.items() if not k.startswith(SKIP_PREFIXES)}
    missing = sorted(k for k in targets if k not in video_state)
    if missing:
        raise KeyError(f"video state dict lacks {len(missing)} key(s) needed by the action expert: {missing}")
    out, report = {}, {}
    for k, tgt in targets.items():
        src = video_state[k]
        if tuple(src.shape) == tuple(tgt):
            out[k] = src.detach().clone().to(dtype)
            report[k] = {"treatment": "copied", "alpha": 1.0}
            continue
        res = resize_tensor(src, tgt)
        alpha = 1.0
        if alpha_scaling and res.ndim >= 2 and src.shape[-1] != tgt[-1]:
            alpha = math.sqrt(src.shape[-1] / tgt[-1])
            res = res * alpha
        out[k] = res.to(dtype)
        dims = [d for d in range(len(tgt)) if src.shape[d] != tgt[d]]
        report[k] = {"treatment": "interpolated dims " + ",".join(map(str, dims)), "alpha": alpha}
    return out, report


def load_into_action_expert(model, backbone: Mapping[str, torch.Tensor]) -> None:
    """Load an official-named backbone into ``model.action_expert`` (FastWAM), leaving the skipped layers."""
    from .checkpoint import official_expert_key_to_ours

    own = model.state_dict()
    new = {}
    for k, v in backbone.items():
        nk = official_expert_key_to_ours("action", k)
        if nk is None or nk not in own:
            raise KeyError(f"backbone key {k} has no action-expert counterpart")
        if tuple(own[nk].shape) != tuple(v.shape):
            raise ValueError(f"backbone {k}: shape {tuple(v.shape)} vs model {tuple(own[nk].shape)}")
        new[nk] = v.to(own[nk].dtype)
    expected = {k for k in own if k.startswith("action_expert.")} - {
        k for k in own if k.startswith(("action_expert.action_encoder.", "action_expert.head."))
    }
    lacking = sorted(expected - set(new))
    if lacking:
        raise KeyError(f"backbone lacks {len(lacking)} action-expert key(s): {lacking}")
    model.load_state_dict(new, strict=False)


def video_state_official(model) -> dict[str, torch.Tensor]:
    """The FastWAM's video-expert weights under official (original Wan) key names, without prefix."""
    from .checkpoint import export_official_state_dict

    pre = "mixtures.video."
    return {k[len(pre) :]: v for k, v in export_official_state_dict(model).items() if k.startswith(pre)}


@torch.no_grad()
def init_action_expert_from_video(model, *, alpha_scaling: bool = True) -> dict[str, dict]:
    """Initialise ``model.action_expert`` (FastWAM) from its own video expert, in place, as the official
    preprocessing does; ``action_encoder``/``head`` are untouched. Returns the per-key treatment report."""
    dtype = model.action_expert.action_encoder.weight.dtype
    state, report = init_action_expert_state(
        video_state_official(model), model.cfg.action, alpha_scaling=alpha_scaling, dtype=dtype
    )
    load_into_action_expert(model, state)
    return report
