"""Action-expert initialisation in place on a FastWAM, checked against the official fixture's output."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from fastwam_ros.model.checkpoints.action_init import init_action_expert_from_video, resize_tensor
from fastwam_ros.model.checkpoints.checkpoint import export_official_state_dict, load_official_checkpoint
from fastwam_ros.model.config import load_config
from fastwam_ros.model.network.fastwam import FastWAM


def test_in_place_init_matches_official_backbone(parity_dir):
    m = FastWAM(load_config("tiny"))
    load_official_checkpoint(m, parity_dir / "checkpoint_official_format.pt")
    enc_before = m.action_expert.action_encoder.weight.clone()
    report = init_action_expert_from_video(m, alpha_scaling=True)
    ref = load_file(str(parity_dir / "action_init_output_alpha.safetensors"))
    flat = export_official_state_dict(m)
    assert set(report) == set(ref)
    for k, v in ref.items():
        assert torch.equal(flat["mixtures.action." + k], v), k
    assert torch.equal(m.action_expert.action_encoder.weight, enc_before)
    assert abs(report["blocks.0.modulation"]["alpha"] - (64 / 32) ** 0.5) < 1e-12  # the modulation quirk


def test_resize_endpoints_and_identity():
    x = torch.arange(12.0).reshape(3, 4)
    y = resize_tensor(x, (2, 4))  # align_corners=True keeps the first and last rows
    assert torch.equal(y[0], x[0]) and torch.equal(y[1], x[2])
    assert torch.equal(resize_tensor(x, (3, 4)), x)
