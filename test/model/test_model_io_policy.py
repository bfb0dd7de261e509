"""FastWAMPolicy and the policy-directory format (tiny config, CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fastwam_ros.model.checkpoints.serialization import PolicyFormatError, load_policy_dir
from fastwam_ros.model.config import load_config
from fastwam_ros.model.inference.policy import STAGES, FastWAMPolicy
from fastwam_ros.model.processing.normalizer import LinearNormalizer, StateActionNormalizer
from fastwam_ros.model.processing.text_cache import UnknownInstructionError

INSTR = "fold the towel"


@pytest.fixture(scope="module")
def cfg():
    c = load_config("tiny")
    c.flow.num_inference_steps = 3  # keep CPU time low; the schedule is the model core's business
    return c


@pytest.fixture(scope="module")
def stats(cfg):
    g = np.random.default_rng(0)
    mean_s, std_s = g.normal(size=cfg.proprio_dim), g.uniform(0.5, 2, cfg.proprio_dim)
    mean_a, std_a = g.normal(size=cfg.action_dim), g.uniform(0.5, 2, cfg.action_dim)
    raw = {"state": {"default": {"global_mean": mean_s.tolist(), "global_std": std_s.tolist()}},
           "action": {"default": {"global_mean": mean_a.tolist(), "global_std": std_a.tolist()}}}
    return raw, StateActionNormalizer.from_dataset_stats(raw, "z-score", 5.0)


@pytest.fixture(scope="module")
def policy(cfg, stats):
    return FastWAMPolicy.from_config(cfg, normalizer=stats[1], seed=0)


def _obs(cfg, seed=0):
    g = np.random.default_rng(seed)
    frame = g.uniform(-1, 1, (3, cfg.policy.image_height, cfg.policy.image_width)).astype(np.float32)
    return frame, g.normal(size=cfg.proprio_dim)


def test_predict_shapes_timing_and_default_fixed_seed(policy, cfg):
    frame, state = _obs(cfg)
    a = policy.predict(frame, INSTR, state)
    b = policy.predict(frame, INSTR, state)
    assert a.actions.shape == (cfg.policy.action_horizon, cfg.action_dim)
    assert a.actions_normalized.shape == a.actions.shape
    assert set(a.timing_s) == set(STAGES) and all(v >= 0 for v in a.timing_s.values())
    assert a.timing_s["prefill"] > 0 and a.timing_s["total"] >= a.timing_s["vae_encode"]
    assert a.seed == b.seed == 42  # official: the same seed on every replan
    np.testing.assert_array_equal(a.actions, b.actions)
    assert b.text_cache_hit and np.isfinite(a.actions).all()
    c = policy.predict(frame, INSTR, state, seed=7)
    assert c.seed == 7 and not np.array_equal(c.actions, a.actions)


def test_predict_equals_model_pipeline(policy, cfg, stats):
    """The policy's chunk = model.infer_action on (VAE latents, text embedding, normalised state, seeded noise)."""
    frame, state = _obs(cfg, 1)
    out = policy.predict(frame, INSTR, state, seed=3)
    lat = policy.vae.encode(torch.from_numpy(frame)[None, :, None])
    text = policy.text_cache.encoder.encode(policy.text_cache.prompt_for(INSTR))
    noise = torch.randn((1, cfg.policy.action_horizon, cfg.action_dim), generator=torch.Generator().manual_seed(3))
    raw_s = stats[0]["state"]["default"]
    s_norm = np.clip((state - np.asarray(raw_s["global_mean"])) / (np.asarray(raw_s["global_std"]) + 1e-8), -5, 5)
    s_norm = torch.tensor(s_norm, dtype=torch.float32)[None]
    ref = policy.model.infer_action(lat, text, s_norm, noise)[0]
    np.testing.assert_allclose(out.actions_normalized, ref.numpy(), rtol=0, atol=1e-5)
    # Denormalisation uses the action stats: x = (y - offset) / scale = y * std + mean (z-score).
    raw = stats[0]["action"]["default"]
    expect = ref.numpy() * (np.asarray(raw["global_std"]) + 1e-8) + np.asarray(raw["global_mean"])
    np.testing.assert_allclose(out.actions, expect, rtol=1e-5, atol=1e-5)


