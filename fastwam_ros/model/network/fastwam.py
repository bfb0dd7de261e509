"""Fast-WAM world action model: video expert + action expert sharing one attention per layer (MoT), flow-matching
training loss (:mod:`.training_loss`) and inference for the variants ``fastwam`` (official "uncond"), ``joint``, ``idm`` and
``fastwam_no_video`` (= fastwam with video loss weight 0).

Tensors: video latents [B, C=48, F, h, w] (VAE-normalised; latent frame 0 = the clean current image), actions
[B, H, action_dim] and proprio [B, P] normalised, text embeddings [B, L, text_dim] (pad rows zeroed, all attended).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..config import FastWAMConfig
from .action_expert import ActionExpert
from .flow import FlowMatchScheduler
from .masks import fastwam_mask, joint_mask, video_to_video_mask
from .mot import (
    Stream,
    VideoKVCache,
    concat_context_kv,
    context_kv,
    forward_with_video_cache,
    mot_forward,
    prefill_video_cache,
)
from .rtc import DEFAULT_GUIDANCE_BETA, check_mode
from .rtc_guidance import PrefixGuide
from .training_loss import DRAW_ORDER, FastWAMTrainingLoss
from .video_expert import VideoExpert

__all__ = ["DRAW_ORDER", "FastWAM", "TextKV"]

@dataclass
class TextKV:
    """Per-instruction cache: each expert's per-layer cross-attention K/V of the text rows (no proprio row)."""

    video: list[tuple[torch.Tensor, torch.Tensor]]
    action: list[tuple[torch.Tensor, torch.Tensor]]
    num_rows: int


