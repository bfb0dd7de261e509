"""The Fast-WAM flow-matching training loss (reference spec §3.3), a mixin of :class:`~.fastwam.FastWAM`.

Video latents [B, C=48, F, h, w] (latent frame 0 = the clean current image), actions [B, H, A] and proprio [B, P]
normalised, text embeddings [B, L, text_dim]. Random draws happen in the official order (:data:`DRAW_ORDER`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .masks import idm_teacher_forcing_mask
from .mot import Stream, mot_forward

# Names and order of the random draws of ``training_loss`` (the official order).
DRAW_ORDER = (
    "noise_video",
    "u_video",
    "noise_action",
    "u_action",
    "u_cond_coin",  # IDM only
    "u_video_cond",  # IDM only, only if some coin < idm_cond_noise_prob
    "noise_video_cond",  # IDM only, same condition
)



class _Draws:
    """Random draws for ``training_loss``: recorded values when injected, otherwise fresh draws."""

    def __init__(self, generator: torch.Generator | None, injected: dict[str, torch.Tensor] | None):
        self.generator = generator
        self.injected = dict(injected or {})
        unknown = set(self.injected) - set(DRAW_ORDER)
        if unknown:
            raise ValueError(f"unknown injected draw(s) {sorted(unknown)}; known: {list(DRAW_ORDER)}")

    def randn(self, name: str, like: torch.Tensor) -> torch.Tensor:
        return self._get(name, like.shape, like.dtype, like.device, torch.randn)

    def rand(self, name: str, n: int, device) -> torch.Tensor:
        return self._get(name, (n,), torch.float32, device, torch.rand)

    def _get(self, name, shape, dtype, device, fn: Callable) -> torch.Tensor:
        if name in self.injected:
            t = self.injected[name]
            if tuple(t.shape) != tuple(shape):
                raise ValueError(f"injected draw {name!r} has shape {tuple(t.shape)}, expected {tuple(shape)}")
            return t.to(device=device, dtype=dtype)
        return fn(shape, generator=self.generator, dtype=dtype, device=device)


class FastWAMTrainingLoss:
    """``training_loss`` of :class:`~.fastwam.FastWAM` (uses its experts, scheduler, context and masks)."""

    def training_loss(
        self,
        batch: dict,
        generator: torch.Generator | None = None,
        draws: dict[str, torch.Tensor] | None = None,
    ) -> dict:
        """Flow-matching loss of the configured variant for one batch.

        Random draws happen in the official order (:data:`DRAW_ORDER`) from ``generator`` (None = the global
        torch generator, as the official code); ``draws`` injects recorded values by name instead.
        Returns ``loss``, ``loss_video``, ``loss_action`` and the intermediate tensors (predictions, targets,
        timesteps, per-frame / per-sample terms, weights, model inputs, mask)."""
        x0 = batch["video_latents"].to(self.device, self.dtype)
        a0 = batch["actions"].to(self.device, self.dtype)
        if x0.ndim != 5 or a0.ndim != 3:
            raise ValueError(f"video_latents must be 5-D and actions 3-D, got {tuple(x0.shape)}, {tuple(a0.shape)}")
        b = x0.shape[0]
        if x0.shape[2] < 2:
            raise ValueError(f"training needs at least 2 latent frames, got {x0.shape[2]}")
        context = self.build_context(batch["text_embeds"], batch["proprio"])
        rng = _Draws(generator, draws)
        sched = self.train_scheduler

        noise_v = rng.randn("noise_video", x0)
        t_v = sched.timesteps_from_uniform(rng.rand("u_video", b, x0.device), x0.dtype)
        xt = sched.add_noise(x0, noise_v, t_v)
        target_v = sched.training_target(x0, noise_v)
        xt[:, :, 0:1] = x0[:, :, 0:1]

        noise_a = rng.randn("noise_action", a0)
        t_a = sched.timesteps_from_uniform(rng.rand("u_action", b, a0.device), a0.dtype)
        at = sched.add_noise(a0, noise_a, t_a)
        target_a = sched.training_target(a0, noise_a)

        vkv, akv = self._context_kv(context)
        grid = self.video_expert.token_grid(x0.shape)
        tok_t = self._video_timesteps(t_v, grid)
        out: dict = {}
        if self.variant == "idm":
            coin = rng.rand("u_cond_coin", b, x0.device)
            noised = coin < self.cfg.idm_cond_noise_prob
            cond = x0.clone()
            t_c = torch.zeros_like(t_v)
            if bool(noised.any()):
                t_cs = sched.timesteps_from_uniform(rng.rand("u_video_cond", b, x0.device), x0.dtype)
                noise_c = rng.randn("noise_video_cond", x0)
                noisy_c = sched.add_noise(x0, noise_c, t_cs)
                sel = noised.view(-1, 1, 1, 1, 1)
                cond = torch.where(sel, noisy_c, x0)
                cond[:, :, 0:1] = x0[:, :, 0:1]
                t_c = torch.where(noised, t_cs, t_c)
                out["timestep_video_cond_sampled"] = t_cs
            tok_tc = self._video_timesteps(t_c, grid)
            vs_n, temb_n, grid, tpf = self._video_stream(xt, tok_t, vkv)
            vs_c, _, _, _ = self._video_stream(cond, tok_tc, vkv)
            sv = vs_n.x.shape[1]
            vs = Stream(
                vs_n.blocks, vs_n.num_heads,
                torch.cat([vs_n.x, vs_c.x], 1), torch.cat([vs_n.t_mod, vs_c.t_mod], 1),
                torch.cat([vs_n.angles, vs_c.angles], 0), vs_n.ctx_kv,
            )
            st = self._action_stream(at, t_a, akv)
            mask = idm_teacher_forcing_mask(sv, st.x.shape[1], tpf, self.cfg.video.video_attention_mask_mode)
            xv, xa = mot_forward([vs, st], mask)
            pred_v = self.video_expert.head(xv[:, :sv], temb_n, grid)
            out.update(cond_video_latents=cond, timestep_video_cond=t_c, cond_video_token_timesteps=tok_tc)
        else:
            vs, temb, grid, tpf = self._video_stream(xt, tok_t, vkv)
            st = self._action_stream(at, t_a, akv)
            mask = self._mask(self.variant, vs.x.shape[1], st.x.shape[1], tpf)
            xv, xa = mot_forward([vs, st], mask)
            pred_v = self.video_expert.head(xv, temb, grid)
        pred_a = self.action_expert.output(xa)

        # video loss: drop the clean latent frame 0 and fully padded latent frames
        frame_mse = F.mse_loss(pred_v.float(), target_v.float(), reduction="none").mean(dim=(1, 3, 4))
        valid_v = self._valid_latent_frames(batch.get("image_is_pad"), x0.shape[2], b).to(frame_mse.device)
        fm = frame_mse[:, 1:]
        vden = valid_v.sum(1).clamp(min=1.0)
        video_per_sample = (fm * valid_v).sum(1) / vden
        w_v = sched.training_weight(t_v).to(video_per_sample.dtype)
        loss_video = (video_per_sample * w_v).mean()

        tok_mse = F.mse_loss(pred_a.float(), target_a.float(), reduction="none").mean(dim=2)
        pad = batch.get("action_is_pad")
        if pad is not None:
            pad = pad.to(tok_mse.device, torch.bool)
            if tuple(pad.shape) != tuple(tok_mse.shape):
                raise ValueError(f"action_is_pad must be {tuple(tok_mse.shape)}, got {tuple(pad.shape)}")
            valid_a = (~pad).to(tok_mse.dtype)
            action_per_sample = (tok_mse * valid_a).sum(1) / valid_a.sum(1).clamp(min=1.0)
        else:
            action_per_sample = tok_mse.mean(1)
        w_a = sched.training_weight(t_a).to(action_per_sample.dtype)
        loss_action = (action_per_sample * w_a).mean()
        loss = self.cfg.effective_lambda_video * loss_video + self.cfg.loss_lambda_action * loss_action

        out.update(
            loss=loss, loss_video=loss_video, loss_action=loss_action,
            pred_video=pred_v, pred_action=pred_a, target_video=target_v, target_action=target_a,
            timestep_video=t_v, timestep_action=t_a, video_token_timesteps=tok_t,
            noisy_video_latents=xt, noisy_actions=at, context=context, attention_mask=mask,
            video_frame_mse=frame_mse, video_per_sample=video_per_sample, video_weight=w_v,
            action_token_mse=tok_mse, action_per_sample=action_per_sample, action_weight=w_a,
        )
        return out

    def _valid_latent_frames(self, image_is_pad, num_latent_frames: int, batch: int) -> torch.Tensor:
        """[B, F-1] float: 1 for latent frames 1.. whose source video frames are not all padding."""
        if image_is_pad is None:
            return torch.ones(batch, num_latent_frames - 1)
        factor = self.cfg.vae.scale_factor_temporal
        pad = image_is_pad.to(torch.bool)
        expected = 1 + factor * (num_latent_frames - 1)
        if pad.ndim != 2 or pad.shape != (batch, expected):
            raise ValueError(
                f"image_is_pad must be [B={batch}, T={expected}] for {num_latent_frames} latent frames, "
                f"got {tuple(pad.shape)}"
            )
        tail = pad[:, 1:].reshape(batch, num_latent_frames - 1, factor).all(dim=2)
        return (~tail).float()


__all__ = ["DRAW_ORDER", "FastWAMTrainingLoss"]