def test_fresh_seed_mode_and_explicit_noise(cfg, stats):
    p = FastWAMPolicy.from_config(cfg, normalizer=stats[1], seed=0, seed_mode="fresh")
    frame, state = _obs(cfg, 2)
    a, b = p.predict(frame, INSTR, state), p.predict(frame, INSTR, state)
    assert a.seed != b.seed and not np.array_equal(a.actions, b.actions)
    p.reset()
    assert p.predict(frame, INSTR, state).seed == a.seed  # reset restarts the seed sequence
    noise = torch.randn(cfg.policy.action_horizon, cfg.action_dim, generator=torch.Generator().manual_seed(a.seed))
    n = p.predict(frame, INSTR, state, noise=noise.numpy())
    assert n.seed is None
    np.testing.assert_array_equal(n.actions, a.actions)  # same noise -> same chunk


def test_text_encoder_runs_once_per_instruction(cfg, stats):
    p = FastWAMPolicy.from_config(cfg, normalizer=stats[1], seed=0)
    calls = []
    h = p.text_cache.encoder.model.register_forward_hook(lambda *_: calls.append(1))
    try:
        assert p.set_instruction("open the drawer") is False
        frame, state = _obs(cfg, 3)
        for _ in range(3):
            out = p.predict(frame, None, state)  # None = the current instruction
            assert out.instruction == "open the drawer" and out.text_cache_hit
        assert len(calls) == 1
        p.predict(frame, "close the drawer", state)
        assert len(calls) == 2
    finally:
        h.remove()


@pytest.mark.parametrize(
    "frame_fn,match",
    [
        (lambda f: f[:, :, :-32], "configured for"),
        (lambda f: f.transpose(1, 2, 0), r"\[3, H, W\]"),
        (lambda f: f * 3, r"in \[-1, 1\]"),
        (lambda f: ((f + 1) * 127).astype(np.uint8), "uint8"),
        (lambda f: np.where(np.arange(f.shape[2]) == 5, np.nan, f).astype(np.float32), "NaN"),
    ],
)
def test_frame_validation(policy, cfg, frame_fn, match):
    frame, state = _obs(cfg)
    with pytest.raises(ValueError, match=match):
        policy.predict(frame_fn(frame), INSTR, state)


def test_proprio_and_noise_validation(policy, cfg):
    frame, state = _obs(cfg)
    with pytest.raises(ValueError, match=f"length {cfg.proprio_dim}"):
        policy.predict(frame, INSTR, state[:-1])
    bad = state.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match=r"NaN/inf at index\(es\) \[3\]"):
        policy.predict(frame, INSTR, bad)
    with pytest.raises(ValueError, match="proprio is missing"):
        policy.predict(frame, INSTR, None)
    with pytest.raises(ValueError, match="noise must be"):
        policy.predict(frame, INSTR, state, noise=np.zeros((3, cfg.action_dim)))
    with pytest.raises(ValueError, match="either seed or noise"):
        policy.predict(frame, INSTR, state, seed=1, noise=np.zeros((cfg.policy.action_horizon, cfg.action_dim)))
    with pytest.raises(ValueError, match="non-empty"):
        policy.predict(frame, "  ", state)