class FastWAM(FastWAMTrainingLoss, nn.Module):
    """The Fast-WAM MoT model. Attributes: ``video_expert``, ``action_expert``, ``proprio_encoder``. The training
    loss is :class:`~.training_loss.FastWAMTrainingLoss` (a mixin); inference is below."""

    def __init__(self, cfg: FastWAMConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.video_expert = VideoExpert(cfg.video)
        self.action_expert = ActionExpert(cfg.action)
        self.proprio_encoder = nn.Linear(cfg.proprio_dim, cfg.text_dim)
        self.train_scheduler = FlowMatchScheduler(cfg.flow.num_train_timesteps, cfg.flow.train_shift, cfg.flow.weight_eps)
        self.infer_scheduler = FlowMatchScheduler(cfg.flow.num_train_timesteps, cfg.flow.infer_shift, cfg.flow.weight_eps)

    @property
    def variant(self) -> str:
        return self.cfg.variant

    @property
    def dtype(self) -> torch.dtype:
        return self.proprio_encoder.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.proprio_encoder.weight.device

    # ---- conditioning -----------------------------------------------------------------------------
    def build_context(self, text_embeds: torch.Tensor, proprio_norm: torch.Tensor) -> torch.Tensor:
        """[B, L, text_dim] text (pad rows zeroed) + proprio token -> context [B, L+1, text_dim]."""
        if text_embeds.ndim != 3 or text_embeds.shape[-1] != self.cfg.text_dim:
            raise ValueError(f"text_embeds must be [B, L, {self.cfg.text_dim}], got {tuple(text_embeds.shape)}")
        proprio_norm = self._proprio_2d(proprio_norm)
        if proprio_norm.shape[0] != text_embeds.shape[0]:
            raise ValueError(f"batch mismatch: text {text_embeds.shape[0]} vs proprio {proprio_norm.shape[0]}")
        ctx = text_embeds.to(self.device, self.dtype)
        tok = self.proprio_encoder(proprio_norm.to(self.device, self.dtype).unsqueeze(1)).to(ctx.dtype)
        return torch.cat([ctx, tok], dim=1)

    def _proprio_2d(self, proprio: torch.Tensor) -> torch.Tensor:
        if proprio.ndim == 3:  # [B, T, P]: the official code uses the current step only
            proprio = proprio[:, 0]
        if proprio.ndim != 2 or proprio.shape[1] != self.cfg.proprio_dim:
            raise ValueError(f"proprio must be [B, {self.cfg.proprio_dim}], got {tuple(proprio.shape)}")
        return proprio

    def precompute_text_kv(self, text_embeds: torch.Tensor) -> TextKV:
        """Cache each expert's per-layer cross-attention K/V of the text rows (reuse across replans of one
        instruction; the proprio row is added per call)."""
        t = text_embeds.to(self.device, self.dtype)
        return TextKV(
            video=context_kv(self.video_expert.blocks, self.video_expert.embed_context(t)),
            action=context_kv(self.action_expert.blocks, self.action_expert.embed_context(t)),
            num_rows=int(t.shape[1]),
        )

    def _context_kv(self, context: torch.Tensor, text_kv: TextKV | None = None):
        """(video ctx K/V, action ctx K/V) for a full context [B, L+1, text_dim]."""
        if text_kv is None:
            return (
                context_kv(self.video_expert.blocks, self.video_expert.embed_context(context)),
                context_kv(self.action_expert.blocks, self.action_expert.embed_context(context)),
            )
        if context.shape[1] != text_kv.num_rows + 1:
            raise ValueError(f"context has {context.shape[1]} rows, text cache has {text_kv.num_rows} (+1 proprio)")
        extra = context[:, text_kv.num_rows :]
        b = context.shape[0]

        def expand(parts):
            return [(k.expand(b, -1, -1), v.expand(b, -1, -1)) for k, v in parts]

        return (
            concat_context_kv(
                [expand(text_kv.video), context_kv(self.video_expert.blocks, self.video_expert.embed_context(extra))]
            ),
            concat_context_kv(
                [
                    expand(text_kv.action),
                    context_kv(self.action_expert.blocks, self.action_expert.embed_context(extra)),
                ]
            ),
        )

    # ---- streams ----------------------------------------------------------------------------------
    def _video_stream(self, latents: torch.Tensor, token_t: torch.Tensor, ctx_kv):
        """(Stream, temb, grid, tokens_per_frame) for latents [B, C, F, h, w] with per-token timesteps [B, S]."""
        ve = self.video_expert
        grid = ve.token_grid(latents.shape)
        x = ve.patchify(latents)
        temb, t_mod = ve.time_condition(token_t.to(x.device), x.dtype)
        angles = ve.rope_angles(grid, x.device)
        return Stream(ve.blocks, ve.num_heads, x, t_mod, angles, ctx_kv), temb, grid, grid[1] * grid[2]

    def _action_stream(self, noisy_actions: torch.Tensor, timestep: torch.Tensor, ctx_kv) -> Stream:
        ae = self.action_expert
        x = ae.embed_actions(noisy_actions.to(self.device))
        _, t_mod = ae.time_condition(timestep.to(x.device), x.dtype)
        return Stream(ae.blocks, ae.num_heads, x, t_mod, ae.rope_angles(x.shape[1], x.device), ctx_kv)

    def _video_timesteps(self, timestep: torch.Tensor, grid) -> torch.Tensor:
        return self.video_expert.token_timesteps(timestep, grid[0], grid[1] * grid[2])

    def _mask(self, variant: str, sv: int, sa: int, tpf: int) -> torch.Tensor:
        mode = self.cfg.video.video_attention_mask_mode
        if variant in ("fastwam", "fastwam_no_video"):
            return fastwam_mask(sv, sa, tpf, mode)
        if variant in ("joint", "idm"):
            return joint_mask(sv, sa, tpf, mode)
        raise ValueError(f"unknown variant {variant!r}")

    def forward_joint(
        self,
        video_latents: torch.Tensor,
        video_timestep: torch.Tensor,
        noisy_actions: torch.Tensor,
        action_timestep: torch.Tensor,
        context: torch.Tensor,
        mask_variant: str | None = None,
        ctx_kv=None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One MoT pass over [video ; actions] -> (video velocity [B,C,F,h,w], action velocity [B,H,A]).

        ``video_timestep`` is [B] (frame 0 is set to 0) or per-token [B, S]."""
        vkv, akv = ctx_kv if ctx_kv is not None else self._context_kv(context)
        grid = self.video_expert.token_grid(video_latents.shape)
        token_t = video_timestep if video_timestep.ndim == 2 else self._video_timesteps(video_timestep, grid)
        vs, temb, grid, tpf = self._video_stream(video_latents, token_t, vkv)
        st = self._action_stream(noisy_actions, action_timestep, akv)
        mask = self._mask(mask_variant or self.variant, vs.x.shape[1], st.x.shape[1], tpf)
        xv, xa = mot_forward([vs, st], mask)
        return self.video_expert.head(xv, temb, grid), self.action_expert.output(xa)

    def forward_video(self, video_latents: torch.Tensor, video_timestep: torch.Tensor, context: torch.Tensor,
                      ctx_kv=None) -> torch.Tensor:
        """The video expert alone (first-frame-causal video mask) -> velocity [B, C, F, h, w]."""
        vkv = ctx_kv[0] if ctx_kv is not None else context_kv(
            self.video_expert.blocks, self.video_expert.embed_context(context)
        )
        grid = self.video_expert.token_grid(video_latents.shape)
        token_t = video_timestep if video_timestep.ndim == 2 else self._video_timesteps(video_timestep, grid)
        vs, temb, grid, tpf = self._video_stream(video_latents, token_t, vkv)
        mask = video_to_video_mask(vs.x.shape[1], tpf, self.cfg.video.video_attention_mask_mode)
        (xv,) = mot_forward([vs], mask)
        return self.video_expert.head(xv, temb, grid)

    # ---- inference --------------------------------------------------------------------------------
    def _schedule(self, num_steps, shift, dtype):
        n = self.cfg.flow.num_inference_steps if num_steps is None else int(num_steps)
        return self.infer_scheduler.inference_schedule(n, dtype=dtype, shift=shift)

    def prefill(self, first_frame_latents: torch.Tensor, video_ctx_kv, video_latents_t0=None) -> VideoKVCache:
        """Video K/V cache of clean latents (every token at t = 0), video->video mask of the config."""
        lat = first_frame_latents if video_latents_t0 is None else video_latents_t0
        lat = lat.to(self.device, self.dtype)
        # Every token has t = 0: run the time MLP once per sample ([B, 1], broadcast over tokens) instead of
        # once per token (the MLP is row-wise, so the values are the same).
        tok_t = torch.zeros(lat.shape[0], 1, device=self.device, dtype=lat.dtype)
        vs, _, _, tpf = self._video_stream(lat, tok_t, video_ctx_kv)
        mask = video_to_video_mask(vs.x.shape[1], tpf, self.cfg.video.video_attention_mask_mode)
        return prefill_video_cache(vs, None if bool(mask.all()) else mask)

    def _action_loop(self, noise, timesteps, deltas, predict, trace, guide=None):
        a = noise
        traj, vel = [a], []
        for i in range(len(timesteps)):
            t = timesteps[i].reshape(1).expand(a.shape[0])
            if guide is None:
                v = predict(a, t)
            else:
                v = guide.velocity(lambda x, t=t: predict(x, t), a, i)
            a = self.infer_scheduler.step(v, deltas[i], a)
            if guide is not None:
                a = guide.after_step(a, i)
            traj.append(a)
            vel.append(v)
        if trace is not None:
            trace["trajectory"] = torch.stack(traj)
            trace["velocity"] = torch.stack(vel)
        return a

    @torch.no_grad()
    def infer_action(
        self,
        first_frame_latents: torch.Tensor,
        text_embeds: torch.Tensor,
        proprio_norm: torch.Tensor,
        noise: torch.Tensor,
        num_steps: int | None = None,
        shift: float | None = None,
        use_cache: bool = True,
        video_noise: torch.Tensor | None = None,
        num_video_frames: int | None = None,
        return_trace: bool = False,
        text_kv: TextKV | None = None,
        seed: int | None = None,
        prefix: torch.Tensor | None = None,
        prefix_weight: torch.Tensor | None = None,
        rtc_mode: str = "inpaint",
        guidance_beta: float = DEFAULT_GUIDANCE_BETA,
    ):
        """Denoise an action chunk from ``noise`` [B, H, A] -> normalised actions [B, H, A].

        ``prefix`` [B, d, A] (d <= H, normalised): the previous plan on this chunk's first d steps (real-time
        chunking, :mod:`~fastwam_ros.model.network.rtc`), ``prefix_weight`` [d] or [B, d] in [0, 1] per step
        (default 1; see :func:`~fastwam_ros.model.network.rtc.rtc_weights`). ``rtc_mode``: ``inpaint`` (per-step
        inpainting), ``guided`` (the RTC paper's VJP guidance with weight clip ``guidance_beta``; not for variant
        joint) or ``off``. ``prefix`` None or ``rtc_mode="off"`` = the official sampler, unchanged.

        fastwam / fastwam_no_video: prefill the first-frame video K/V once, then ``num_steps`` cached action steps
        (``use_cache=False``: a full MoT pass per step). joint / idm need future video noise: ``video_noise``
        [B, C, F, h, w], or ``num_video_frames`` (pixel frames, F = 1 + (T-1)/4) to draw it from a CPU generator
        seeded with ``seed`` (default: policy seed), as the official code does.
        With ``return_trace=True`` returns (actions, trace dict)."""
        ff = first_frame_latents.to(self.device, self.dtype)
        if ff.ndim != 5 or ff.shape[2] != 1:
            raise ValueError(f"first_frame_latents must be [B, C, 1, h, w], got {tuple(ff.shape)}")
        noise = noise.to(self.device, self.dtype)
        exp = (ff.shape[0], noise.shape[1], self.cfg.action_dim)
        if noise.ndim != 3 or tuple(noise.shape) != exp:
            raise ValueError(f"noise must be [B, H, {self.cfg.action_dim}] with B={ff.shape[0]}, got {tuple(noise.shape)}")
        context = self.build_context(text_embeds, proprio_norm)
        timesteps, deltas = self._schedule(num_steps, shift, noise.dtype)
        trace: dict | None = {"timesteps": timesteps, "deltas": deltas} if return_trace else None
        ctx_kv = self._context_kv(context, text_kv)
        guide = self._prefix_guide(noise, prefix, prefix_weight, len(timesteps), shift, rtc_mode, guidance_beta)
        if guide is not None and guide.guided and self.variant == "joint":
            raise NotImplementedError("rtc_mode 'guided' needs the cached action loop (not variant 'joint')")
        if self.variant in ("fastwam", "fastwam_no_video"):
            a = self._infer_fastwam(ff, noise, context, ctx_kv, timesteps, deltas, use_cache, trace, guide)
        else:
            vnoise = self._video_noise(ff, video_noise, num_video_frames, seed)
            if self.variant == "joint":
                a, _ = self._joint_loop(ff, vnoise, noise, ctx_kv, timesteps, deltas, "joint", trace, guide)
            else:
                a = self._infer_idm(ff, vnoise, noise, ctx_kv, timesteps, deltas, use_cache, trace, guide)
        return (a, trace) if return_trace else a

    def prefix_guidance_buffers(self, noise: torch.Tensor, prefix: torch.Tensor | None,
                                prefix_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(target [B, H, A], weight [B, H, 1]) for :func:`inpaint_prefix` from a committed prefix [B, d, A];
        zeros (no guidance) when ``prefix`` is None. Validates shapes and values."""
        b, h, a_dim = noise.shape
        target = torch.zeros_like(noise)
        weight = torch.zeros(b, h, 1, device=noise.device, dtype=noise.dtype)
        if prefix is None:
            return target, weight
        pre = torch.as_tensor(prefix).to(noise.device, noise.dtype)
        if pre.ndim == 2:
            pre = pre.unsqueeze(0).expand(b, -1, -1)
        if pre.ndim != 3 or pre.shape[0] != b or pre.shape[2] != a_dim or not 0 < pre.shape[1] <= h:
            raise ValueError(f"prefix must be [B={b}, d<={h}, {a_dim}], got {tuple(pre.shape)}")
        if not bool(torch.isfinite(pre).all()):
            raise ValueError("prefix contains NaN or inf")
        d = pre.shape[1]
        w = torch.ones(b, d, device=noise.device, dtype=noise.dtype) if prefix_weight is None else \
            torch.as_tensor(prefix_weight).to(noise.device, noise.dtype).expand(b, d)
        if not bool(((w >= 0) & (w <= 1)).all()):
            raise ValueError("prefix_weight must lie in [0, 1]")
        target[:, :d] = pre
        weight[:, :d, 0] = w
        return target, weight

    def _prefix_guide(self, noise, prefix, prefix_weight, num_steps, shift, mode="inpaint",
                      beta=DEFAULT_GUIDANCE_BETA) -> PrefixGuide | None:
        if check_mode(mode) == "off" or prefix is None:
            return None
        target, weight = self.prefix_guidance_buffers(noise, prefix, prefix_weight)
        sig = self.infer_scheduler.sigmas(num_steps, shift)
        return PrefixGuide(mode, target, weight, noise, sig[:-1], sig[1:].to(noise.device, noise.dtype), beta)

    def _infer_fastwam(self, ff, noise, context, ctx_kv, timesteps, deltas, use_cache, trace, guide=None):
        vkv, akv = ctx_kv
        if use_cache:
            cache = self.prefill(ff, vkv)
            if trace is not None:
                trace["kv_cache_k"] = torch.stack(cache.k)
                trace["kv_cache_v"] = torch.stack(cache.v)

            def predict(a, t):
                st = self._action_stream(a, t, akv)
                return self.action_expert.output(forward_with_video_cache(st, cache, None))
        else:
            zero = torch.zeros(ff.shape[0], device=self.device, dtype=ff.dtype)

            def predict(a, t):
                return self.forward_joint(ff, zero, a, t, context, "fastwam", ctx_kv)[1]

        return self._action_loop(noise, timesteps, deltas, predict, trace, guide)

    def _video_noise(self, ff, video_noise, num_video_frames, seed):
        if video_noise is not None:
            vn = video_noise.to(self.device, self.dtype)
            if vn.ndim != 5 or vn.shape[:2] != ff.shape[:2] or vn.shape[3:] != ff.shape[3:]:
                raise ValueError(f"video_noise must be [B, C, F, h, w] matching {tuple(ff.shape)}, got {tuple(vn.shape)}")
            return vn
        if num_video_frames is None:
            raise ValueError(f"variant {self.variant!r} needs video_noise or num_video_frames")
        t = int(num_video_frames)
        factor = self.cfg.vae.scale_factor_temporal
        if t < 1 + factor or (t - 1) % factor:
            raise ValueError(f"num_video_frames must be 1 + {factor}k with k >= 1, got {t}")
        f = 1 + (t - 1) // factor
        g = torch.Generator("cpu").manual_seed(self.cfg.policy.seed if seed is None else int(seed))
        shape = (ff.shape[0], ff.shape[1], f, ff.shape[3], ff.shape[4])
        return torch.randn(shape, generator=g, dtype=torch.float32).to(self.device, self.dtype)

    def _joint_loop(self, ff, video_noise, noise, ctx_kv, timesteps, deltas, mask_variant, trace, guide=None):
        """Denoise video and actions together (one MoT pass per step, frame 0 pinned to ``ff``)."""
        v = video_noise.clone()
        v[:, :, 0:1] = ff
        a = noise
        traj = [a]
        vel0 = None
        for i in range(len(timesteps)):
            t = timesteps[i].reshape(1).expand(a.shape[0])
            pv, pa = self.forward_joint(v, t, a, t, None, mask_variant, ctx_kv)
            if vel0 is None:
                vel0 = pv
            v = self.infer_scheduler.step(pv, deltas[i], v)
            v[:, :, 0:1] = ff
            a = self.infer_scheduler.step(pa, deltas[i], a)
            if guide is not None:
                a = guide.after_step(a, i)
            traj.append(a)
        if trace is not None:
            trace.update(trajectory=torch.stack(traj), video_final=v, video_velocity_step0=vel0,
                         initial_video_noise=video_noise)
        return a, v

    def _infer_idm(self, ff, video_noise, noise, ctx_kv, timesteps, deltas, use_cache, trace, guide=None):
        vkv, akv = ctx_kv
        v = video_noise.clone()
        v[:, :, 0:1] = ff
        for i in range(len(timesteps)):
            t = timesteps[i].reshape(1).expand(v.shape[0])
            pv = self.forward_video(v, t, None, ctx_kv)
            v = self.infer_scheduler.step(pv, deltas[i], v)
            v[:, :, 0:1] = ff
        if trace is not None:
            trace["video_final"] = v
        if use_cache:
            cache = self.prefill(ff, vkv, video_latents_t0=v)

            def predict(a, t):
                st = self._action_stream(a, t, akv)
                return self.action_expert.output(forward_with_video_cache(st, cache, None))
        else:
            grid = self.video_expert.token_grid(v.shape)
            tok0 = torch.zeros(v.shape[0], grid[0] * grid[1] * grid[2], device=self.device, dtype=v.dtype)

            def predict(a, t):
                return self.forward_joint(v, tok0, a, t, None, "joint", ctx_kv)[1]

        return self._action_loop(noise, timesteps, deltas, predict, trace, guide)

    @torch.no_grad()
    def infer_joint(
        self,
        first_frame_latents: torch.Tensor,
        text_embeds: torch.Tensor,
        proprio_norm: torch.Tensor,
        noise: torch.Tensor,
        video_noise: torch.Tensor,
        num_steps: int | None = None,
        shift: float | None = None,
        mask_variant: str | None = None,
        return_trace: bool = False,
    ):
        """Generate future video latents and actions together (official ``infer_joint``; for the fastwam variant
        the actions equal ``infer_action``'s). Returns (video latents [B,C,F,h,w], actions [B,H,A])."""
        ff = first_frame_latents.to(self.device, self.dtype)
        noise = noise.to(self.device, self.dtype)
        context = self.build_context(text_embeds, proprio_norm)
        timesteps, deltas = self._schedule(num_steps, shift, noise.dtype)
        trace: dict | None = {"timesteps": timesteps, "deltas": deltas} if return_trace else None
        mv = mask_variant or ("fastwam" if self.variant == "fastwam_no_video" else self.variant)
        if mv == "idm":
            mv = "joint"
        a, v = self._joint_loop(
            ff, self._video_noise(ff, video_noise, None, None), noise, self._context_kv(context),
            timesteps, deltas, mv, trace,
        )
        return (v, a, trace) if return_trace else (v, a)
