"""The latency engine (fast_path.FastActionSampler) computes the same chunk as the official algorithm
(ReferenceSampler) and as FastWAM.infer_action; its caches follow the instruction; its static buffers do not carry
state between calls. CPU, tiny config, float32."""

from __future__ import annotations

import pytest
import torch

from fastwam_ros.model.config import load_config
from fastwam_ros.model.inference.fast_path import FastActionSampler, HostStaging
from fastwam_ros.model.inference.reference_sampler import ReferenceSampler
from fastwam_ros.model.network.fastwam import FastWAM

TOL = 1e-5


def _model(variant="fastwam", seed=0):
    torch.manual_seed(seed)
    cfg = load_config("tiny")
    cfg.variant = variant
    m = FastWAM(cfg).eval()
    with torch.no_grad():  # perturb norms and modulation tables so they matter
        for n, p in m.named_parameters():
            if "norm" in n or "scale_shift_table" in n:
                p.add_(0.2 * torch.randn_like(p))
    return m


def _obs(m, seed, b=1):
    g = torch.Generator().manual_seed(seed)
    cfg = m.cfg
    lat = torch.randn(b, cfg.video.in_dim, 1, 4, 6, generator=g)
    prop = torch.randn(b, cfg.proprio_dim, generator=g)
    noise = torch.randn(b, cfg.policy.action_horizon, cfg.action_dim, generator=g)
    return lat, prop, noise


def _text(m, seed):
    g = torch.Generator().manual_seed(1000 + seed)
    t = torch.randn(1, m.cfg.policy.text_len, m.cfg.text_dim, generator=g)
    t[:, 9:] = 0.0  # zeroed (but attended) padding rows, as the text encoder returns them
    return t


@torch.no_grad()
def test_fast_equals_reference_and_infer_action():
    m = _model()
    lat, prop, noise = _obs(m, 1)
    txt = _text(m, 0)
    eng = FastActionSampler(m)
    assert not eng.use_cuda_graphs  # CPU: same code path, no graphs
    eng.set_instruction("fold", txt)
    fast = eng.sample(lat, prop, noise)
    ref = ReferenceSampler(m).sample(lat, txt, prop, noise)
    official = m.infer_action(lat, txt, prop, noise, use_cache=False)  # full joint MoT pass per step, with mask
    assert fast.shape == (1, m.cfg.policy.action_horizon, m.cfg.action_dim)
    assert float(ref.abs().max()) > 0.1  # a non-trivial chunk
    assert torch.allclose(fast, ref, atol=TOL, rtol=0)
    assert torch.allclose(fast, official, atol=TOL, rtol=0)
    assert not eng.graphs_captured


@torch.no_grad()
def test_fast_equals_reference_batch2_and_other_step_count():
    m = _model(seed=3)
    lat, prop, noise = _obs(m, 2, b=2)
    txt = _text(m, 1)
    eng = FastActionSampler(m, num_steps=4, shift=3.0)
    eng.set_instruction("x", txt)
    fast = eng.sample(lat, prop, noise)
    ref = ReferenceSampler(m, num_steps=4, shift=3.0).sample(lat, txt.expand(2, -1, -1), prop, noise)
    assert torch.allclose(fast, ref, atol=TOL, rtol=0)
    # the schedule matters (so the comparison above could fail)
    ref10 = ReferenceSampler(m).sample(lat, txt.expand(2, -1, -1), prop, noise)
    assert float((ref10 - fast).abs().max()) > 1e-3


@torch.no_grad()
def test_instruction_change_invalidates_text_cache():
    m = _model()
    lat, prop, noise = _obs(m, 4)
    ta, tb = _text(m, 10), _text(m, 11)
    ref = ReferenceSampler(m)
    ref_a = ref.sample(lat, ta, prop, noise)
    ref_b = ref.sample(lat, tb, prop, noise)
    assert float((ref_a - ref_b).abs().max()) > 1e-3  # the instruction changes the chunk

    eng = FastActionSampler(m)
    assert eng.set_instruction("a", ta) is True
    out_a = eng.sample(lat, prop, noise)
    assert eng.set_instruction("a", ta) is False  # same instruction: nothing recomputed
    assert eng.set_instruction("b", tb) is True
    out_b = eng.sample(lat, prop, noise)
    assert torch.allclose(out_a, ref_a, atol=TOL, rtol=0)
    assert torch.allclose(out_b, ref_b, atol=TOL, rtol=0)
    # back to "a" with K/V computed elsewhere (the processor's instruction cache): loaded, not recomputed
    assert eng.set_instruction("a", text_kv=m.precompute_text_kv(ta)) is False
    assert eng.stats["text_kv_computed"] == 2 and eng.stats["text_kv_reused"] == 1
    assert torch.allclose(eng.sample(lat, prop, noise), ref_a, atol=TOL, rtol=0)
    with pytest.raises(KeyError):  # the engine keeps no instruction cache of its own
        eng.set_instruction("b")