def test_save_load_predict_identical(policy, cfg, tmp_path):
    frame, state = _obs(cfg, 4)
    ref = policy.predict(frame, INSTR, state)
    policy.save_pretrained(tmp_path / "p", instructions=[INSTR])
    names = sorted(p.name for p in (tmp_path / "p").iterdir())
    assert names == ["README.md", "config.json", "meta.json", "model.safetensors", "stats.json",
                     "text_embeds.safetensors"]  # README.md: the Hugging Face model card
    meta = json.loads((tmp_path / "p" / "meta.json").read_text())
    assert meta["format_version"] == 1 and meta["variant"] == cfg.variant and meta["bundled_vae"]
    # Without any text encoder: the known instruction still runs from text_embeds.safetensors.
    loaded = FastWAMPolicy.from_pretrained(tmp_path / "p")
    assert loaded.text_cache.encoder is None
    out = loaded.predict(frame, INSTR, state)
    np.testing.assert_array_equal(out.actions, ref.actions)
    np.testing.assert_array_equal(out.actions_normalized, ref.actions_normalized)
    with pytest.raises(UnknownInstructionError, match="no text encoder is loaded"):
        loaded.predict(frame, "an instruction never seen", state)
    # Bundled text encoder: any instruction works and gives the same embedding as the original encoder.
    policy.save_pretrained(tmp_path / "q", include_text_encoder=True)
    q = FastWAMPolicy.from_pretrained(tmp_path / "q")
    other = "pick up the blue cube"
    np.testing.assert_allclose(q.predict(frame, other, state).actions, policy.predict(frame, other, state).actions,
                               rtol=0, atol=1e-6)


