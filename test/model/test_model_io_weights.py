"""Wan2.2 video-expert weights: diffusers and original layouts, strict coverage, action-expert init."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

from fastwam_ros.model.checkpoints.weights import (
    WeightLoadError,
    convert_diffusers_to_original,
    detect_layout,
    load_wan_into_fastwam,
    load_wan_video_weights,
    original_to_diffusers_key,
    save_wan_video_weights,
)
from fastwam_ros.model.config import load_config
from fastwam_ros.model.network.fastwam import FastWAM


@pytest.fixture(scope="module")
def cfg():
    return load_config("tiny")


@pytest.fixture(scope="module")
def source(cfg):
    """A 'pretrained' Wan video expert with random weights (incl. perturbed norms) in diffusers naming."""
    torch.manual_seed(123)
    m = FastWAM(cfg)
    with torch.no_grad():
        for k, v in m.video_expert.transformer.named_parameters():
            if "norm" in k:
                v.add_(0.1 * torch.randn_like(v))
    return m.video_expert.transformer


def _fresh(cfg, seed=7):
    torch.manual_seed(seed)
    return FastWAM(cfg)


def test_key_map_agrees_with_diffusers_converter(source):
    sd = source.state_dict()
    orig = convert_diffusers_to_original(sd)
    assert "blocks.0.norm3.weight" in orig and "blocks.0.norm2.weight" not in orig  # the LayerNorm name swap
    assert "head.modulation" in orig and "blocks.1.self_attn.o.bias" in orig
    back = convert_wan_transformer_to_diffusers(dict(orig))  # diffusers' own (independent) renaming
    assert set(back) == set(sd)
    assert all(torch.equal(back[k], sd[k]) for k in sd)
    assert original_to_diffusers_key("model.diffusion_model.head.head.weight") == "proj_out.weight"
    assert detect_layout(sd) == "diffusers" and detect_layout(orig) == "original"


def test_both_layouts_give_identical_experts(cfg, source, tmp_path):
    save_wan_video_weights(source, tmp_path / "diffusers" / "transformer", max_shard_bytes=60_000)
    save_wan_video_weights(source, tmp_path / "original", layout="original", max_shard_bytes=60_000)
    assert (tmp_path / "diffusers" / "transformer" / "config.json").is_file()
    assert len(list((tmp_path / "original").glob("diffusion_pytorch_model-*.safetensors"))) > 1
    a, b = _fresh(cfg), _fresh(cfg)
    ra = load_wan_into_fastwam(a, tmp_path / "diffusers")
    rb = load_wan_into_fastwam(b, tmp_path / "original")
    assert (ra.layout, rb.layout) == ("diffusers", "original")
    assert ra.num_tensors == rb.num_tensors == len(source.state_dict())
    sa, sb, src = a.state_dict(), b.state_dict(), source.state_dict()
    assert set(sa) == set(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    for k, v in src.items():
        assert torch.equal(sa["video_expert.transformer." + k], v), k


def test_action_expert_initialised_from_video(cfg, source, tmp_path):
    save_wan_video_weights(source, tmp_path)
    m = _fresh(cfg)
    enc_before = m.action_expert.action_encoder.weight.clone()
    load_wan_into_fastwam(m, tmp_path)
    # Independent check on one tensor: q [hidden_v, hidden_v] -> [heads*hd, hidden_a]: linear interpolation
    # (align_corners) of the input dim, then x sqrt(src_in / tgt_in).
    src_q = source.blocks[0].attn1.to_q.weight
    tgt = m.action_expert.blocks[0].attn1.to_q.weight
    exp = F.interpolate(src_q[None].float(), size=tgt.shape[1], mode="linear", align_corners=True)[0]
    exp = exp * math.sqrt(src_q.shape[1] / tgt.shape[1])
    torch.testing.assert_close(tgt, exp, rtol=0, atol=1e-6)
    # Same-shape tensors are copied; the action encoder keeps its random init.
    assert torch.equal(m.action_expert.blocks[1].attn1.norm_q.weight, source.blocks[1].attn1.norm_q.weight)
    assert torch.equal(m.action_expert.action_encoder.weight, enc_before)


def test_missing_and_unexpected_keys_are_listed(cfg, source, tmp_path):
    from safetensors.torch import save_file

    orig = {k: v.contiguous() for k, v in convert_diffusers_to_original(source.state_dict()).items()}
    bad = dict(orig)
    del bad["blocks.1.ffn.2.weight"]
    bad["blocks.0.extra_adapter.weight"] = torch.zeros(2)
    save_file(bad, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    m = _fresh(cfg)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(WeightLoadError) as ei:
        load_wan_video_weights(m.video_expert.transformer, tmp_path)
    msg = str(ei.value)
    assert "1 missing key(s): blocks.1.ffn.net.2.weight" in msg
    assert "1 unexpected key(s): blocks.0.extra_adapter.weight" in msg
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items()), "failed load modified the model"


def test_shape_mismatch_and_config_mismatch(cfg, source, tmp_path):
    from safetensors.torch import save_file

    sd = {k: v.contiguous() for k, v in source.state_dict().items()}
    sd["proj_out.bias"] = torch.zeros(5)
    save_file(sd, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(WeightLoadError, match=r"shape mismatch\(es\).*proj_out.bias"):
        load_wan_video_weights(_fresh(cfg).video_expert.transformer, tmp_path)
    d = tmp_path / "d"
    save_wan_video_weights(source, d)
    conf = json.loads((d / "config.json").read_text())
    conf["num_layers"] = 30
    (d / "config.json").write_text(json.dumps(conf))
    with pytest.raises(WeightLoadError, match=r"num_layers=30"):
        load_wan_video_weights(_fresh(cfg).video_expert.transformer, d, video_cfg=cfg.video)


def test_missing_files_and_corrupt_file(cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a file nor a directory"):
        load_wan_video_weights(_fresh(cfg).video_expert.transformer, tmp_path / "nope")
    (tmp_path / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightLoadError, match="cannot read weight file"):
        load_wan_video_weights(_fresh(cfg).video_expert.transformer, tmp_path)