@torch.no_grad()
def test_static_buffers_do_not_leak_state_between_calls():
    m = _model(seed=5)
    o1, o2 = _obs(m, 7), _obs(m, 8)
    txt = _text(m, 2)

    def fresh(obs):
        e = FastActionSampler(m)
        e.set_instruction("t", txt)
        return e.sample(*obs)

    eng = FastActionSampler(m)
    eng.set_instruction("t", txt)
    s1 = eng.sample(*o1)
    s2 = eng.sample(*o2)
    s1_again = eng.sample(*o1)
    assert float((s1 - s2).abs().max()) > 1e-3
    assert torch.equal(s1, fresh(o1))
    assert torch.equal(s2, fresh(o2))
    assert torch.equal(s1, s1_again)
    # the returned chunk is a copy: later calls do not overwrite it
    kept = s1.clone()
    eng.sample(*o2)
    assert torch.equal(s1, kept)


@torch.no_grad()
def test_signature_change_reallocates_and_timings_cover_every_stage():
    m = _model()
    txt = _text(m, 3)
    eng = FastActionSampler(m)
    eng.set_instruction("t", txt)
    eng.warmup()  # config image 64x96 -> latents [1, 48, 1, 4, 6]
    lat, prop, noise = _obs(m, 9)
    tm: dict[str, float] = {}
    out = eng.sample(lat, prop, noise, timings=tm)
    assert set(tm) == {"prefill"} | {f"step_{i}" for i in range(eng.num_steps)}
    assert all(v >= 0 for v in tm.values())
    # a different image size (other token count) and horizon: new buffers, still exact
    g = torch.Generator().manual_seed(0)
    lat2 = torch.randn(1, 48, 1, 6, 4, generator=g)
    noise2 = torch.randn(1, 8, m.cfg.action_dim, generator=g)
    out2 = eng.sample(lat2, prop, noise2)
    ref2 = ReferenceSampler(m).sample(lat2, txt, prop, noise2)
    assert out2.shape == (1, 8, m.cfg.action_dim)
    assert torch.allclose(out2, ref2, atol=TOL, rtol=0)
    assert torch.allclose(eng.sample(lat, prop, noise), out, atol=0, rtol=0)


def test_input_validation_and_unsupported_variant():
    m = _model()
    eng = FastActionSampler(m)
    lat, prop, noise = _obs(m, 1)
    with pytest.raises(RuntimeError, match="no instruction"):
        eng.sample(lat, prop, noise)
    eng.set_instruction("t", _text(m, 0))
    with pytest.raises(ValueError, match="first_frame_latents"):
        eng.sample(torch.zeros(1, 48, 2, 4, 6), prop, noise)
    with pytest.raises(ValueError, match="proprio_norm"):
        eng.sample(lat, prop[:, :3], noise)
    with pytest.raises(ValueError, match="text_embeds"):
        eng.set_instruction("u", torch.zeros(1, 4, 7))
    with pytest.raises(NotImplementedError):
        FastActionSampler(_model("joint"))


def test_host_staging_round_trip_on_cpu():
    import numpy as np

    st = HostStaging("cpu")
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    d = st.to_device("frame", x)
    assert d.device.type == "cpu" and torch.equal(d, torch.from_numpy(x))
    x2 = x + 1
    d2 = st.to_device("frame", x2, dtype=torch.float64)
    assert d2.dtype == torch.float64 and torch.equal(d2, torch.from_numpy(x2).double())
    h = st.to_host("out", torch.ones(2, 3, dtype=torch.bfloat16))
    assert h.dtype == torch.float32 and torch.equal(h, torch.ones(2, 3))


@torch.no_grad()
def test_bf16_fast_path_matches_reference_with_bf16_schedule():
    m = _model(seed=2).to(torch.bfloat16)
    lat, prop, noise = _obs(m, 3)
    txt = _text(m, 4)
    eng = FastActionSampler(m)
    eng.set_instruction("t", txt)
    # the official quirk: timesteps and Euler deltas in the model dtype
    assert eng._consts["timesteps"].dtype == torch.bfloat16 and eng._consts["deltas"][0].dtype == torch.bfloat16
    fast = eng.sample(lat, prop, noise)
    ref = ReferenceSampler(m).sample(lat, txt, prop, noise)
    assert fast.dtype == torch.bfloat16
    assert torch.allclose(fast.float(), ref.float(), atol=2e-2, rtol=0)


@pytest.mark.slow
@torch.no_grad()
def test_compiled_step_bodies_match_reference():
    """torch.compile (inductor, static shapes) of the prefill / step bodies: the default on GPU, opt-in on CPU."""
    m = _model(seed=6)
    txt = _text(m, 5)
    eng = FastActionSampler(m, num_steps=3, compile=True)
    eng.set_instruction("t", txt)
    eng.warmup()
    assert eng.compiled is True, eng.stats.get("compile_error")
    ref = ReferenceSampler(m, num_steps=3)
    for seed in (11, 12):  # two observations through the same compiled functions and buffers
        lat, prop, noise = _obs(m, seed)
        assert torch.allclose(eng.sample(lat, prop, noise), ref.sample(lat, txt, prop, noise), atol=TOL, rtol=0)
