"""FastWAMPolicy: one observation (tiled frame, instruction, raw proprio) -> one denormalised action chunk.

This is the API the ROS policy node and the benchmarks call::

    policy = FastWAMPolicy.from_pretrained("path/to/policy_dir", device="cuda", dtype=torch.bfloat16,
                                           text_encoder_dir=".../Wan2.2-TI2V-5B-Diffusers",
                                           cache_dir="~/.cache/fastwam_ros/text")
    policy.set_instruction("fold the towel")          # runs the text encoder once, ahead of time
    out = policy.predict(frame_chw_in_minus1_1, "fold the towel", joint_positions)
    out.actions            # [H, action_dim] float32, physical units (denormalised)
    out.timing_s           # per-stage seconds

Per call (official Fast-WAM inference, reference spec §2.2): proprio -> state normaliser (clamped); frame ->
VAE posterior mean, normalised; instruction -> cached text embedding (the encoder runs once per instruction);
initial noise [1, H, A] from a fresh CPU generator seeded with ``seed`` (default: the config's seed, 42, on
every call, as the official evaluation does); the model prefills the first-frame video K/V and runs the Euler
action steps; the chunk is denormalised with the action normaliser (no clamp).
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastwam_ros.model import serialization as ser
from fastwam_ros.model.encoders import WanVAE
from fastwam_ros.model.rtc import DEFAULT_GUIDANCE_BETA, check_mode
from fastwam_ros.model.text import TextEmbeddingCache, TextEncoder

FRAME_RANGE_TOL = 1e-3  # values may exceed [-1, 1] by this much (resampling overshoot)
SEED_MODES = ("fixed", "fresh")
STAGES = ("h2d", "vae_encode", "text", "prefill", "action_steps", "d2h", "denormalise", "total")


@dataclass
class PolicyOutput:
    """One predicted chunk.

    actions: [H, action_dim] float32, denormalised (the dataset's physical units);
    actions_normalized: [H, action_dim] float32, the model's output;
    timing_s: seconds per stage (``STAGES``; ``prefill`` is 0 for variants without a cache);
    seed: the seed of the initial noise (None when the caller passed ``noise``);
    text_cache_hit: whether the instruction embedding came from the cache (no encoder run);
    committed_steps: how many steps were hard-constrained (weight 1) to the previous plan (real-time chunking);
    guided_steps: how many steps had a non-zero weight (hard + soft); rtc_mode: the mode used (``off`` when
    no previous plan was given).
    """

    actions: np.ndarray
    actions_normalized: np.ndarray
    timing_s: dict[str, float]
    seed: int | None
    instruction: str
    text_cache_hit: bool = False
    extras: dict[str, Any] = field(default_factory=dict)
    committed_steps: int = 0
    guided_steps: int = 0
    rtc_mode: str = "off"

    @property
    def horizon(self) -> int:
        return int(self.actions.shape[0])


def _as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype).replace("torch.", "")
    aliases = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}
    dt = getattr(torch, aliases.get(name, name), None)
    if not isinstance(dt, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}")
    return dt


class FastWAMPolicy:
    """Observation -> action chunk, with the encoders, the normaliser and the instruction caches.

    Thread-safety: not thread-safe; use it from one worker thread (the design's single inference thread).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        normalizer: Any,
        vae: WanVAE,
        text_cache: TextEmbeddingCache,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        seed_mode: str = "fixed",
        seed: int | None = None,
        cache_text_kv: bool = True,
        check_image_size: bool = True,
        num_inference_steps: int | None = None,
        fast_path: bool | None = None,
    ):
        """``fast_path``: sample with :class:`~fastwam_ros.model.fast_path.FastActionSampler` (per-instruction
        context K/V, static buffers, mask-free attention, CUDA graphs on GPU). None = whenever the variant
        supports it; False = the plain ``FastWAM.infer_action`` loop (reference behaviour)."""
        if seed_mode not in SEED_MODES:
            raise ValueError(f"seed_mode must be one of {SEED_MODES}, got {seed_mode!r}")
        self.device = torch.device(device)
        self.dtype = _as_dtype(dtype)
        self.cfg = model.cfg
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.vae = vae.to(device=self.device, dtype=self.dtype).eval()
        if text_cache.encoder is not None:
            text_cache.encoder.to(device=self.device, dtype=self.dtype)
        self.text_cache = text_cache
        self.normalizer = normalizer
        if normalizer.state.dim != self.cfg.proprio_dim or normalizer.action.dim != self.cfg.action_dim:
            raise ValueError(
                f"normaliser dims (state {normalizer.state.dim}, action {normalizer.action.dim}) do not match the "
                f"config (proprio_dim {self.cfg.proprio_dim}, action_dim {self.cfg.action_dim})"
            )
        if self.vae.z_dim != self.cfg.video.in_dim:
            raise ValueError(f"VAE z_dim {self.vae.z_dim} != video expert in_dim {self.cfg.video.in_dim}")
        enc = text_cache.encoder
        if enc is not None and (enc.text_dim != self.cfg.text_dim or enc.max_length != self.cfg.policy.text_len):
            raise ValueError(
                f"text encoder gives [{enc.max_length}, {enc.text_dim}] embeddings, the model expects "
                f"[{self.cfg.policy.text_len}, {self.cfg.text_dim}] (policy.text_len, text_dim)"
            )
        if text_cache.template != self.cfg.policy.prompt_template:
            raise ValueError("text cache prompt template differs from config.policy.prompt_template")
        self.seed_mode = seed_mode
        self.seed = int(self.cfg.policy.seed if seed is None else seed)
        self.cache_text_kv = bool(cache_text_kv)
        if num_inference_steps is not None and int(num_inference_steps) < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        self.num_inference_steps = None if num_inference_steps is None else int(num_inference_steps)
        self.check_image_size = bool(check_image_size)
        self.instruction: str | None = None
        self._rng = random.Random(self.seed)
        self.robot_contract: dict[str, Any] | None = None  # set by from_pretrained(robot=...)
        self.robot: Any | None = None  # the RobotSpec it was checked against (from_pretrained(robot=...))
        self.joint_map: dict[str, str] = {}  # explicit checkpoint -> robot joint renames in force
        self._text_kv: OrderedDict[str, Any] = OrderedDict()
        self._text_dev: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._max_instr_entries = 16
        self._prefill_s = 0.0
        self._install_prefill_timer()
        from .fast_path import SUPPORTED_VARIANTS, FastActionSampler, HostStaging

        if fast_path and self.cfg.variant not in SUPPORTED_VARIANTS:
            raise ValueError(f"fast_path needs variant in {SUPPORTED_VARIANTS}, got {self.cfg.variant!r}")
        use_engine = self.cfg.variant in SUPPORTED_VARIANTS if fast_path is None else bool(fast_path)
        self._engine = FastActionSampler(self.model, num_steps=self.num_inference_steps) if use_engine else None
        self._staging = HostStaging(self.device)

    # ------------------------------------------------------------------------------------------ builders
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
    ) -> FastWAMPolicy:
        """Random weights (tests, benchmarks, demos). ``cfg``: FastWAMConfig or a preset name / path.

        Defaults: a random VAE and a random tiny-tokenizer UMT5 shaped by ``cfg.vae`` / ``cfg.text_encoder``
        (fine for tiny configs; for the real sizes pass the encoders), and an identity normaliser."""
        from fastwam_ros.model.config import load_config
        from fastwam_ros.model.fastwam import FastWAM
        from fastwam_ros.model.text import text_encoder_from_config

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
    ) -> FastWAMPolicy:
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
                         stats, num_inference_steps, seed_mode, **kwargs: Any) -> FastWAMPolicy:
        from fastwam_ros.model.fastwam import FastWAM

        dtype = _as_dtype(dtype)
        kwargs.update(num_inference_steps=num_inference_steps, seed_mode=seed_mode)
        if Path(path).expanduser().is_file():
            if stats is None:
                raise ValueError(f"{path} is an official checkpoint file: pass stats= (its dataset_stats.json)")
            if vae_dir is None:
                raise ValueError(f"{path} is an official checkpoint file: pass vae_dir= (local Wan2.2 VAE)")
            return cls.from_official_checkpoint(
                path, config if config is not None else "wan22_5b", stats, vae_dir=vae_dir,
                text_encoder_dir=text_encoder_dir, tokenizer_dir=tokenizer_dir, device=device, dtype=dtype,
                cache_dir=cache_dir, **kwargs,
            )
        if config is not None or stats is not None:
            raise ValueError(
                f"{path} is a policy directory: its config.json and stats.json are authoritative; do not pass "
                "config= / stats= (those are for official checkpoint files)"
            )
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
        return cls(model, b.normalizer, vae, cache, device=device, dtype=dtype, **kwargs)

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
    ) -> FastWAMPolicy:
        """A released Fast-WAM checkpoint (``.pt`` / flattened ``.safetensors``) + its ``dataset_stats.json``.

        ``config``: FastWAMConfig, preset name or YAML path (``wan22_5b``); the normaliser mode comes from
        ``config.normalization``. Loading is strict (0 missing / 0 unexpected keys)."""
        import json

        from fastwam_ros.model.checkpoint import load_official_checkpoint
        from fastwam_ros.model.config import load_config
        from fastwam_ros.model.fastwam import FastWAM
        from fastwam_ros.model.normalizer import StateActionNormalizer

        cfg = load_config(config) if isinstance(config, (str, Path)) else config
        with torch.device(torch.device(device)):
            model = FastWAM(cfg)
        load_official_checkpoint(model, checkpoint)
        stats = dataset_stats if isinstance(dataset_stats, dict) else json.loads(Path(dataset_stats).read_text())
        if isinstance(stats.get("state"), dict) and "scale" in stats["state"]:  # our stats.json layout
            norm = ser.stats_from_dict(stats, where=str(dataset_stats) if not isinstance(dataset_stats, dict)
                                       else "stats", state_dim=cfg.proprio_dim, action_dim=cfg.action_dim)
        else:  # the official dataset_stats.json
            norm = StateActionNormalizer.from_dataset_stats(stats, cfg.normalization.mode, cfg.normalization.clamp)
        vae = WanVAE.from_pretrained(vae_dir, dtype=_as_dtype(dtype))
        encoder = None
        if text_encoder_dir is not None:
            encoder = TextEncoder.from_pretrained(
                text_encoder_dir, tokenizer_dir=tokenizer_dir, dtype=_as_dtype(dtype), max_length=cfg.policy.text_len
            )
        else:
            raise ValueError("an official checkpoint has no cached instruction embeddings: pass text_encoder_dir=")
        cache = TextEmbeddingCache(encoder, cache_dir=cache_dir, template=cfg.policy.prompt_template)
        return cls(model, norm, vae, cache, device=device, dtype=dtype, **kwargs)

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

    # ------------------------------------------------------------------------------------------ properties
    @property
    def action_dim(self) -> int:
        return int(self.cfg.action_dim)

    @property
    def proprio_dim(self) -> int:
        return int(self.cfg.proprio_dim)

    @property
    def horizon(self) -> int:
        return int(self.cfg.policy.action_horizon)

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) pixels of the tiled frame the model was configured for."""
        return int(self.cfg.policy.image_height), int(self.cfg.policy.image_width)

    # ------------------------------------------------------------------------------------------ episode API
    def reset(self) -> None:
        """Start of an episode: restart the fresh-seed sequence. Instruction caches are kept (still valid)."""
        self._rng = random.Random(self.seed)

    def set_instruction(self, text: str) -> bool:
        """Make ``text`` the current instruction and compute its embedding (and context K/V) now, off the
        control path. Returns True if it was already cached."""
        text_emb, text_kv, hit, key = self._prepare_text(text)
        if self._engine is not None:
            self._engine_instruction(key, text_emb, text_kv)
        self.instruction = text
        return hit

    def warmup(self, instruction: str | None = None, iterations: int = 1) -> dict[str, float]:
        """Run ``iterations`` full predictions on a blank frame (allocations, kernels, caches); returns the
        last timing. Uses ``instruction``, else the current instruction, else a cached one, else 'warmup'."""
        ins = instruction or self.instruction
        if ins is None:
            cached = self.text_cache.entries() if self.text_cache.encoder is None else {}
            ins = _instruction_from_prompt(next(iter(cached)), self.cfg.policy.prompt_template) if cached else "warmup"
        h, w = self.image_size
        frame = np.zeros((3, h, w), np.float32)
        proprio = self.normalizer.state.inverse(torch.zeros(self.proprio_dim)).numpy()
        out = None
        for _ in range(max(1, int(iterations))):
            out = self.predict(frame, ins, proprio)
        return dict(out.timing_s) if out is not None else {}

    # ------------------------------------------------------------------------------------------ predict
    def predict(
        self,
        frame: np.ndarray | torch.Tensor,
        instruction: str | None,
        proprio: np.ndarray | torch.Tensor | Iterable[float],
        *,
        seed: int | None = None,
        noise: np.ndarray | torch.Tensor | None = None,
        prefix: np.ndarray | torch.Tensor | None = None,
        prefix_weight: np.ndarray | torch.Tensor | None = None,
        rtc_mode: str = "inpaint",
        guidance_beta: float = DEFAULT_GUIDANCE_BETA,
    ) -> PolicyOutput:
        """One chunk. ``frame``: float [3, H, W] in [-1, 1] (the tiled image); ``instruction``: task text (None =
        the current one); ``proprio``: RAW state vector [proprio_dim]. ``seed`` overrides the seed policy;
        ``noise`` [H, action_dim] (or [1, H, action_dim]) fixes the initial noise exactly. ``prefix``
        [d, action_dim] RAW actions already committed for this chunk's first d steps (real-time chunking: the
        controller executes them while this chunk is computed); the sampler is guided to reproduce them so the
        new chunk continues from them. Rows beyond the horizon are ignored. ``prefix_weight`` [d] in [0, 1]:
        how strongly each prefix row is enforced (default 1; 0 leaves that step free; the RTC soft mask comes
        from :func:`fastwam_ros.model.rtc.rtc_weights`). ``rtc_mode``: ``inpaint`` | ``guided`` | ``off``
        (:mod:`fastwam_ros.model.rtc`); ``guidance_beta``: the guided mode's weight clip β."""
        t_start = time.perf_counter()
        timing = dict.fromkeys(STAGES, 0.0)
        if instruction is None:
            if self.instruction is None:
                raise ValueError("no instruction given and none set (call set_instruction or pass instruction=)")
            instruction = self.instruction
        frame_t = self._check_frame(frame)
        state = self._check_proprio(proprio)
        noise_t, used_seed = self._initial_noise(seed, noise)
        prefix_norm = self._check_prefix(prefix) if check_mode(rtc_mode) != "off" else None
        weight = None
        if prefix_norm is not None and prefix_weight is not None:
            weight = torch.as_tensor(np.asarray(prefix_weight, dtype=np.float32)).reshape(-1)
            if weight.numel() < prefix_norm.shape[1]:
                raise ValueError(f"prefix_weight has {weight.numel()} entries for {prefix_norm.shape[1]} prefix rows")
            weight = weight[: prefix_norm.shape[1]]

        # h2d (+ state normalisation, clamped as in the official processor)
        t0 = self._now()
        proprio_norm = self.normalizer.state.forward(state).reshape(1, -1)
        frame_d = self._staging.to_device("frame", frame_t, self.dtype).unsqueeze(0)
        proprio_d = self._staging.to_device("proprio", proprio_norm, self.dtype)
        noise_d = self._staging.to_device("noise", noise_t, self.dtype)
        timing["h2d"] = self._now() - t0

        t0 = self._now()
        latents = self.vae.encode_frames(frame_d)
        timing["vae_encode"] = self._now() - t0

        t0 = self._now()
        text, text_kv, hit, key = self._prepare_text(instruction)
        if self._engine is not None:
            self._engine_instruction(key, text, text_kv)
        timing["text"] = self._now() - t0

        if self._engine is not None:
            inner: dict[str, float] = {}
            a_norm = self._engine.sample(latents, proprio_d, noise_d, timings=inner, clone=False,
                                         prefix=prefix_norm, prefix_weight=weight, rtc_mode=rtc_mode,
                                         guidance_beta=guidance_beta)
            timing["prefill"] = inner.get("prefill", 0.0)
            timing["action_steps"] = sum(v for k, v in inner.items() if k.startswith("step_"))
        else:
            a_norm = self._infer_unfused(latents, text, text_kv, proprio_d, noise_d, used_seed, timing, prefix_norm,
                                         weight, rtc_mode, guidance_beta)

        t0 = self._now()
        a_norm_cpu = self._staging.to_host("actions", a_norm[0]).clone()
        timing["d2h"] = self._now() - t0

        t0 = time.perf_counter()
        actions = self.normalizer.action.inverse(a_norm_cpu)
        timing["denormalise"] = time.perf_counter() - t0
        timing["total"] = time.perf_counter() - t_start
        return PolicyOutput(
            actions=actions.numpy().astype(np.float32, copy=False),
            actions_normalized=a_norm_cpu.numpy(),
            timing_s=timing,
            seed=used_seed,
            instruction=instruction,
            text_cache_hit=hit,
            committed_steps=0 if prefix_norm is None else int(
                prefix_norm.shape[1] if weight is None else (weight >= 1).sum()),
            guided_steps=0 if prefix_norm is None else int(
                prefix_norm.shape[1] if weight is None else (weight > 0).sum()),
            rtc_mode="off" if prefix_norm is None else rtc_mode,
        )

    @property
    def uses_fast_path(self) -> bool:
        return self._engine is not None

    def _engine_instruction(self, key: str, text: torch.Tensor, text_kv: Any) -> None:
        """Load ``key``'s context K/V into the engine's static buffers, only when the instruction changes."""
        if self._engine.text_key != key:
            self._engine.set_instruction(key, text, text_kv=text_kv)

    def _infer_unfused(self, latents, text, text_kv, proprio_d, noise_d, used_seed, timing,
                       prefix_norm=None, prefix_weight=None, rtc_mode="inpaint",
                       guidance_beta=DEFAULT_GUIDANCE_BETA) -> torch.Tensor:
        """The plain ``FastWAM.infer_action`` loop (Joint/IDM variants, or ``fast_path=False``)."""
        t0 = self._now()
        self._prefill_s = 0.0
        kw: dict[str, Any] = {"num_steps": self.num_inference_steps}
        if self.cfg.variant in ("joint", "idm"):
            kw.update(num_video_frames=self.cfg.policy.num_video_frames, seed=used_seed)
        if text_kv is not None:
            kw["text_kv"] = text_kv
        if prefix_norm is not None:
            kw.update(prefix=prefix_norm, prefix_weight=prefix_weight, rtc_mode=rtc_mode, guidance_beta=guidance_beta)
        a_norm = self.model.infer_action(latents, text, proprio_d, noise_d, **kw)
        t_model = self._now() - t0
        timing["prefill"] = self._prefill_s
        timing["action_steps"] = max(t_model - self._prefill_s, 0.0)
        return a_norm

    # ------------------------------------------------------------------------------------------ internals
    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _install_prefill_timer(self) -> None:
        """Time the model's video prefill (a stage inside ``infer_action``) with an instance-level wrapper."""
        inner: Callable[..., Any] = self.model.prefill

        def timed_prefill(*args: Any, **kwargs: Any) -> Any:
            t0 = self._now()
            out = inner(*args, **kwargs)
            self._prefill_s += self._now() - t0
            return out

        self.model.prefill = timed_prefill  # type: ignore[method-assign]

    def _prepare_text(self, instruction: str) -> tuple[torch.Tensor, Any, bool, str]:
        """(text embeds [1, L, D] on device, TextKV or None, cache hit, cache key) for ``instruction``."""
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError(f"instruction must be a non-empty string, got {instruction!r}")
        prompt = self.text_cache.prompt_for(instruction)
        key = f"{self.text_cache.encoder_id}\n{prompt}"
        if key in self._text_dev:
            self._text_dev.move_to_end(key)
            self.text_cache.stats.hits += 1
            text = self._text_dev[key]
            hit = True
        else:
            before = self.text_cache.stats.misses
            emb = self.text_cache.get(instruction)
            hit = self.text_cache.stats.misses == before
            if tuple(emb.shape) != (self.cfg.policy.text_len, self.cfg.text_dim):
                raise ValueError(
                    f"cached embedding of {instruction!r} has shape {tuple(emb.shape)}, the model expects "
                    f"[{self.cfg.policy.text_len}, {self.cfg.text_dim}]"
                )
            text = emb.to(self.device, self.dtype).unsqueeze(0)
            self._remember(self._text_dev, key, text)
        text_kv = None
        if self.cache_text_kv and hasattr(self.model, "precompute_text_kv"):
            text_kv = self._text_kv.get(key)
            if text_kv is None:
                with torch.no_grad():
                    text_kv = self.model.precompute_text_kv(text)
                self._remember(self._text_kv, key, text_kv)
            else:
                self._text_kv.move_to_end(key)
        return text, text_kv, hit, key

    def _remember(self, d: OrderedDict, key: str, value: Any) -> None:
        d[key] = value
        d.move_to_end(key)
        while len(d) > self._max_instr_entries:
            d.popitem(last=False)

    def _check_frame(self, frame: Any) -> torch.Tensor:
        if isinstance(frame, np.ndarray):
            if frame.dtype == np.uint8:
                raise ValueError("frame is uint8; convert to float in [-1, 1] first (x / 127.5 - 1)")
            if not np.issubdtype(frame.dtype, np.floating):
                raise ValueError(f"frame must be a float array in [-1, 1], got dtype {frame.dtype}")
            t = torch.from_numpy(np.ascontiguousarray(frame, dtype=np.float32))
        elif isinstance(frame, torch.Tensor):
            if not frame.is_floating_point():
                raise ValueError(f"frame must be a float tensor in [-1, 1], got dtype {frame.dtype}")
            t = frame.detach().float()
        else:
            raise ValueError(f"frame must be a numpy array or torch tensor, got {type(frame).__name__}")
        if t.ndim != 3 or t.shape[0] != 3:
            raise ValueError(f"frame must be [3, H, W] (channels first), got shape {tuple(t.shape)}")
        h, w = int(t.shape[1]), int(t.shape[2])
        if self.check_image_size and (h, w) != self.image_size:
            raise ValueError(
                f"frame is {h}x{w} (H x W) but the model is configured for {self.image_size[0]}x{self.image_size[1]} "
                "(policy.image_height / image_width)"
            )
        mult = self.vae.spatial_factor * int(self.cfg.video.patch_size[1])
        if h % mult or w % mult:
            raise ValueError(f"frame size {h}x{w} must be a multiple of {mult} pixels (VAE x patch)")
        if not bool(torch.isfinite(t).all()):
            raise ValueError("frame contains NaN or inf")
        lo, hi = float(t.min()), float(t.max())
        if lo < -1 - FRAME_RANGE_TOL or hi > 1 + FRAME_RANGE_TOL:
            raise ValueError(f"frame values must be in [-1, 1], got range [{lo:.4g}, {hi:.4g}]")
        return t.clamp_(-1.0, 1.0) if (lo < -1 or hi > 1) else t

    def _check_prefix(self, prefix: Any) -> torch.Tensor | None:
        """Raw committed prefix [d, A] -> normalised [1, d', A] on the device (d' = min(d, horizon)); None if empty."""
        if prefix is None:
            return None
        p = torch.as_tensor(np.asarray(prefix, dtype=np.float32))
        if p.ndim != 2 or p.shape[1] != self.action_dim:
            raise ValueError(f"prefix must be [d, {self.action_dim}] raw actions, got {tuple(p.shape)}")
        if p.shape[0] == 0:
            return None
        if not bool(torch.isfinite(p).all()):
            raise ValueError("prefix contains NaN or inf")
        p = p[: self.horizon]
        return self.normalizer.action.forward(p).unsqueeze(0).to(self.device, self.dtype)

    def _check_proprio(self, proprio: Any) -> torch.Tensor:
        if proprio is None:
            raise ValueError(f"proprio is missing: the model needs the raw state vector [{self.proprio_dim}]")
        try:
            arr = np.asarray(proprio.detach().cpu() if isinstance(proprio, torch.Tensor) else proprio, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"proprio must be a numeric vector, got {type(proprio).__name__}: {exc}") from exc
        if arr.ndim != 1 or arr.shape[0] != self.proprio_dim:
            raise ValueError(f"proprio must be a vector of length {self.proprio_dim}, got shape {arr.shape}")
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise ValueError(f"proprio has NaN/inf at index(es) {bad.tolist()}")
        return torch.from_numpy(arr.astype(np.float32))

    def _initial_noise(self, seed: int | None, noise: Any) -> tuple[torch.Tensor, int | None]:
        shape = (1, self.horizon, self.action_dim)
        if noise is not None:
            if seed is not None:
                raise ValueError("pass either seed or noise, not both")
            t = torch.as_tensor(np.asarray(noise.detach().cpu() if isinstance(noise, torch.Tensor) else noise),
                                dtype=torch.float32)
            if t.ndim == 2:
                t = t.unsqueeze(0)
            if tuple(t.shape) != shape:
                raise ValueError(f"noise must be [{self.horizon}, {self.action_dim}], got shape {tuple(t.shape)}")
            if not bool(torch.isfinite(t).all()):
                raise ValueError("noise contains NaN or inf")
            return t, None
        if seed is None:
            seed = self.seed if self.seed_mode == "fixed" else self._rng.randrange(2**63)
        g = torch.Generator("cpu").manual_seed(int(seed))
        # Official: float32 randn on a fresh CPU generator, then cast to the model dtype.
        return torch.randn(shape, generator=g, dtype=torch.float32), int(seed)


def _instruction_from_prompt(prompt: str, template: str) -> str:
    head, _, tail = template.partition("{task}")
    if prompt.startswith(head) and prompt.endswith(tail):
        return prompt[len(head) : len(prompt) - len(tail)] if tail else prompt[len(head) :]
    return prompt


def identity_normalizer(proprio_dim: int, action_dim: int, norm_cfg: Any | None = None) -> Any:
    """State/action normaliser with scale 1 and offset 0 (random-weight policies, benchmarks)."""
    from fastwam_ros.model.normalizer import LinearNormalizer, StateActionNormalizer

    clamp = float(getattr(norm_cfg, "clamp", 5.0)) if norm_cfg is not None else 5.0
    mode = str(getattr(norm_cfg, "mode", "z-score")) if norm_cfg is not None else "z-score"
    return StateActionNormalizer(
        LinearNormalizer(np.ones(proprio_dim), np.zeros(proprio_dim), clamp, mode),
        LinearNormalizer(np.ones(action_dim), np.zeros(action_dim), clamp, mode),
    )


__all__ = ["FastWAMPolicy", "PolicyOutput", "STAGES", "SEED_MODES", "identity_normalizer"]
