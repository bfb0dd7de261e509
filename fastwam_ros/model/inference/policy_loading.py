"""Loading and saving :class:`~.policy.FastWAMPolicy`: its policy directory (``from_pretrained`` /
``save_pretrained``, with the robot-contract check and the fail-fast file checks before any model is built), a
released official checkpoint file + its dataset statistics, and random weights from a config (tests, benchmarks,
demos); plus the small helpers they share with the policy (dtype names, an identity normaliser)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
    """Constructors and :meth:`save_pretrained`, mixed into FastWAMPolicy (``cls`` is the policy class)."""

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        text_encoder_dir: str | Path | None = None,
        vae_dir: str | Path | None = None,
        cache_dir: str | Path | None = None,
        *,
        tokenizer_dir: str | Path | None = None,
        config: Any | None = None,
        stats: str | Path | dict | None = None,
        num_inference_steps: int | None = None,
        seed_mode: str = "fixed",
        robot: Any | None = None,
        variant: str | None = None,
        joint_map: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:  # FastWAMPolicy (cls)
        """Load a policy directory written by :meth:`save_pretrained` (see :mod:`.serialization`), or, when
        ``path`` is a FILE, a released official checkpoint (needs ``stats`` = its dataset_stats.json and
        ``vae_dir``; ``config`` defaults to the ``wan22_5b`` preset) via :meth:`from_official_checkpoint`.

        VAE: ``vae_dir`` (local diffusers ``vae/`` or pipeline root) if given, else the bundled VAE weights.
        Text: ``text_encoder_dir`` (local UMT5) if given, else a bundled ``text_encoder/``, else only the
        instructions stored in ``text_embeds.safetensors`` can be used. ``cache_dir``: disk cache of
        instruction embeddings (optional).

        ``path`` may also be a Hugging Face Hub id (``org/name`` or ``org/name@revision``) when no such local path
        exists: it resolves through ``huggingface_hub.snapshot_download`` (the local cache first; only the cache
        under ``HF_HUB_OFFLINE=1``). The encoders (``vae_dir``, ``text_encoder_dir``) are never downloaded.

        ``robot`` (robot file path / name / RobotSpec) and ``variant`` (the requested attention variant): the
        checkpoint's robot contract is checked against them BEFORE any model is built; a mismatch raises one
        :class:`~fastwam_ros.errors.ContractError` naming every differing field. ``joint_map`` ({checkpoint
        joint: robot joint}) renames joints on purpose (logged). See :mod:`fastwam_ros.contract`.
        """

        from fastwam_ros.hub import resolve_policy_dir

        path = resolve_policy_dir(path)  # a Hub id -> its local snapshot, before the contract is read
        contract = None
        if robot is not None or variant is not None or joint_map:
            from fastwam_ros.contract import check_checkpoint

            is_file = Path(path).expanduser().is_file()
            contract = check_checkpoint(path, robot, variant=variant, joint_map=joint_map,
                                        config=(config if config is not None else "wan22_5b") if is_file else None)
        policy = cls._from_pretrained(path, device, dtype, text_encoder_dir, vae_dir, cache_dir,
                                      tokenizer_dir=tokenizer_dir, config=config, stats=stats,
                                      num_inference_steps=num_inference_steps, seed_mode=seed_mode, **kwargs)
        policy.robot_contract = contract
        if robot is not None:
            from fastwam_ros.robot import load_robot

            policy.robot = load_robot(robot)  # its perception config tiles raw observations for this checkpoint
            policy.joint_map = dict(joint_map or {})
        return policy

    @classmethod
    def _from_pretrained(cls, path, device, dtype, text_encoder_dir, vae_dir, cache_dir, *, tokenizer_dir, config,
                         stats, num_inference_steps, seed_mode, **kwargs: Any) -> Any:  # FastWAMPolicy (cls)
        dtype = as_dtype(dtype)
        kwargs.update(num_inference_steps=num_inference_steps, seed_mode=seed_mode)
        if Path(path).expanduser().is_file():
            from fastwam_ros.model.checkpoints.file_check import check_official_keys
            from fastwam_ros.model.config import FastWAMConfig, load_config

            if not isinstance(config, FastWAMConfig):
                config = load_config(config if config is not None else "wan22_5b")
            check_official_keys(config, Path(path).expanduser())  # header + key set before any model is built
            if stats is None:
                raise ValueError(f"{path} is an official checkpoint file: pass stats= (its dataset_stats.json)")
            if vae_dir is None:
                raise ValueError(f"{path} is an official checkpoint file: pass vae_dir= (local Wan2.2 VAE)")
            return cls.from_official_checkpoint(
                path, config, stats, vae_dir=vae_dir,
                text_encoder_dir=text_encoder_dir, tokenizer_dir=tokenizer_dir, device=device, dtype=dtype,
                cache_dir=cache_dir, **kwargs,
            )
        if config is not None or stats is not None:
            raise ValueError(
                f"{path} is a policy directory: its config.json and stats.json are authoritative; do not pass "
                "config= / stats= (those are for official checkpoint files)"
            )
        # diffusers takes seconds to import: after the file checks
        from fastwam_ros.model.network.fastwam import FastWAM

        b = ser.load_policy_dir(path)
        cfg = b.config
        with torch.device(torch.device(device)):  # initialise where the model will live (fast on GPU)
            model = FastWAM(cfg)
        ser.load_state_strict(model, b.model_state, where=str(b.path / ser.WEIGHTS_FILE))
        if vae_dir is not None:
            vae = WanVAE.from_pretrained(vae_dir, dtype=dtype)
        elif b.vae_state is not None:
            vae = WanVAE.from_vae_config(cfg.vae)
            ser.load_state_strict(vae.vae, b.vae_state, where=f"{b.path / ser.WEIGHTS_FILE} (vae.*)")
        else:
            raise ser.PolicyFormatError(
                f"{b.path}: no VAE weights bundled in {ser.WEIGHTS_FILE}; pass vae_dir= (a local "
                "Wan2.2-TI2V-5B-Diffusers/vae directory)"
            )
        enc_dir = text_encoder_dir or (b.text_encoder_dir / ser.TEXT_ENCODER_SUBDIR if b.text_encoder_dir else None)
        encoder = None
        if enc_dir is not None:
            tok_dir = tokenizer_dir
            if tok_dir is None and text_encoder_dir is None and b.text_encoder_dir is not None:
                tok_dir = b.text_encoder_dir / ser.TOKENIZER_SUBDIR
            encoder = TextEncoder.from_pretrained(
                enc_dir, tokenizer_dir=tok_dir, dtype=dtype, max_length=cfg.policy.text_len
            )
        if encoder is None and not b.text_embeds:
            raise ser.PolicyFormatError(
                f"{b.path}: no text encoder (pass text_encoder_dir=) and no {ser.TEXT_EMBEDS_FILE}; "
                "the policy could not embed any instruction"
            )
        cache = TextEmbeddingCache(
            encoder,
            encoder_id=None if encoder is not None else b.text_encoder_id,
            cache_dir=cache_dir,
            template=cfg.policy.prompt_template,
        )
        for prompt, emb in b.text_embeds.items():
            cache.put_prompt(prompt, emb, encoder_id=b.text_encoder_id)
        if kwargs.get("perception_config") is None:
            kwargs["perception_config"] = ser.load_perception(b.path)
        return cls(model, b.normalizer, vae, cache, device=device, dtype=dtype, **kwargs)

    def save_pretrained(
        self,
        path: str | Path,
        *,
        instructions: Iterable[str] | None = None,
        include_vae: bool = True,
        include_text_encoder: bool = False,
        raw_stats: dict | None = None,
        robot: Any | None = None,
    ) -> Path:
        """Write a policy directory. Cached embeddings of the current encoder (plus ``instructions``, encoded
        now) go to ``text_embeds.safetensors``; the VAE weights are bundled unless ``include_vae=False``; the
        Hugging Face model card goes to ``README.md``.
        ``robot`` (robot file / RobotSpec): write its contract (``robot_contract.json``); default: the contract
        this policy was loaded with, if it had a complete one."""
        from fastwam_ros import contract as rc

        if robot is not None:
            contract = rc.contract_from_robot(robot, variant=self.cfg.variant)
            mine = {"proprio_dim": self.proprio_dim, "action_dim": self.action_dim, "frame_hw": list(self.image_size)}
            bad = rc.compare(mine, contract)
            if bad:
                raise rc.ContractError("(this policy)", str(getattr(robot, "source", robot)), bad)
        else:
            held = getattr(self, "robot_contract", None) or {}
            contract = held if all(k in held for k in rc.FIELDS) else None
        for ins in instructions or ():
            self.text_cache.get(ins)
        entries = self.text_cache.entries()
        enc = self.text_cache.encoder if include_text_encoder else None
        if include_text_encoder and enc is None:
            raise ValueError("include_text_encoder=True but this policy has no text encoder")
        out = ser.save_policy_dir(
            path,
            self.model,
            self.normalizer,
            vae=self.vae.vae if include_vae else None,
            text_embeds=entries,
            text_encoder_id=self.text_cache.encoder_id,
            text_encoder=enc,
            raw_stats=raw_stats,
        )
        if contract is not None:
            rc.write_contract(out, contract)
        elif (Path(out) / rc.CONTRACT_FILE).exists():
            (Path(out) / rc.CONTRACT_FILE).unlink()
        from fastwam_ros.hub import write_model_card

        write_model_card(out)
        return out

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
