"""Behaviour of the tiny Fast-WAM: no future-video leakage, cached == uncached inference, text K/V cache."""

from __future__ import annotations

import pytest
import torch

from fastwam_ros.model.config import load_config
from fastwam_ros.model.network.fastwam import FastWAM


def _model(variant="fastwam", seed=0):
    torch.manual_seed(seed)
    cfg = load_config("tiny")
    cfg.variant = variant
    m = FastWAM(cfg).eval()
    with torch.no_grad():  # randomise norms so they matter
        for n, p in m.named_parameters():
            if "norm" in n:
                p.add_(0.2 * torch.randn_like(p))
    return m


def _inputs(m, b=2, frames=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    cfg = m.cfg
    lat = torch.randn(b, cfg.video.in_dim, frames, 4, 6, generator=g)
    txt = torch.randn(b, 5, cfg.text_dim, generator=g)
    prop = torch.randn(b, cfg.proprio_dim, generator=g)
    act = torch.randn(b, cfg.policy.action_horizon, cfg.action_dim, generator=g)
    return lat, txt, prop, act


@torch.no_grad()
def test_fastwam_actions_ignore_future_video_tokens_and_joint_does_not():
    for variant, leaks in (("fastwam", False), ("joint", True)):
        m = _model(variant)
        lat, txt, prop, act = _inputs(m)
        ctx = m.build_context(txt, prop)
        t_v, t_a = torch.tensor([700.0, 300.0]), torch.tensor([900.0, 100.0])
        _, a1 = m.forward_joint(lat, t_v, act, t_a, ctx)
        lat2 = lat.clone()
        lat2[:, :, 1:] = torch.randn_like(lat2[:, :, 1:]) * 3
        v2, a2 = m.forward_joint(lat2, t_v, act, t_a, ctx)
        diff = (a1 - a2).abs().max().item()
        if leaks:
            assert diff > 1e-3
        else:
            assert diff == 0.0
            # ... and equals the first-frame-only pass the cached inference uses
            _, a3 = m.forward_joint(lat[:, :, :1], torch.zeros(2), act, t_a, ctx)
            assert torch.allclose(a1, a3, atol=1e-5)


@torch.no_grad()
@pytest.mark.parametrize("variant", ["fastwam", "idm"])
def test_cached_equals_uncached(variant):
    m = _model(variant)
    lat, txt, prop, act = _inputs(m, b=1)
    ff = lat[:, :, :1]
    kw = {} if variant == "fastwam" else {"video_noise": torch.randn_like(lat)}
    a_c = m.infer_action(ff, txt, prop, act, num_steps=3, use_cache=True, **kw)
    a_u = m.infer_action(ff, txt, prop, act, num_steps=3, use_cache=False, **kw)
    assert a_c.shape == act.shape
    assert torch.allclose(a_c, a_u, atol=1e-5)
    assert not torch.allclose(a_c, act)


@torch.no_grad()
def test_text_kv_cache_matches_and_proprio_still_matters():
    m = _model()
    lat, txt, prop, act = _inputs(m, b=1)
    ff = lat[:, :, :1]
    tkv = m.precompute_text_kv(txt)
    a = m.infer_action(ff, txt, prop, act, num_steps=2)
    b = m.infer_action(ff, txt, prop, act, num_steps=2, text_kv=tkv)
    c = m.infer_action(ff, txt, prop + 1.0, act, num_steps=2, text_kv=tkv)
    assert torch.allclose(a, b, atol=1e-5)
    assert (a - c).abs().max() > 1e-4


def test_training_loss_variants_and_no_video_weight():
    losses = {}
    for variant in ("fastwam", "fastwam_no_video", "joint", "idm"):
        m = _model(variant)
        lat, txt, prop, act = _inputs(m)
        batch = {"video_latents": lat, "actions": act, "proprio": prop, "text_embeds": txt,
                 "action_is_pad": torch.zeros(2, act.shape[1], dtype=torch.bool),
                 "image_is_pad": torch.zeros(2, 9, dtype=torch.bool)}
        out = m.training_loss(batch, generator=torch.Generator().manual_seed(3))
        assert torch.isfinite(out["loss"])
        out["loss"].backward()
        losses[variant] = out
    a, b = losses["fastwam"], losses["fastwam_no_video"]
    assert torch.allclose(b["loss"], b["loss_action"])
    assert torch.allclose(a["loss"], a["loss_video"] + a["loss_action"])


def test_bad_inputs_give_clear_errors():
    m = _model()
    lat, txt, prop, act = _inputs(m, b=1)
    with pytest.raises(ValueError, match="first_frame_latents"):
        m.infer_action(lat, txt, prop, act)
    with pytest.raises(ValueError, match="proprio"):
        m.infer_action(lat[:, :, :1], txt, prop[:, :3], act)
    mj = _model("joint")
    with pytest.raises(ValueError, match="video_noise or num_video_frames"):
        mj.infer_action(lat[:, :, :1], txt, prop, act)


@torch.no_grad()
def test_bf16_model_sees_bf16_timesteps():
    """The official bf16 quirk: schedule timesteps/deltas are cast to the latent dtype."""
    m = _model().to(torch.bfloat16)
    lat, txt, prop, act = _inputs(m, b=1)
    a, tr = m.infer_action(lat[:, :, :1], txt, prop, act, num_steps=10, return_trace=True)
    assert a.dtype == torch.bfloat16 and torch.isfinite(a.float()).all()
    assert tr["timesteps"].dtype == torch.bfloat16
    assert [float(t) for t in tr["timesteps"][:4]] == [1000.0, 980.0, 952.0, 920.0]
