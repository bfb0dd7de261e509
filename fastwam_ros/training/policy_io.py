"""Checkpoint ↔ the model package's policy-directory format (``fastwam_ros.model.checkpoints.serialization``).

A trained checkpoint's ``policy/`` directory is a normal policy directory (weights, config.json, stats.json with
the normaliser built from the dataset statistics, text_embeds.safetensors with the training instructions) plus
``dataset_stats.json`` (the raw statistics in the official layout), ``perception.json`` (the camera / tiling
config the model was trained with, so deployment tiles the same way) and ``README.md`` (the Hugging Face model card).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fastwam_ros.model.checkpoints.serialization import PERCEPTION_FILE

from .stats import STATS_FILENAME


class _FrozenState:
    """Duck-typed stand-in for a model when only its (gathered) state dict is at hand (FSDP / DeepSpeed)."""

    def __init__(self, cfg: Any, state_dict: Mapping[str, torch.Tensor]) -> None:
        self.cfg = cfg
        self._sd = {k: v.detach().cpu() for k, v in state_dict.items()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self._sd

    def parameters(self):
        return iter(self._sd.values())


def save_policy(path: str | Path, *, model_config: Any, state_dict: Mapping[str, torch.Tensor],
                stats: Mapping[str, Any], perception: Mapping[str, Any] | None,
                text_embeds: Mapping[str, torch.Tensor], prompts: Mapping[str, str], text_encoder_id: str,
                extra: Mapping[str, Any] | None = None, vae: nn.Module | None = None,
                contract: Mapping[str, Any] | None = None) -> Path:
    """Write a deployable policy directory from a full (gathered) model state dict.

    ``vae`` (a diffusers ``AutoencoderKLWan``) is bundled when given: pass it when the VAE is not a released
    Wan2.2 VAE that deployment can load from ``vae_dir`` (e.g. the random tiny VAE of test/demo configs).
    ``contract``: the robot contract the model was trained for (``robot_contract.json``, checked at deployment;
    see :mod:`fastwam_ros.contract`).
    """
    from fastwam_ros.model.checkpoints.serialization import save_policy_dir
    from fastwam_ros.model.processing.normalizer import StateActionNormalizer

    norm = StateActionNormalizer.from_dataset_stats(stats, model_config.normalization.mode,
                                                    model_config.normalization.clamp)
    by_prompt = {prompts[ins]: emb for ins, emb in text_embeds.items()}
    out = save_policy_dir(path, _FrozenState(model_config, state_dict), norm, text_embeds=by_prompt,
                          text_encoder_id=text_encoder_id, raw_stats=stats, extra_meta=dict(extra or {}),
                          vae=vae)
    (out / STATS_FILENAME).write_text(json.dumps(dict(stats), indent=1), encoding="utf-8")
    if perception is not None:
        (out / PERCEPTION_FILE).write_text(json.dumps(dict(perception), indent=2), encoding="utf-8")
    if contract is not None:
        from fastwam_ros.contract import write_contract

        write_contract(out, contract)
    from fastwam_ros.hub import write_model_card

    write_model_card(out)  # last: it summarises every file above (the contract included)
    return out


def load_policy_weights(model: nn.Module, path: str | Path) -> None:
    """Load the weights of a policy directory into ``model`` (strict keys and shapes)."""
    from fastwam_ros.model.checkpoints.serialization import load_policy_dir, load_state_strict

    bundle = load_policy_dir(path)
    load_state_strict(model, bundle.model_state, where=str(Path(path) / "model.safetensors"))
