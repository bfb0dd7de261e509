"""Config round trip, mask tables (spec §1.9), RoPE vs diffusers, normaliser layouts, flow schedule."""

from __future__ import annotations

import json

import pytest
import torch

from fastwam_ros.model.config import ConfigError, FastWAMConfig, load_config
from fastwam_ros.model.network.masks import (
    fastwam_mask,
    idm_teacher_forcing_mask,
    joint_mask,
    video_to_video_mask,
)
from fastwam_ros.model.processing.normalizer import LinearNormalizer, NormalizerError, StateActionNormalizer


@pytest.mark.parametrize("name", ["tiny", "wan22_5b"])
def test_config_round_trip(name, tmp_path):
    cfg = load_config(name)
    assert FastWAMConfig.from_dict(cfg.to_dict()) == cfg
    assert FastWAMConfig.from_json(cfg.to_json()) == cfg
    p = tmp_path / "c.json"
    p.write_text(cfg.to_json())
    assert load_config(p) == cfg


def test_real_preset_sizes():
    c = load_config("wan22_5b")
    assert (c.video.hidden_dim, c.video.num_layers, c.action.hidden_dim, c.action.ffn_dim) == (3072, 30, 1024, 4096)
    assert (c.policy.action_horizon, c.policy.text_len, c.flow.num_inference_steps) == (32, 128, 10)
    assert c.policy.prompt_template.format(task="fold") == (
        "A video recorded from a robot's point of view executing the following instruction: fold"
    )


def test_config_errors_are_specific():
    d = load_config("tiny").to_dict()
    d["video"]["num_layerz"] = 3
    with pytest.raises(ConfigError, match="num_layerz"):
        FastWAMConfig.from_dict(d)
    d = load_config("tiny").to_dict()
    d["action"]["num_heads"] = 4
    with pytest.raises(ConfigError, match="num_heads"):
        FastWAMConfig.from_dict(d)
    d = load_config("tiny").to_dict()
    d["variant"] = "uncond"
    with pytest.raises(ConfigError, match="variant"):
        FastWAMConfig.from_dict(d)
    for bad in (-1.0, float("nan"), float("inf"), "0"):
        d = load_config("tiny").to_dict()
        d["policy"]["initial_noise_scale"] = bad
        with pytest.raises(ConfigError, match="initial_noise_scale"):
            FastWAMConfig.from_dict(d)
    with pytest.raises(FileNotFoundError):
        load_config("no_such_preset")


def _table(groups, rows):
    """Expand a group table (spec §1.9) into a token mask; groups = [(name, size)]."""
    names = [n for n, s in groups for _ in range(s)]
    idx = {n: i for i, (n, _) in enumerate(groups)}
    return torch.tensor([[rows[qn][idx[kn]] for kn in names] for qn in names], dtype=torch.bool)


def test_masks_match_spec_tables():
    tpf, sv, sa = 2, 6, 3
    g = [("F0", 2), ("Fut", 4), ("A", 3)]
    fast = {"F0": [1, 0, 0], "Fut": [1, 1, 0], "A": [1, 0, 1]}
    joint = {"F0": [1, 0, 0], "Fut": [1, 1, 0], "A": [1, 1, 1]}
    assert torch.equal(fastwam_mask(sv, sa, tpf), _table(g, fast))
    assert torch.equal(joint_mask(sv, sa, tpf), _table(g, joint))
    gi = [("N0", 2), ("Nf", 4), ("C0", 2), ("Cf", 4), ("A", 3)]
    idm = {"N0": [1, 0, 0, 0, 0], "Nf": [1, 1, 0, 0, 0], "C0": [0, 0, 1, 0, 0], "Cf": [0, 0, 1, 1, 0],
           "A": [0, 0, 1, 1, 1]}
    assert torch.equal(idm_teacher_forcing_mask(sv, sa, tpf), _table(gi, idm))
    assert fastwam_mask(tpf, 32, tpf)[tpf:].all()  # inference: action rows see everything
    assert torch.equal(video_to_video_mask(4, 2, "per_frame_causal"), _table([("a", 2), ("b", 2)],
                                                                              {"a": [1, 0], "b": [1, 1]}))


def test_video_rope_matches_diffusers_tables():
    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

    from fastwam_ros.model.network.rope import video_rope_angles

    rope = WanRotaryPosEmbed(32, (1, 2, 2), 1024)
    cos, sin = rope(torch.zeros(1, 48, 3, 8, 12))
    ang = video_rope_angles(3, 4, 6, 32)
    assert torch.allclose(cos[0, :, 0, 0::2].double(), torch.cos(ang), atol=1e-6)
    assert torch.allclose(sin[0, :, 0, 1::2].double(), torch.sin(ang), atol=1e-6)


def test_normaliser_layouts_and_errors():
    stats = {
        "state": {"default": {"global_mean": [1.0, 2.0], "global_std": [2.0, 4.0]}},
        "action.default.global_mean": [0.0, 10.0],
        "action.default.global_std": [1.0, 5.0],
    }
    n = StateActionNormalizer.from_dataset_stats(stats, "z-score")
    y = n.state.forward([[3.0, 2.0]])
    assert torch.allclose(y, torch.tensor([[1.0, 0.0]]), atol=1e-6)
    assert torch.allclose(n.action.forward([[100.0, 10.0]]), torch.tensor([[5.0, 0.0]]))  # clamped
    assert torch.allclose(n.action.inverse([[6.0, 1.0]]), torch.tensor([[6.0, 15.0]]))  # inverse unclamped
    n2 = StateActionNormalizer.from_dict(json.loads(json.dumps(n.to_dict())))
    assert torch.equal(n2.action.scale, n.action.scale)
    mm = LinearNormalizer.from_stats({"min": [0.0, 1.0], "max": [2.0, 1.00001]}, "min/max")
    assert torch.allclose(mm.forward([[1.0, 1.0]]), torch.tensor([[0.0, 0.0]]))
    with pytest.raises(NormalizerError, match="last dim"):
        mm.forward([[1.0, 2.0, 3.0]])
    with pytest.raises(NormalizerError, match="'std'"):
        LinearNormalizer.from_stats({"mean": [0.0]}, "z-score")


def test_flow_schedule_and_weight_properties():
    from fastwam_ros.model.network.flow import FlowMatchScheduler

    s = FlowMatchScheduler()
    t, d = s.inference_schedule(10)
    assert t[0] == 1000 and abs(float(d.sum()) + 1.0) < 1e-6
    w = s.training_weight(torch.tensor([0.0, 500.0, 1000.0]))
    assert w[0] == 0 and w[2] == 0 and w[1] > 2.0
    tb, _ = s.inference_schedule(10, torch.bfloat16)
    assert tb.dtype == torch.bfloat16 and float(tb[1]) == 980.0
