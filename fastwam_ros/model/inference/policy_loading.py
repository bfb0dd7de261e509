"""Builders of :class:`~.policy.FastWAMPolicy` besides its own policy-directory format: random weights from a
config (tests, benchmarks, demos) and a released official checkpoint file + its dataset statistics; plus the
small helpers they share with the policy (dtype names, an identity normaliser)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastwam_ros.model.checkpoints import serialization as ser
from fastwam_ros.model.processing.encoders import WanVAE
from fastwam_ros.model.processing.text import TextEncoder
from fastwam_ros.model.processing.text_cache import TextEmbeddingCache


def as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype).replace("torch.", "")
    aliases = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}
    dt = getattr(torch, aliases.get(name, name), None)
    if not isinstance(dt, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}")
    return dt


class PolicyBuilders:
    """Constructors mixed into FastWAMPolicy (``cls`` is the policy class)."""

    @classmethod
    def from_config(
        cls,
        cfg: Any,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        seed: int = 0,
        normalizer: Any | None = None,
        text_encoder: TextEncoder | None = None,
        vae: WanVAE | None = None,
        cache_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> Any:  # FastWAMPolicy (cls)
        """Random weights (tests, benchmarks, demos). ``cfg``: FastWAMConfig or a preset name / path.

        Defaults: a random VAE and a random tiny-tokenizer UMT5 shaped by ``cfg.vae`` / ``cfg.text_encoder``
        (fine for tiny configs; for the real sizes pass the encoders), and an identity normaliser."""
        from fastwam_ros.model.config import load_config
        from fastwam_ros.model.network.fastwam import FastWAM
        from fastwam_ros.model.processing.text import text_encoder_from_config

        if isinstance(cfg, (str, Path)):
            cfg = load_config(cfg)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = FastWAM(cfg)
        if vae is None:
            vae = WanVAE.from_vae_config(cfg.vae, seed=seed + 1)
        if text_encoder is None:
            text_encoder = text_encoder_from_config(cfg.text_encoder, max_length=cfg.policy.text_len, seed=seed + 2)
        if normalizer is None:
            normalizer = identity_normalizer(cfg.proprio_dim, cfg.action_dim, cfg.normalization)
        cache = TextEmbeddingCache(text_encoder, cache_dir=cache_dir, template=cfg.policy.prompt_template)
        return cls(model, normalizer, vae, cache, device=device, dtype=dtype, **kwargs)

    @classmethod
    def from_official_checkpoint(
        cls,
        checkpoint: str | Path,
        config: Any,
        dataset_stats: str | Path | dict,
        *,
        vae_dir: str | Path,
        text_encoder_dir: str | Path | None = None,
        tokenizer_dir: str | Path | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        cache_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> Any:  # FastWAMPolicy (cls)
        """A released Fast-WAM checkpoint (``.pt`` / flattened ``.safetensors``) + its ``dataset_stats.json``.

        ``config``: FastWAMConfig, preset name or YAML path (``wan22_5b``); the normaliser mode comes from
        ``config.normalization``. Loading is strict (0 missing / 0 unexpected keys)."""
        import json

        from fastwam_ros.model.checkpoints.checkpoint import load_official_checkpoint
        from fastwam_ros.model.checkpoints.file_check import check_official_keys
        from fastwam_ros.model.config import load_config
        from fastwam_ros.model.network.fastwam import FastWAM
        from fastwam_ros.model.processing.normalizer import StateActionNormalizer

        cfg = load_config(config) if isinstance(config, (str, Path)) else config
        check_official_keys(cfg, checkpoint)  # a corrupt / mismatched file fails here, in seconds
        with torch.device(torch.device(device)):
            model = FastWAM(cfg)
        load_official_checkpoint(model, checkpoint)
        stats = dataset_stats if isinstance(dataset_stats, dict) else json.loads(Path(dataset_stats).read_text())
        if isinstance(stats.get("state"), dict) and "scale" in stats["state"]:  # our stats.json layout
            norm = ser.stats_from_dict(stats, where=str(dataset_stats) if not isinstance(dataset_stats, dict)
                                       else "stats", state_dim=cfg.proprio_dim, action_dim=cfg.action_dim)
        else:  # the official dataset_stats.json
            norm = StateActionNormalizer.from_dataset_stats(stats, cfg.normalization.mode, cfg.normalization.clamp)
        vae = WanVAE.from_pretrained(vae_dir, dtype=as_dtype(dtype))
        encoder = None
        if text_encoder_dir is not None:
            encoder = TextEncoder.from_pretrained(
                text_encoder_dir, tokenizer_dir=tokenizer_dir, dtype=as_dtype(dtype), max_length=cfg.policy.text_len
            )
        else:
            raise ValueError("an official checkpoint has no cached instruction embeddings: pass text_encoder_dir=")
        cache = TextEmbeddingCache(encoder, cache_dir=cache_dir, template=cfg.policy.prompt_template)
        return cls(model, norm, vae, cache, device=device, dtype=dtype, **kwargs)


def instruction_from_prompt(prompt: str, template: str) -> str:
    head, _, tail = template.partition("{task}")
    if prompt.startswith(head) and prompt.endswith(tail):
        return prompt[len(head) : len(prompt) - len(tail)] if tail else prompt[len(head) :]
    return prompt


def identity_normalizer(proprio_dim: int, action_dim: int, norm_cfg: Any | None = None) -> Any:
    """State/action normaliser with scale 1 and offset 0 (random-weight policies, benchmarks)."""
    from fastwam_ros.model.processing.normalizer import LinearNormalizer, StateActionNormalizer

    clamp = float(getattr(norm_cfg, "clamp", 5.0)) if norm_cfg is not None else 5.0
    mode = str(getattr(norm_cfg, "mode", "z-score")) if norm_cfg is not None else "z-score"
    return StateActionNormalizer(
        LinearNormalizer(np.ones(proprio_dim), np.zeros(proprio_dim), clamp, mode),
        LinearNormalizer(np.ones(action_dim), np.zeros(action_dim), clamp, mode),
    )


__all__ = ["PolicyBuilders", "as_dtype", "identity_normalizer", "instruction_from_prompt"]