def test_policy_dir_errors_name_file_and_keys(policy, cfg, tmp_path):
    d = policy.save_pretrained(tmp_path / "p", instructions=[INSTR])
    (d / "stats.json").rename(d / "stats.bak")
    with pytest.raises(PolicyFormatError, match=r"stats.json missing"):
        load_policy_dir(d)
    (d / "stats.bak").rename(d / "stats.json")

    (d / "config.json").write_text("{not json")
    with pytest.raises(PolicyFormatError, match=r"config.json is corrupt"):
        load_policy_dir(d)
    conf = cfg.to_dict()
    conf["action"]["hidden_dim"] = 48  # a config that does not fit the saved weights
    (d / "config.json").write_text(json.dumps(conf))
    with pytest.raises(PolicyFormatError, match=r"model.safetensors.*shape mismatch\(es\).*action_expert"):
        FastWAMPolicy.from_pretrained(d)
    conf = cfg.to_dict()
    conf["action"]["num_layers"] = conf["video"]["num_layers"] = 3
    (d / "config.json").write_text(json.dumps(conf))
    with pytest.raises(PolicyFormatError, match=r"missing key\(s\).*blocks\.2\."):
        FastWAMPolicy.from_pretrained(d)
    (d / "config.json").write_text(json.dumps(cfg.to_dict()))

    st = json.loads((d / "stats.json").read_text())
    st["action"]["scale"] = st["action"]["scale"][:-1]
    st["action"]["offset"] = st["action"]["offset"][:-1]
    (d / "stats.json").write_text(json.dumps(st))
    with pytest.raises(PolicyFormatError, match=r"stats.json: 'action' has 13 dims.*action_dim is 14"):
        load_policy_dir(d)

    (d / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(PolicyFormatError, match=r"model.safetensors is corrupt"):
        load_policy_dir(d)
    with pytest.raises(PolicyFormatError, match="policy directory not found"):
        load_policy_dir(tmp_path / "none")


def test_denormalisation_uses_saved_minmax_stats(cfg, tmp_path):
    lo, hi = -np.arange(1, cfg.action_dim + 1, dtype=float), np.arange(1, cfg.action_dim + 1, dtype=float) * 3
    norm = StateActionNormalizer(
        LinearNormalizer.from_stats({"min": -np.ones(cfg.proprio_dim), "max": np.ones(cfg.proprio_dim)}, "min/max"),
        LinearNormalizer.from_stats({"min": lo, "max": hi}, "min/max"),
    )
    p = FastWAMPolicy.from_config(cfg, normalizer=norm, seed=1)
    p.save_pretrained(tmp_path / "p", instructions=[INSTR])
    q = FastWAMPolicy.from_pretrained(tmp_path / "p")
    frame, state = _obs(cfg, 5)
    out = q.predict(frame, INSTR, np.clip(state, -1, 1))
    expect = (out.actions_normalized.astype(np.float64) + 1) / 2 * (hi - lo) + lo  # min/max inverse
    np.testing.assert_allclose(out.actions, expect, rtol=1e-5, atol=1e-5)


def test_bf16_policy_and_warmup(cfg, stats, policy):
    p = FastWAMPolicy.from_config(cfg, normalizer=stats[1], seed=0, dtype=torch.bfloat16)
    assert p.model.dtype == torch.bfloat16 and p.vae.dtype == torch.bfloat16
    timing = p.warmup(instruction=INSTR)
    assert set(timing) == set(STAGES)
    frame, state = _obs(cfg, 6)
    out = p.predict(frame, INSTR, state)
    ref = policy.predict(frame, INSTR, state)  # same seeds -> same weights and noise, fp32
    assert out.actions.dtype == np.float32 and np.isfinite(out.actions).all()
    scale = float(np.abs(ref.actions_normalized).max())
    np.testing.assert_allclose(out.actions_normalized, ref.actions_normalized, rtol=0, atol=0.05 * scale)


def test_official_checkpoint_through_from_pretrained(parity_dir, tmp_path):
    """The official release format (fixture A's .pt) + dataset stats + local VAE / text-encoder dirs."""
    from safetensors.torch import load_file

    from fastwam_ros.model.checkpoints.checkpoint import official_key_to_ours
    from fastwam_ros.model.config import config_from_official
    from fastwam_ros.model.processing.encoders import WanVAE, tiny_vae_config
    from fastwam_ros.model.processing.text import build_tiny_text_encoder

    fx = json.loads((parity_dir / "fixtures.json").read_text())
    cfg = config_from_official(fx["config"])
    WanVAE.from_config(tiny_vae_config(), seed=0).vae.save_pretrained(tmp_path / "wan" / "vae")
    enc = build_tiny_text_encoder(cfg.text_dim, max_length=cfg.policy.text_len, seed=0)
    enc.model.save_pretrained(tmp_path / "wan" / "text_encoder")
    enc.tokenizer.save_pretrained(tmp_path / "wan" / "tokenizer")
    d, a = cfg.proprio_dim, cfg.action_dim
    stats = {"state.default.global_mean": [0.5] * d, "state.default.global_std": [2.0] * d,
             "action.default.global_mean": [-1.0] * a, "action.default.global_std": [3.0] * a}
    (tmp_path / "dataset_stats.json").write_text(json.dumps(stats))
    ckpt = parity_dir / "checkpoint_official_format.pt"
    with pytest.raises(ValueError, match="pass stats="):
        FastWAMPolicy.from_pretrained(ckpt, config=cfg, vae_dir=tmp_path / "wan")
    p = FastWAMPolicy.from_pretrained(ckpt, config=cfg, stats=tmp_path / "dataset_stats.json",
                                      vae_dir=tmp_path / "wan", text_encoder_dir=tmp_path / "wan",
                                      num_inference_steps=2)
    ours = p.model.state_dict()
    official = load_file(str(parity_dir / "model_state_dict.safetensors"))
    assert len(official) == len(ours)
    for k, v in official.items():
        assert torch.equal(ours[official_key_to_ours(k)], v), k
    h, w = p.image_size
    frame = np.zeros((3, h, w), np.float32)
    out = p.predict(frame, INSTR, np.full(d, 0.5))
    np.testing.assert_allclose(out.actions, out.actions_normalized * (3.0 + 1e-8) - 1.0, rtol=1e-5, atol=1e-5)


def test_cached_text_kv_matches_uncached(cfg, stats, policy):
    p = FastWAMPolicy.from_config(cfg, normalizer=stats[1], seed=0, cache_text_kv=False)
    frame, state = _obs(cfg, 7)
    a, b = p.predict(frame, INSTR, state), policy.predict(frame, INSTR, state)
    np.testing.assert_allclose(a.actions_normalized, b.actions_normalized, rtol=0, atol=1e-5)
