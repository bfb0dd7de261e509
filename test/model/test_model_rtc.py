"""Real-time chunking: the committed prefix guides the sampler (inpainting at every Euler step)."""

from __future__ import annotations

import math

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


def _tiny_policy(seed: int):
    """A random-weight tiny policy (3 Euler steps), a random frame and a random state."""
    cfg = load_config("tiny")
    cfg.flow.num_inference_steps = 3
    pol = FastWAMPolicy.from_config(cfg, seed=0)
    g = np.random.default_rng(seed)
    frame = g.uniform(-1, 1, (3, cfg.policy.image_height, cfg.policy.image_width)).astype(np.float32)
    return cfg, pol, frame, g.normal(size=cfg.proprio_dim)


def test_policy_takes_the_prefix_in_robot_units():
    cfg, pol, frame, state = _tiny_policy(3)
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


# ---------------------------------------------------------------------------------------------- rtc modes
def test_soft_mask_follows_the_papers_schedule():
    from fastwam_ros.model.network.rtc import rtc_weights

    h, d, overlap = 12, 3, 9  # overlap = H - s in the paper
    w = rtc_weights(h, d, overlap)
    assert w.shape == (h,)
    np.testing.assert_array_equal(w[:d], 1.0)  # the executed delay is hard-constrained
    np.testing.assert_array_equal(w[overlap:], 0.0)  # beyond the previous plan: free
    for i in range(d, overlap):  # c_i = (H - s - i) / (H - s - d + 1), w_i = c_i (e^c_i - 1) / (e - 1)
        c = (overlap - i) / (overlap - d + 1)
        assert w[i] == pytest.approx(c * (math.exp(c) - 1.0) / (math.e - 1.0), rel=1e-12)
    assert np.all(np.diff(w[d:overlap]) < 0) and 0 < w[overlap - 1] < w[d] < 1
    hard = rtc_weights(h, d, overlap, mask="hard")
    np.testing.assert_array_equal(hard, [1.0] * d + [0.0] * (h - d))
    # clipping: the delay never exceeds the overlap, the overlap never the horizon
    np.testing.assert_array_equal(rtc_weights(5, 8, 3), [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(rtc_weights(4, 0, 0), 0.0)
    with pytest.raises(ValueError, match="mask"):
        rtc_weights(4, 1, 2, mask="fuzzy")


def test_guidance_weight_is_the_clipped_pigdm_weight():
    from fastwam_ros.model.network.rtc import guidance_weight

    for sigma in (0.05, 0.3, 0.5, 0.8, 0.97):
        tau = 1.0 - sigma  # the paper's time: 0 = noise, 1 = data
        r2 = (1 - tau) ** 2 / (tau ** 2 + (1 - tau) ** 2)
        assert guidance_weight(sigma, beta=100.0) == pytest.approx((1 - tau) / (tau * r2), rel=1e-12)
        assert guidance_weight(sigma, beta=2.5) == pytest.approx(min(2.5, (1 - tau) / (tau * r2)))
    assert guidance_weight(1.0, 5.0) == 5.0 and guidance_weight(0.0, 5.0) == 5.0  # unbounded ends: clipped
    with pytest.raises(ValueError):
        guidance_weight(0.5, 0.0)


def test_off_is_the_plain_sampler_bit_for_bit(setup):
    cfg, model, lat, text, proprio, noise, prefix = setup
    w = torch.ones(prefix.shape[1])
    plain = model.infer_action(lat, text, proprio, noise)
    assert torch.equal(model.infer_action(lat, text, proprio, noise, prefix=prefix, prefix_weight=w,
                                          rtc_mode="off"), plain)
    eng = FastActionSampler(model)
    eng.set_instruction("k", text)
    plain_fast = eng.sample(lat, proprio, noise)
    for mode in ("inpaint", "guided", "off"):  # an earlier guided / inpainted call leaves nothing behind
        eng.sample(lat, proprio, noise, prefix=prefix, prefix_weight=w, rtc_mode=mode)
        assert torch.equal(eng.sample(lat, proprio, noise, prefix=prefix, prefix_weight=w, rtc_mode="off"),
                           plain_fast)
    with pytest.raises(ValueError, match="rtc mode"):
        eng.sample(lat, proprio, noise, prefix=prefix, rtc_mode="soft")


@pytest.mark.parametrize("mask", ["soft", "hard"])
def test_hard_masked_steps_reproduce_the_previous_plan(setup, mask):
    """Tolerance: 1e-6 (fp32) on the hard-constrained steps, reference and fast path alike."""
    from fastwam_ros.model.network.rtc import rtc_weights

    cfg, model, lat, text, proprio, noise, _ = setup
    h = noise.shape[1]
    d, overlap = 4, 12
    plan = torch.randn(1, overlap, cfg.action_dim, generator=torch.Generator().manual_seed(5))
    w = torch.as_tensor(rtc_weights(h, d, overlap, mask)[:overlap], dtype=torch.float32)
    ref = model.infer_action(lat, text, proprio, noise, prefix=plan, prefix_weight=w)
    eng = FastActionSampler(model)
    eng.set_instruction("k", text)
    fast = eng.sample(lat, proprio, noise, prefix=plan, prefix_weight=w)
    for out in (ref, fast):
        torch.testing.assert_close(out[:, :d], plan[:, :d], rtol=0, atol=1e-6)
        assert (out[:, d:overlap] - plan[:, d:overlap]).abs().max() > 1e-3  # soft / free steps are not pinned


def test_guided_pulls_towards_the_previous_plan_and_the_fast_path_agrees(setup):
    from fastwam_ros.model.network.rtc import rtc_weights

    cfg, model, lat, text, proprio, noise, _ = setup
    h = noise.shape[1]
    d, overlap = 4, 12
    # the previous plan: what the same model sampled from other noise (a plausible, different chunk)
    other = torch.randn(noise.shape, generator=torch.Generator().manual_seed(11))
    plan = model.infer_action(lat, text, proprio, other)[:, :overlap]
    w = torch.as_tensor(rtc_weights(h, d, overlap)[:overlap], dtype=torch.float32)
    free = model.infer_action(lat, text, proprio, noise)
    guided = model.infer_action(lat, text, proprio, noise, prefix=plan, prefix_weight=w, rtc_mode="guided")

    def dist(x):  # weighted squared distance to the previous plan over the overlap
        return float((w[None, :, None] * (x[:, :overlap] - plan) ** 2).sum())

    assert dist(guided) < 0.5 * dist(free)
    assert torch.isfinite(guided).all()
    eng = FastActionSampler(model)
    eng.set_instruction("k", text)
    fast = eng.sample(lat, proprio, noise, prefix=plan, prefix_weight=w, rtc_mode="guided")
    torch.testing.assert_close(fast, guided, rtol=0, atol=1e-5)


def test_policy_reports_mode_and_hard_steps():
    from fastwam_ros.model.network.rtc import rtc_weights

    _, pol, frame, state = _tiny_policy(4)
    plan = pol.predict(frame, "fold the towel", state, seed=1).actions[:10]
    w = rtc_weights(pol.horizon, 3, 10)[:10]
    for mode in ("inpaint", "guided"):
        out = pol.predict(frame, "fold the towel", state, prefix=plan, prefix_weight=w, rtc_mode=mode)
        assert (out.rtc_mode, out.committed_steps, out.guided_steps) == (mode, 3, 10)
    off = pol.predict(frame, "fold the towel", state, prefix=plan, prefix_weight=w, rtc_mode="off")
    assert (off.rtc_mode, off.committed_steps, off.guided_steps) == ("off", 0, 0)
    np.testing.assert_array_equal(off.actions, pol.predict(frame, "fold the towel", state).actions)
