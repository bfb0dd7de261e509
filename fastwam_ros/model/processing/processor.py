"""FastWAMProcessor: everything between raw data and the network, shared by training and deployment.

In the LeRobot split of configuration / modeling / processor, this is the processor. It owns

* state / action normalisation (the dataset statistics; state clamped as in the official processor);
* frame validation (float [3, H, W] in [-1, 1], the configured size, VAE x patch multiples, finite);
* VAE encoding (frozen Wan2.2 VAE -> normalised posterior means);
* THE instruction cache: one :class:`~fastwam_ros.model.processing.text_cache.TextEmbeddingCache` entry per instruction holds the
  CPU embedding and, for the most recently used ones, its device copy and the per-layer context K/V
  (``text_kv_fn``, the network's ``precompute_text_kv``). Nothing else caches instructions.

``Trainer.model_inputs`` calls :meth:`training_inputs`; ``FastWAMPolicy.predict`` calls the same normalisation,
encoding and cache (:meth:`inference_inputs` composes them), so a sample yields the same model inputs in both.
Not thread-safe beyond the cache's own lock: use one inference thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .encoders import WanVAE
from .text_cache import TextEmbeddingCache

FRAME_RANGE_TOL = 1e-3  # values may exceed [-1, 1] by this much (resampling overshoot)


@dataclass
class InstructionContext:
    """An instruction ready for the network: ``embeds`` [1, L, D] on the device, its context K/V (or None),
    the cache ``key`` (encoder identity + prompt) and whether it was served without running the encoder."""

    key: str
    prompt: str
    embeds: torch.Tensor
    text_kv: Any
    hit: bool


class FastWAMProcessor:
    """Normaliser + frame checks + VAE + instruction cache for one model configuration (see the module doc).

    ``cfg``: the FastWAMConfig; ``normalizer``: a StateActionNormalizer; ``device`` / ``dtype``: where the network
    runs; ``text_kv_fn``: embeds [1, L, D] -> TextKV (None: no K/V caching); ``max_device_instructions``: how many
    instructions keep their device copies (each costs text_len x layers x 2 experts of K/V).
    """

    def __init__(
        self,
        cfg: Any,
        normalizer: Any,
        vae: WanVAE,
        text_cache: TextEmbeddingCache,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        check_image_size: bool = True,
        text_kv_fn: Callable[[torch.Tensor], Any] | None = None,
        max_device_instructions: int = 16,
    ):
        self.cfg = cfg
        self.device = torch.device(device)
        self.dtype = dtype
        self.normalizer = normalizer
        self.vae = vae
        self.text_cache = text_cache
        self.check_image_size = bool(check_image_size)
        self.text_kv_fn = text_kv_fn
        self.max_device_instructions = max(1, int(max_device_instructions))
        if normalizer.state.dim != cfg.proprio_dim or normalizer.action.dim != cfg.action_dim:
            raise ValueError(
                f"normaliser dims (state {normalizer.state.dim}, action {normalizer.action.dim}) do not match the "
                f"config (proprio_dim {cfg.proprio_dim}, action_dim {cfg.action_dim})"
            )
        if vae.z_dim != cfg.video.in_dim:
            raise ValueError(f"VAE z_dim {vae.z_dim} != video expert in_dim {cfg.video.in_dim}")
        enc = text_cache.encoder
        if enc is not None and (enc.text_dim != cfg.text_dim or enc.max_length != cfg.policy.text_len):
            raise ValueError(
                f"text encoder gives [{enc.max_length}, {enc.text_dim}] embeddings, the model expects "
                f"[{cfg.policy.text_len}, {cfg.text_dim}] (policy.text_len, text_dim)"
            )
        if text_cache.template != cfg.policy.prompt_template:
            raise ValueError("text cache prompt template differs from config.policy.prompt_template")

    # ------------------------------------------------------------------------------------------ sizes
    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) pixels of the tiled frame the model was configured for."""
        return int(self.cfg.policy.image_height), int(self.cfg.policy.image_width)

    @property
    def proprio_dim(self) -> int:
        return int(self.cfg.proprio_dim)

    @property
    def action_dim(self) -> int:
        return int(self.cfg.action_dim)

    # ------------------------------------------------------------------------------------------ normalisation
    def normalize_state(self, state: torch.Tensor) -> torch.Tensor:
        """Raw state [..., P] -> normalised (clamped), same device."""
        return self.normalizer.state(state)

    def normalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Raw actions [..., A] -> normalised (the training target)."""
        return self.normalizer.action(actions)

    def denormalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Model output [..., A] -> physical units (no clamp)."""
        return self.normalizer.action.inverse(actions)

    # ------------------------------------------------------------------------------------------ checks
    def check_frame(self, frame: Any) -> torch.Tensor:
        """A tiled frame (numpy or torch, float [3, H, W] in [-1, 1]) -> float32 CPU tensor, or ValueError."""
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

    def check_state(self, proprio: Any) -> torch.Tensor:
        """A RAW state vector [P] (numpy, torch or sequence) -> float32 CPU tensor, or ValueError."""
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

    # ------------------------------------------------------------------------------------------ VAE
    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """[B, 3, T, H, W] in [-1, 1] -> normalised latents [B, 48, 1 + (T-1)/4, H/16, W/16] (VAE dtype)."""
        return self.vae.encode(video)

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [-1, 1] -> first-frame latents [B, 48, 1, H/16, W/16] (VAE dtype)."""
        return self.vae.encode_frames(frames)

    # ------------------------------------------------------------------------------------------ instructions
    def instruction(self, instruction: str) -> InstructionContext:
        """The cached instruction (encoder run on a miss), with its device embedding and context K/V."""
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError(f"instruction must be a non-empty string, got {instruction!r}")
        entry, hit = self.text_cache.lookup(instruction)
        if entry.device_owner != id(self):
            entry.drop_device()
            emb = entry.embedding
            if tuple(emb.shape) != (self.cfg.policy.text_len, self.cfg.text_dim):
                raise ValueError(
                    f"cached embedding of {instruction!r} has shape {tuple(emb.shape)}, the model expects "
                    f"[{self.cfg.policy.text_len}, {self.cfg.text_dim}]"
                )
            entry.device_embedding = emb.to(self.device, self.dtype).unsqueeze(0)
            entry.device_owner = id(self)
        if self.text_kv_fn is not None and entry.text_kv is None:
            with torch.no_grad():
                entry.text_kv = self.text_kv_fn(entry.device_embedding)
        self.text_cache.trim_device(self.max_device_instructions)
        return InstructionContext(f"{self.text_cache.encoder_id}\n{entry.prompt}", entry.prompt,
                                  entry.device_embedding, entry.text_kv, hit)

    def text_embedding(self, instruction: str) -> torch.Tensor:
        """CPU float32 embedding [L, D] of ``instruction`` (the training batch's text input)."""
        return self.text_cache.get(instruction).float()

    def release_text_encoder(self) -> None:
        """Drop the text encoder (training frees its memory once every instruction is cached)."""
        self.text_cache.detach_encoder()

    # ------------------------------------------------------------------------------------------ model inputs
    def training_inputs(self, batch: Mapping[str, Any], video_latents: torch.Tensor | None = None
                        ) -> dict[str, torch.Tensor]:
        """A dataset batch (raw ``actions`` [B, H, A], ``state`` [B, P], ``video`` [B, 3, T, H, W], ``instruction``
        list, pad flags) -> the network's training batch on the processor's device. ``video_latents``: already
        encoded latents (the trainer's latent cache) instead of encoding ``video``."""
        dev = self.device
        if video_latents is None:
            video_latents = self.encode_video(batch["video"].to(dev))
        return {
            "video_latents": video_latents.float(),
            "actions": self.normalize_actions(batch["actions"].to(dev)),
            "proprio": self.normalize_state(batch["state"].to(dev)),
            "text_embeds": torch.stack([self.text_embedding(s) for s in batch["instruction"]]).to(dev),
            "action_is_pad": batch["action_is_pad"].to(dev),
            "image_is_pad": batch["image_is_pad"].to(dev),
        }

    def inference_inputs(self, frame: Any, instruction: str, proprio: Any) -> dict[str, Any]:
        """One observation (tiled float frame, instruction, RAW state) -> the network's inference inputs on the
        device: ``video_latents`` [1, 48, 1, h, w], ``proprio`` [1, P] (normalised), ``text_embeds`` [1, L, D],
        ``text_kv`` and the instruction ``context``. ``FastWAMPolicy.predict`` runs these same steps, timed."""
        frame_t = self.check_frame(frame)
        state = self.check_state(proprio)
        ctx = self.instruction(instruction)
        return {
            "video_latents": self.encode_frames(frame_t.to(self.device, self.dtype).unsqueeze(0)),
            "proprio": self.normalize_state(state).reshape(1, -1).to(self.device, self.dtype),
            "text_embeds": ctx.embeds,
            "text_kv": ctx.text_kv,
            "context": ctx,
        }


__all__ = ["FRAME_RANGE_TOL", "FastWAMProcessor", "InstructionContext"]
