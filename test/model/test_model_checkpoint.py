"""Strict official-checkpoint loading: corrupt files and mismatched keys fail with messages naming them."""

from __future__ import annotations

import pytest
import torch

from fastwam_ros.model.checkpoints.checkpoint import (
    CheckpointError,
    export_official_state_dict,
    load_official_checkpoint,
    official_key_to_ours,
)
from fastwam_ros.model.config import load_config
from fastwam_ros.model.network.fastwam import FastWAM


@pytest.fixture(scope="module")
def official(parity_dir):
    return torch.load(parity_dir / "checkpoint_official_format.pt", map_location="cpu", weights_only=True)


def _model():
    return FastWAM(load_config("tiny"))


def test_official_pt_loads_strictly_and_round_trips(official):
    m = _model()
    rep = load_official_checkpoint(m, official)
    assert rep["missing"] == [] and rep["unexpected"] == []
    flat = export_official_state_dict(m)
    expected = {**official["mot"], **{f"proprio_encoder.{k}": v for k, v in official["proprio_encoder"].items()}}
    assert set(flat) == set(expected)
    assert all(torch.equal(flat[k], expected[k]) for k in flat)


def test_key_map_examples():
    assert official_key_to_ours("mixtures.video.blocks.3.norm3.weight") == "video_expert.transformer.blocks.3.norm2.weight"
    assert official_key_to_ours("mixtures.video.head.modulation") == "video_expert.transformer.scale_shift_table"
    assert official_key_to_ours("mixtures.action.blocks.0.ffn.2.bias") == "action_expert.blocks.0.ffn.net.2.bias"
    assert official_key_to_ours("mixtures.action.time_projection.1.weight") == (
        "action_expert.condition_embedder.time_proj.weight"
    )
    assert official_key_to_ours("mixtures.video.bogus") is None


def test_truncated_file_names_the_file(parity_dir, tmp_path):
    data = (parity_dir / "checkpoint_official_format.pt").read_bytes()
    bad = tmp_path / "broken.pt"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="broken.pt"):
        load_official_checkpoint(_model(), bad)
    bad_st = tmp_path / "broken.safetensors"
    bad_st.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="broken.safetensors"):
        load_official_checkpoint(_model(), bad_st)


def test_missing_unexpected_and_shape_mismatch_are_listed(official):
    mot = dict(official["mot"])
    del mot["mixtures.action.blocks.1.cross_attn.norm_k.weight"]
    mot["mixtures.video.blocks.0.extra.weight"] = torch.zeros(3)
    mot["mixtures.video.blocks.0.ffn.0.bias"] = torch.zeros(7)
    payload = {"mot": mot, "proprio_encoder": official["proprio_encoder"]}
    with pytest.raises(CheckpointError) as e:
        load_official_checkpoint(_model(), payload)
    msg = str(e.value)
    assert "1 missing key(s): mixtures.action.blocks.1.cross_attn.norm_k.weight" in msg
    assert "mixtures.video.blocks.0.extra.weight" in msg
    assert "mixtures.video.blocks.0.ffn.0.bias (checkpoint (7,)" in msg


def test_checkpoint_for_other_sizes_is_rejected(official):
    cfg = load_config("tiny")
    cfg.action.action_dim = 7
    with pytest.raises(CheckpointError, match="mixtures.action.head.weight"):
        load_official_checkpoint(FastWAM(cfg), official)
