"""The official Fast-WAM inference as written (reference §2.2): the baseline the fast engine is tested and
benchmarked against (:mod:`.fast_path`)."""

from __future__ import annotations

import torch

from ..network.masks import fastwam_mask, video_to_video_mask
from ..network.mot import Stream, VideoKVCache, context_kv, forward_with_video_cache, prefill_video_cache
from .fast_path import SUPPORTED_VARIANTS
from .staging import StageTimer


class ReferenceSampler:
    """The official Fast-WAM inference as written (reference §2.2): everything per call and per step.

    Per call: context = [text ; proprio token]; the video expert's context projection and cross-attention K/V;
    the video prefill with a per-token t = 0 time MLP and the boolean video mask passed to SDPA. Per step: the
    action expert's context projection and every layer's cross-attention K/V recomputed, the action time MLP,
    the cached video K/V concatenated with the action K/V in every layer, the (all-True) boolean mask rows
    passed. No CUDA graphs, no static buffers. The text encoder (run per call by the caller) is not part of
    this class."""

    def __init__(self, model: torch.nn.Module, *, num_steps: int | None = None, shift: float | None = None):
        if model.cfg.variant not in SUPPORTED_VARIANTS:
            raise NotImplementedError(f"ReferenceSampler supports variants {SUPPORTED_VARIANTS}")
        self.model = model
        self.num_steps = num_steps
        self.shift = shift

    @torch.no_grad()
    def sample(
        self,
        first_frame_latents: torch.Tensor,
        text_embeds: torch.Tensor,
        proprio_norm: torch.Tensor,
        noise: torch.Tensor,
        timings: dict[str, float] | None = None,
    ) -> torch.Tensor:
        m = self.model
        ve, ae = m.video_expert, m.action_expert
        dev, dt = m.device, m.dtype
        timer = StageTimer(dev) if timings is not None else None
        if timer is not None:
            timer.mark("start")
        ff = first_frame_latents.to(dev, dt)
        a = noise.to(dev, dt)
        context = m.build_context(text_embeds, proprio_norm)
        timesteps, deltas = m._schedule(self.num_steps, self.shift, a.dtype)
        # video pre_dit: patchify, per-token timesteps (all 0), text projection, per-layer context K/V
        grid = ve.token_grid(ff.shape)
        sv = grid[0] * grid[1] * grid[2]
        tok_t = torch.zeros(ff.shape[0], sv, device=dev, dtype=dt)
        vkv = context_kv(ve.blocks, ve.embed_context(context))
        vs, _, _, tpf = m._video_stream(ff, tok_t, vkv)
        vmask = video_to_video_mask(sv, tpf, m.cfg.video.video_attention_mask_mode).to(dev)
        cache: VideoKVCache = prefill_video_cache(vs, vmask)
        if timer is not None:
            timer.mark("prefill")
        h = a.shape[1]
        mask_rows = fastwam_mask(sv, h, tpf, m.cfg.video.video_attention_mask_mode)[sv:].to(dev)
        for i in range(len(timesteps)):
            t = timesteps[i].reshape(1).expand(a.shape[0])
            akv = context_kv(ae.blocks, ae.embed_context(context))  # recomputed every step, as the official code
            x = ae.embed_actions(a)
            _, t_mod = ae.time_condition(t, x.dtype)
            st = Stream(ae.blocks, ae.num_heads, x, t_mod, ae.rope_angles(h, dev), akv)
            vel = ae.output(forward_with_video_cache(st, cache, mask_rows))
            a = m.infer_scheduler.step(vel, deltas[i], a)
            if timer is not None:
                timer.mark(f"step_{i}")
        if timer is not None:
            if timer.cuda:
                torch.cuda.synchronize(dev)
            timings.update(timer.durations())
        return a


__all__ = ["ReferenceSampler"]
