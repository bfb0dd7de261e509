"""Real-time chunking: the committed prefix guides the sampler (inpainting at every Euler step)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastwam_ros.model.config import load_config
from fastwam_ros.model.inference.fast_path import FastActionSampler
from fastwam_ros.model.inference.policy import FastWAMPolicy
from fastwam_ros.model.network.fastwam import FastWAM


@pytest.fixture(scope="module")
def setup():
    cfg = load_config("tiny")
    cfg.flow.num_inference_steps = 4
    torch.manual_seed(0)
    model = FastWAM(cfg).eval()
    g = torch.Generator().manual_seed(1)
    h, a = cfg.policy.action_horizon, cfg.action_dim
    lat = torch.randn(1, cfg.video.in_dim, 1, cfg.policy.image_height // 16, cfg.policy.image_width // 16, generator=g)
    text = torch.randn(1, cfg.policy.text_len, cfg.text_dim, generator=g)
    proprio = torch.randn(1, cfg.proprio_dim, generator=g)
    noise = torch.randn(1, h, a, generator=g)
    prefix = torch.randn(1, 6, a, generator=g)
    return cfg, model, lat, text, proprio, noise, prefix


def test_committed_steps_are_reproduced_and_the_rest_follows(setup):
    cfg, model, lat, text, proprio, noise, prefix = setup
    free = model.infer_action(lat, text, proprio, noise)
    guided = model.infer_action(lat, text, proprio, noise, prefix=prefix)
    d = prefix.shape[1]
    torch.testing.assert_close(guided[:, :d], prefix, rtol=0, atol=1e-6)  # sigma after the last step is 0
    assert (guided[:, d:] - free[:, d:]).abs().max() > 1e-4  # the free steps see the prefix through attention
    assert torch.isfinite(guided).all()


def test_zero_weight_is_the_official_sampler_bit_for_bit(setup):
    cfg, model, lat, text, proprio, noise, prefix = setup
    free = model.infer_action(lat, text, proprio, noise)
    zero_w = model.infer_action(lat, text, proprio, noise, prefix=prefix, prefix_weight=torch.zeros(prefix.shape[1]))
    assert torch.equal(free, zero_w)


def test_fast_engine_applies_the_same_guidance(setup):
    cfg, model, lat, text, proprio, noise, prefix = setup
    eng = FastActionSampler(model)
    eng.set_instruction("k", text)
    half = torch.linspace(1.0, 0.25, prefix.shape[1])
    for pre, w in ((prefix, None), (prefix, half), (None, None)):
        ref = model.infer_action(lat, text, proprio, noise, prefix=pre, prefix_weight=w)
        out = eng.sample(lat, proprio, noise, prefix=pre, prefix_weight=w)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


def test_bad_prefixes_are_rejected(setup):
    cfg, model, lat, text, proprio, noise, prefix = setup
    with pytest.raises(ValueError, match="prefix"):
        model.infer_action(lat, text, proprio, noise, prefix=prefix[..., :3])
    with pytest.raises(ValueError, match="NaN"):
        model.infer_action(lat, text, proprio, noise, prefix=prefix * float("nan"))
    with pytest.raises(ValueError, match="prefix_weight"):
        model.infer_action(lat, text, proprio, noise, prefix=prefix, prefix_weight=torch.full((6,), 2.0))


def test_policy_takes_the_prefix_in_robot_units():
    cfg = load_config("tiny")
    cfg.flow.num_inference_steps = 3
    pol = FastWAMPolicy.from_config(cfg, seed=0)
    g = np.random.default_rng(3)
    frame = g.uniform(-1, 1, (3, cfg.policy.image_height, cfg.policy.image_width)).astype(np.float32)
    state = g.normal(size=cfg.proprio_dim)
    prev = pol.predict(frame, "fold the towel", state)
    committed = prev.actions[8:13]  # what the controller is executing of the previous chunk
    out = pol.predict(frame, "fold the towel", state, prefix=committed)
    assert out.committed_steps == 5
    np.testing.assert_allclose(out.actions[:5], committed, atol=1e-4)
    plain = FastWAMPolicy.from_config(cfg, seed=0, fast_path=False)
    ref = plain.predict(frame, "fold the towel", state, prefix=committed)
    np.testing.assert_allclose(out.actions, ref.actions, atol=1e-4)
    with pytest.raises(ValueError, match="prefix"):
        pol.predict(frame, "fold the towel", state, prefix=np.zeros((4, cfg.action_dim + 1)))
    assert pol.predict(frame, "fold the towel", state, prefix=np.zeros((0, cfg.action_dim))).committed_steps == 0
