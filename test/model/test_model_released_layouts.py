"""The two released checkpoints' layouts load strictly into the model configs their presets name.

The official key set and shapes are generated here from the reference (fastwam_reference.md §1.2, §1.5, §4.2,
§4.3: original Wan names under ``mixtures.video.`` / ``mixtures.action.``, plus ``proprio_encoder``), not from
the loader's own key map; the full-size models are built on the meta device (no memory, seconds)."""

from __future__ import annotations

import pytest
import torch

from fastwam_ros.model.checkpoints.checkpoint import CheckpointError, convert_official_state_dict
from fastwam_ros.model.config import load_config
from fastwam_ros.model.network.fastwam import FastWAM

# released file -> (model config, action_dim, proprio_dim); README "Using the released checkpoints"
RELEASED = {
    "robotwin_uncond_3cam_384.pt": ("wan22_5b", 14, 14),
    "libero_uncond_2cam224.pt": ("wan22_5b_libero", 7, 8),
}


def _expert_keys(prefix: str, dim: int, attn: int, ffn: int, layers: int, text: int = 4096, freq: int = 256):
    """Keys and shapes shared by both experts (embeddings and blocks), original Wan names."""
    out = {
        f"{prefix}text_embedding.0.weight": (dim, text), f"{prefix}text_embedding.0.bias": (dim,),
        f"{prefix}text_embedding.2.weight": (dim, dim), f"{prefix}text_embedding.2.bias": (dim,),
        f"{prefix}time_embedding.0.weight": (dim, freq), f"{prefix}time_embedding.0.bias": (dim,),
        f"{prefix}time_embedding.2.weight": (dim, dim), f"{prefix}time_embedding.2.bias": (dim,),
        f"{prefix}time_projection.1.weight": (6 * dim, dim), f"{prefix}time_projection.1.bias": (6 * dim,),
    }
    for i in range(layers):
        b = f"{prefix}blocks.{i}."
        for a in ("self_attn", "cross_attn"):
            for p in "qkv":
                out[f"{b}{a}.{p}.weight"], out[f"{b}{a}.{p}.bias"] = (attn, dim), (attn,)
            out[f"{b}{a}.o.weight"], out[f"{b}{a}.o.bias"] = (dim, attn), (dim,)
            out[f"{b}{a}.norm_q.weight"] = out[f"{b}{a}.norm_k.weight"] = (attn,)
        out[f"{b}norm3.weight"] = out[f"{b}norm3.bias"] = (dim,)
        out[f"{b}ffn.0.weight"], out[f"{b}ffn.0.bias"] = (ffn, dim), (ffn,)
        out[f"{b}ffn.2.weight"], out[f"{b}ffn.2.bias"] = (dim, ffn), (dim,)
        out[f"{b}modulation"] = (1, 6, dim)
    return out


def official_layout(action_dim: int, proprio_dim: int) -> dict[str, tuple[int, ...]]:
    """Flat official key -> shape of a released Fast-WAM (uncond) checkpoint on Wan2.2-TI2V-5B."""
    v, a = "mixtures.video.", "mixtures.action."
    keys = _expert_keys(v, 3072, 3072, 14336, 30)
    keys.update({f"{v}patch_embedding.weight": (3072, 48, 1, 2, 2), f"{v}patch_embedding.bias": (3072,),
                 f"{v}head.head.weight": (192, 3072), f"{v}head.head.bias": (192,), f"{v}head.modulation": (1, 2, 3072)})
    keys.update(_expert_keys(a, 1024, 3072, 4096, 30))  # 24 heads x 128 shared with the video expert
    keys.update({f"{a}action_encoder.weight": (1024, action_dim), f"{a}action_encoder.bias": (1024,),
                 f"{a}head.weight": (action_dim, 1024), f"{a}head.bias": (action_dim,)})
    keys.update({"proprio_encoder.weight": (4096, proprio_dim), "proprio_encoder.bias": (4096,)})
    return keys


def _meta_model(config: str) -> FastWAM:
    with torch.device("meta"):
        return FastWAM(load_config(config))


@pytest.mark.parametrize("released", sorted(RELEASED))
def test_released_layout_loads_strictly(released):
    config, action_dim, proprio_dim = RELEASED[released]
    layout = official_layout(action_dim, proprio_dim)
    assert len(layout) == 1651  # 825 video + 824 action + 2 proprio tensors
    model = _meta_model(config)
    flat = {k: torch.empty(s, device="meta") for k, s in layout.items()}
    converted = convert_official_state_dict(model, flat)  # raises listing any missing/unexpected/mis-shaped key
    assert len(converted) == len(model.state_dict()) == 1651


def test_each_layout_is_refused_by_the_other_config():
    """The presets are not interchangeable: the action / proprio widths differ and are named."""
    libero_flat = {k: torch.empty(s, device="meta") for k, s in official_layout(7, 8).items()}
    with pytest.raises(CheckpointError) as e:
        convert_official_state_dict(_meta_model("wan22_5b"), libero_flat)
    for key in ("mixtures.action.action_encoder.weight", "mixtures.action.head.weight", "proprio_encoder.weight"):
        assert key in str(e.value)


@pytest.mark.parametrize(("released", "robot"), [("robotwin_uncond_3cam_384.pt", "robotwin_aloha_agilex"),
                                                 ("libero_uncond_2cam224.pt", "libero_franka")])
def test_preset_robot_files_meet_the_released_checkpoints(tmp_path, released, robot):
    """The checkpoint contract (dimensions, frame size, layout from the model config) holds for the matching
    preset and fails for the other one."""
    from fastwam_ros.contract import compare, contract_from_robot, read_checkpoint_contract

    config, action_dim, proprio_dim = RELEASED[released]
    ckpt = tmp_path / released
    ckpt.write_bytes(b"")  # an official file's contract comes from its model config, not its bytes
    known, _ = read_checkpoint_contract(ckpt, config)
    mine = contract_from_robot(robot)
    assert (mine["action_dim"], mine["proprio_dim"]) == (action_dim, proprio_dim)
    assert compare(known, mine) == []
    other = "libero_franka" if robot == "robotwin_aloha_agilex" else "robotwin_aloha_agilex"
    assert {d.field for d in compare(known, contract_from_robot(other))} >= {"frame_hw", "tiling_layout",
                                                                              "action_dim", "proprio_dim"}
