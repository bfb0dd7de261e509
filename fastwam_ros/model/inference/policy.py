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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fastwam_ros.model.inference.policy_loading import (
    PolicyBuilders,
    as_dtype,
    identity_normalizer,
    instruction_from_prompt,
)
from fastwam_ros.model.network.rtc import DEFAULT_GUIDANCE_BETA, check_mode
from fastwam_ros.model.processing.encoders import WanVAE
from fastwam_ros.model.processing.processor import FastWAMProcessor
from fastwam_ros.model.processing.text_cache import TextEmbeddingCache

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
    joint_names: tuple[str, ...] = ()  # action column names (robot joint order), when the policy knows them

    @property
    def horizon(self) -> int:
        return int(self.actions.shape[0])


class FastWAMPolicy(PolicyBuilders):
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
        perception_config: Any | None = None,
    ):
        """Normalisation, frame checks, VAE encoding and the instruction cache live in ``self.processor``
        (:class:`~fastwam_ros.model.processing.processor.FastWAMProcessor`, the same the trainer uses).
        ``perception_config``: the camera / tiling / joint-order config of :meth:`predict_observation` (a policy
        directory's ``perception.json`` by default). ``fast_path``: sample with
        :class:`~fastwam_ros.model.inference.fast_path.FastActionSampler` (per-instruction context K/V, static
        buffers, mask-free attention, CUDA graphs on GPU). None = whenever the variant supports it; False = the
        plain ``FastWAM.infer_action`` loop (reference behaviour)."""
        if seed_mode not in SEED_MODES:
            raise ValueError(f"seed_mode must be one of {SEED_MODES}, got {seed_mode!r}")
        self.device = torch.device(device)
        self.dtype = as_dtype(dtype)
        self.cfg = model.cfg
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        vae = vae.to(device=self.device, dtype=self.dtype).eval()
        if text_cache.encoder is not None:
            text_cache.encoder.to(device=self.device, dtype=self.dtype)
        self.cache_text_kv = bool(cache_text_kv)
        kv_fn = self.model.precompute_text_kv if self.cache_text_kv and hasattr(self.model, "precompute_text_kv") \
            else None
        self.processor = FastWAMProcessor(self.cfg, normalizer, vae, text_cache, device=self.device, dtype=self.dtype,
                                          check_image_size=check_image_size, text_kv_fn=kv_fn)
        text_cache.drop_device()  # device copies made by anyone else (another device, dtype or weights)
        self.perception_config = perception_config
        self.seed_mode = seed_mode
        self.seed = int(self.cfg.policy.seed if seed is None else seed)
        self.noise_scale = float(self.cfg.policy.initial_noise_scale)
        if num_inference_steps is not None and int(num_inference_steps) < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        self.num_inference_steps = None if num_inference_steps is None else int(num_inference_steps)
        self.instruction: str | None = None
        self._rng = random.Random(self.seed)
        self.robot_contract: dict[str, Any] | None = None  # set by from_pretrained(robot=...)
        self.robot: Any | None = None  # the RobotSpec it was checked against (from_pretrained(robot=...))
        self.joint_map: dict[str, str] = {}  # explicit checkpoint -> robot joint renames in force
        self._prefill_s = 0.0
        self._install_prefill_timer()
        from .fast_path import SUPPORTED_VARIANTS, FastActionSampler, HostStaging

        if fast_path and self.cfg.variant not in SUPPORTED_VARIANTS:
            raise ValueError(f"fast_path needs variant in {SUPPORTED_VARIANTS}, got {self.cfg.variant!r}")
        use_engine = self.cfg.variant in SUPPORTED_VARIANTS if fast_path is None else bool(fast_path)
        self._engine = FastActionSampler(self.model, num_steps=self.num_inference_steps) if use_engine else None
        self._staging = HostStaging(self.device)

    # ------------------------------------------------------------------------------------------ builders
    # from_pretrained / save_pretrained / from_config / from_official_checkpoint: PolicyBuilders (policy_loading)

    # ------------------------------------------------------------------------------------------ properties
    @property
    def vae(self) -> WanVAE:
        return self.processor.vae

    @property
    def normalizer(self) -> Any:
        return self.processor.normalizer

    @property
    def text_cache(self) -> TextEmbeddingCache:
        return self.processor.text_cache

    @property
    def check_image_size(self) -> bool:
        return self.processor.check_image_size

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
        ctx = self.processor.instruction(text)
        if self._engine is not None:
            self._engine_instruction(ctx)
        self.instruction = text
        return ctx.hit

    def warmup(self, instruction: str | None = None, iterations: int = 1) -> dict[str, float]:
        """Run ``iterations`` full predictions on a blank frame (allocations, kernels, caches); returns the
        last timing. Uses ``instruction``, else the current instruction, else a cached one, else 'warmup'."""
        ins = instruction or self.instruction
        if ins is None:
            cached = self.text_cache.entries() if self.text_cache.encoder is None else {}
            ins = instruction_from_prompt(next(iter(cached)), self.cfg.policy.prompt_template) if cached else "warmup"
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
        from :func:`fastwam_ros.model.network.rtc.rtc_weights`). ``rtc_mode``: ``inpaint`` | ``guided`` | ``off``
        (:mod:`fastwam_ros.model.network.rtc`); ``guidance_beta``: the guided mode's weight clip β."""
        t_start = time.perf_counter()
        timing = dict.fromkeys(STAGES, 0.0)
        if instruction is None:
            if self.instruction is None:
                raise ValueError("no instruction given and none set (call set_instruction or pass instruction=)")
            instruction = self.instruction
        proc = self.processor
        frame_t = proc.check_frame(frame)
        state = proc.check_state(proprio)
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
        proprio_norm = proc.normalize_state(state).reshape(1, -1)
        frame_d = self._staging.to_device("frame", frame_t, self.dtype).unsqueeze(0)
        proprio_d = self._staging.to_device("proprio", proprio_norm, self.dtype)
        noise_d = self._staging.to_device("noise", noise_t, self.dtype)
        timing["h2d"] = self._now() - t0

        t0 = self._now()
        latents = proc.encode_frames(frame_d)
        timing["vae_encode"] = self._now() - t0

        t0 = self._now()
        ctx = proc.instruction(instruction)
        if self._engine is not None:
            self._engine_instruction(ctx)
        timing["text"] = self._now() - t0

        if self._engine is not None:
            inner: dict[str, float] = {}
            a_norm = self._engine.sample(latents, proprio_d, noise_d, timings=inner, clone=False,
                                         prefix=prefix_norm, prefix_weight=weight, rtc_mode=rtc_mode,
                                         guidance_beta=guidance_beta)
            timing["prefill"] = inner.get("prefill", 0.0)
            timing["action_steps"] = sum(v for k, v in inner.items() if k.startswith("step_"))
        else:
            a_norm = self._infer_unfused(latents, ctx.embeds, ctx.text_kv, proprio_d, noise_d, used_seed, timing,
                                         prefix_norm, weight, rtc_mode, guidance_beta)

        t0 = self._now()
        a_norm_cpu = self._staging.to_host("actions", a_norm[0]).clone()
        timing["d2h"] = self._now() - t0

        t0 = time.perf_counter()
        actions = proc.denormalize_actions(a_norm_cpu)
        timing["denormalise"] = time.perf_counter() - t0
        timing["total"] = time.perf_counter() - t_start
        return PolicyOutput(
            actions=actions.numpy().astype(np.float32, copy=False),
            actions_normalized=a_norm_cpu.numpy(),
            timing_s=timing,
            seed=used_seed,
            instruction=instruction,
            text_cache_hit=ctx.hit,
            committed_steps=0 if prefix_norm is None else int(
                prefix_norm.shape[1] if weight is None else (weight >= 1).sum()),
            guided_steps=0 if prefix_norm is None else int(
                prefix_norm.shape[1] if weight is None else (weight > 0).sum()),
            rtc_mode="off" if prefix_norm is None else rtc_mode,
        )

    def predict_observation(
        self,
        images: Mapping[str, np.ndarray],
        joint_positions: Mapping[str, float] | np.ndarray | Iterable[float],
        instruction: str | None = None,
        *,
        perception_config: Any | None = None,
        **predict_kwargs: Any,
    ) -> PolicyOutput:
        """One chunk from RAW camera images: ``images`` {camera name: uint8 [H, W, 3] RGB} go through the
        perception code the node and the training data use (:func:`~fastwam_ros.perception.pipeline.
        preprocess_frames`: per-camera transform, resize, tiling in the configured camera order, [-1, 1]);
        ``joint_positions`` is {joint name: position} (any order; extra joints ignored) or a vector in the
        robot's joint order. ``perception_config``: a :class:`~fastwam_ros.perception.config.PerceptionConfig`
        (default: the robot file's when loaded with ``from_pretrained(robot=...)``, whose contract check makes
        its cameras, tiling and (``joint_map``-renamed) joint order the checkpoint's; else the policy directory's
        ``perception.json``). The returned
        ``actions`` columns are in the robot's joint order (``out.joint_names``). Other keyword arguments go to
        :meth:`predict` (seed, noise, prefix, prefix_weight)."""
        from fastwam_ros.perception.pipeline import preprocess_frames
        from fastwam_ros.perception.proprio import assemble_proprio

        pc = perception_config
        if pc is None and self.robot is not None:  # from_pretrained(robot=...): checked against the checkpoint
            pc = self.robot.perception_config()
        if pc is None:
            pc = self.perception_config
        if pc is None:
            raise ValueError("predict_observation needs the camera / tiling / joint-order config: pass "
                             "perception_config=, load with robot=, or load a policy directory that has "
                             "perception.json")
        if not isinstance(images, Mapping):
            raise ValueError(f"images must be a mapping camera name -> uint8 HxWx3 RGB, got {type(images).__name__}")
        frame = preprocess_frames(images, pc)
        joints = tuple(pc.joint_names)
        if isinstance(joint_positions, Mapping):
            if not joints:
                raise ValueError("the perception config names no joints: pass joint_positions as a vector")
            state = assemble_proprio(joints, list(joint_positions), list(joint_positions.values()))
        else:
            state = joint_positions
        out = self.predict(frame, instruction, state, **predict_kwargs)
        if len(joints) == self.action_dim:
            out.joint_names = joints
        return out

    @property
    def uses_fast_path(self) -> bool:
        return self._engine is not None

    def _engine_instruction(self, ctx: Any) -> None:
        """Load the instruction's context K/V (from the processor's cache) into the engine's static buffers,
        only when the instruction changes."""
        if self._engine.text_key != ctx.key:
            self._engine.set_instruction(ctx.key, ctx.embeds, text_kv=ctx.text_kv)

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
        return self.processor.normalize_actions(p).unsqueeze(0).to(self.device, self.dtype)

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
        noise = torch.randn(shape, generator=g, dtype=torch.float32)
        return (noise if self.noise_scale == 1.0 else noise * self.noise_scale), int(seed)


__all__ = ["FastWAMPolicy", "PolicyOutput", "STAGES", "SEED_MODES", "identity_normalizer"]
