"""Low-latency Fast-WAM inference: the engine behind one replan, plus the straightforward reference sampler it is
benchmarked and tested against (:mod:`.reference_sampler`).

:class:`FastActionSampler` computes exactly what :meth:`FastWAM.infer_action` (variants ``fastwam`` /
``fastwam_no_video``) computes, but organised for latency:

* **Per-instruction work once.** The text rows of the context are projected by both experts and turned into
  per-layer cross-attention K/V once per instruction (:meth:`FastActionSampler.set_instruction`); a call only
  computes the proprio row (one context row) and writes it into the static K/V buffers. Changing the
  instruction (a different key) recomputes the text K/V; the same key is a no-op.
* **Per-schedule work once.** The action timesteps of the N Euler steps are fixed, so the action time MLP and
  every block's modulation (``scale_shift_table + t_mod``) are computed once per (schedule, weights); the
  same holds for the video prefill, where every token has t = 0 (the per-token time MLP is evaluated once, not
  once per token). RoPE cos/sin tables are computed once per token grid.
* **Mask-free attention.** At inference the Fast-WAM mask rows of the action queries and the first-frame
  video mask are all True, so attention runs with ``attn_mask=None`` (flash / memory-efficient SDPA kernels on
  GPU). A non-all-True video mask (a config with a different mask mode) is still honoured.
* **Static buffers.** Noise, action state, the per-layer video+action K/V ``[B, Sv + H, inner]`` (the video
  part written by the prefill, the action part overwritten in place at each step: no per-step ``torch.cat``)
  and the per-layer context K/V ``[B, L + 1, inner]`` are allocated once per input signature.
* **CUDA graphs (GPU only).** The prefill and each of the N action steps are captured as CUDA graphs sharing
  one memory pool, after a warm-up on a side stream (:meth:`FastActionSampler.warmup`, meant for node
  configure). A call is then N + 1 graph replays; CUDA events between replays give per-stage GPU times.
* **Pinned host memory (GPU only).** :class:`~.staging.HostStaging` keeps page-locked host buffers and copies with
  ``non_blocking=True``; on CPU the same code does plain copies.

Everything runs on CPU with the same code path minus graphs and pinning (that is how it is tested: fp32, tiny).

:class:`~.reference_sampler.ReferenceSampler` is the official algorithm as written (reference §2.2): context built every call,
the context projections and cross-attention K/V recomputed at every step, per-token time MLP in the prefill,
boolean masks always passed, ``torch.cat`` of the cache per layer, no graphs.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..network.flow import inpaint_prefix
from ..network.masks import fastwam_mask, video_to_video_mask
from ..network.mot import (
    attention,
    block_modulation,
    block_post,
    block_qkv_mods,
    context_kv,
)
from ..network.rtc import DEFAULT_GUIDANCE_BETA, check_mode
from ..network.rtc_guidance import guided_velocity
from .staging import HostStaging, StageTimer, is_cuda

SUPPORTED_VARIANTS = ("fastwam", "fastwam_no_video")


def rope_tables(angles: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin [1, S, 1, head_dim/2] float64 of RoPE ``angles`` [S, head_dim/2] (computed once per grid)."""
    return torch.cos(angles).to(device)[None, :, None, :], torch.sin(angles).to(device)[None, :, None, :]


def apply_rope_tables(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """:func:`fastwam_ros.model.network.rope.apply_rope` with precomputed tables (same float64 arithmetic, same result)."""
    b, s, inner = x.shape
    half = cos.shape[-1]
    xp = x.to(torch.float64).reshape(b, s, inner // (2 * half), half, 2)
    x0, x1 = xp[..., 0], xp[..., 1]
    out = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    return out.reshape(b, s, inner).to(x.dtype)


@dataclass
class _Signature:
    batch: int
    latent_shape: tuple[int, ...]  # [B, C, 1, h, w]
    horizon: int

    def key(self) -> tuple:
        return (self.batch, self.latent_shape, self.horizon)


class FastActionSampler:
    """Latency-optimised ``infer_action`` for Fast-WAM (see the module docstring).

    Usage::

        eng = FastActionSampler(model)                    # model on its device / dtype, weights loaded, eval()
        eng.set_instruction("fold the towel", text_embeds)  # [1, L, text_dim]; once per instruction
        eng.warmup(latent_shape=(1, 48, 1, 24, 20))       # node configure: buffers (+ CUDA graphs on GPU)
        actions = eng.sample(first_frame_latents, proprio_norm, noise)   # [B, H, A] normalised, on device

    Not thread-safe (one inference thread). After changing the weights call :meth:`reset`.
    ``use_cuda_graphs``: None = on for CUDA devices; ignored on CPU.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        num_steps: int | None = None,
        shift: float | None = None,
        use_cuda_graphs: bool | None = None,
        compile: bool | None = None,
        graph_warmup_iters: int = 3,
    ):
        if model.cfg.variant not in SUPPORTED_VARIANTS:
            raise NotImplementedError(
                f"FastActionSampler supports variants {SUPPORTED_VARIANTS}; {model.cfg.variant!r} needs the "
                "future video and runs through FastWAM.infer_action"
            )
        self.model = model
        self.cfg = model.cfg
        self.num_steps = int(self.cfg.flow.num_inference_steps if num_steps is None else num_steps)
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")
        self.shift = shift
        cuda = is_cuda(model.device)
        self.use_cuda_graphs = bool(cuda if use_cuda_graphs is None else (use_cuda_graphs and cuda))
        self.compile = bool(cuda if compile is None else compile)
        self.graph_warmup_iters = max(1, int(graph_warmup_iters))
        self._active_kv = None  # the active instruction's TextKV (the instruction cache is the processor's)
        self.text_key: str | None = None  # instruction whose K/V are in the static buffers
        self.stats = {"text_kv_computed": 0, "text_kv_reused": 0, "graph_captures": 0, "calls": 0}
        self.reset()

    # ------------------------------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    @property
    def graphs_captured(self) -> bool:
        return self._graphs is not None

    # ------------------------------------------------------------------------------------------ state
    def reset(self) -> None:
        """Drop every derived buffer, graph and cached K/V (call after loading new weights)."""
        self._sig: _Signature | None = None
        self._graphs: list | None = None
        self._pool = None
        self._buf: dict[str, object] = {}
        self._active_kv = None
        self.text_key = None
        self._pending_text = None
        self._consts = self._schedule_constants()
        self._prefill_fn = self._prefill_body
        self._step_fn = self._step_body
        self.compiled: bool | None = None  # None: not tried yet

    @torch.no_grad()
    def _schedule_constants(self) -> dict:
        """Timesteps/deltas (model dtype: the official bf16 quirk), per-step action modulation, video t=0
        modulation. Depends on weights + schedule only."""
        m, dev, dt = self.model, self.model.device, self.model.dtype
        timesteps, deltas = m.infer_scheduler.inference_schedule(self.num_steps, dtype=dt, shift=self.shift)
        timesteps, deltas = timesteps.to(dev), deltas.to(dev)
        ae, ve = m.action_expert, m.video_expert
        act_mods = []
        for i in range(self.num_steps):
            _, t_mod = ae.time_condition(timesteps[i].reshape(1), dt)  # [1, 1, 6, D], broadcast over batch
            act_mods.append([block_modulation(blk, t_mod) for blk in ae.blocks])
        _, t_mod_v = ve.time_condition(torch.zeros(1, 1, device=dev, dtype=dt), dt)  # t = 0, once, not per token
        vid_mods = [block_modulation(blk, t_mod_v) for blk in ve.blocks]
        # [N, layers, 6, 1, 1, D]: copied into a static "current step" buffer before each step, so that one
        # step body (one CUDA graph / one compiled function) serves every step
        act_mods_t = torch.stack([torch.stack([torch.stack(mm) for mm in step]) for step in act_mods])
        # sigma after each step (float32 math, exact 0 at the end), for the committed-prefix guidance
        sig_after = m.infer_scheduler.sigmas_after_steps(self.num_steps, self.shift).to(dev, dt)
        sig_before = m.infer_scheduler.sigmas(self.num_steps, self.shift)[:-1]  # float32 on CPU (guided mode)
        return {"timesteps": timesteps, "deltas": deltas, "act_mods": act_mods_t, "vid_mods": vid_mods,
                "sigma_after": sig_after, "sigma_before": sig_before}

    # ------------------------------------------------------------------------------------------ instruction
    @torch.no_grad()
    def set_instruction(self, key: str, text_embeds: torch.Tensor | None = None, text_kv=None) -> bool:
        """Make ``key`` the active instruction. Its text K/V come from ``text_kv`` (a :class:`TextKV`, e.g. from
        the processor's instruction cache), else are computed from ``text_embeds`` [1, L, text_dim]. The engine
        keeps only the active instruction (no cache of its own). Returns True when K/V were computed here,
        False when the active instruction was kept or ``text_kv`` was given."""
        if key == self.text_key and text_kv is None:
            return False
        computed = False
        if text_kv is None:
            if text_embeds is None:
                raise KeyError(f"instruction {key!r} is not the active one; pass its text_kv or text_embeds")
            if text_embeds.ndim != 3 or text_embeds.shape[0] != 1 or text_embeds.shape[2] != self.cfg.text_dim:
                raise ValueError(f"text_embeds must be [1, L, {self.cfg.text_dim}], got {tuple(text_embeds.shape)}")
            text_kv = self.model.precompute_text_kv(text_embeds)
            computed = True
            self.stats["text_kv_computed"] += 1
        else:
            self.stats["text_kv_reused"] += 1
        if self._sig is not None and text_kv.num_rows + 1 != self._buf["ctx_rows"]:
            self._sig = None  # different text length: new buffers (and graphs) on the next call
            self._graphs = None
        self._active_kv = text_kv
        self.text_key = key
        self._pending_text = text_kv
        if self._sig is not None:
            self._load_text_kv()
        return computed

    def forget_instruction(self, key: str) -> None:
        if key == self.text_key:
            self.text_key = None
            self._active_kv = None

    def _load_text_kv(self) -> None:
        """Copy the active instruction's text K/V rows into the static context buffers (rows [0, L))."""
        tkv = self._pending_text
        if tkv is None:
            return
        b = self._buf
        n = tkv.num_rows
        for dst, src in ((b["ctx_v"], tkv.video), (b["ctx_a"], tkv.action)):
            for (dk, dv), (sk, sv) in zip(dst, src):
                dk[:, :n].copy_(sk.expand(dk.shape[0], -1, -1))
                dv[:, :n].copy_(sv.expand(dv.shape[0], -1, -1))
        self._pending_text = None

    # ------------------------------------------------------------------------------------------ buffers
    @torch.no_grad()
    def _allocate(self, sig: _Signature) -> None:
        m, dev, dt = self.model, self.device, self.dtype
        ve, ae = m.video_expert, m.action_expert
        if self.text_key is None:
            raise RuntimeError("no instruction set: call set_instruction(key, text_embeds) first")
        tkv = self._active_kv
        b, h = sig.batch, sig.horizon
        grid = ve.token_grid(sig.latent_shape)
        if grid[0] != 1:
            raise ValueError(f"first_frame_latents must hold one latent frame, got {grid[0]}")
        sv = grid[1] * grid[2]
        rows = tkv.num_rows + 1
        inner_v = ve.num_heads * ve.cfg.attn_head_dim
        inner_a = ae.num_heads * ae.cfg.attn_head_dim
        if inner_v != inner_a:
            raise ValueError("the video and action experts must have the same attention width (heads x head_dim)")

        def z(*shape, dtype=dt):
            return torch.zeros(*shape, device=dev, dtype=dtype)

        self._buf = {
            "ctx_rows": rows,
            "sv": sv,
            "latents": z(*sig.latent_shape),
            "proprio": z(b, self.cfg.proprio_dim),
            "noise": z(b, h, self.cfg.action_dim),
            "action": z(b, h, self.cfg.action_dim),
            "ctx_v": [(z(b, rows, inner_v), z(b, rows, inner_v)) for _ in ve.blocks],
            "ctx_a": [(z(b, rows, inner_a), z(b, rows, inner_a)) for _ in ae.blocks],
            "kv": [(z(b, sv + h, inner_v), z(b, sv + h, inner_v)) for _ in ve.blocks],
            "rope_v": rope_tables(ve.rope_angles(grid), dev),
            "rope_a": rope_tables(ae.rope_angles(h), dev),
            "cur_mods": torch.zeros_like(self._consts["act_mods"][0]),
            "cur_delta": torch.zeros_like(self._consts["deltas"][0]),
            "cur_sigma": torch.zeros_like(self._consts["sigma_after"][0]),
            # committed-prefix guidance (real-time chunking): weight 0 everywhere = the plain sampler, exactly
            "guide_target": z(b, h, self.cfg.action_dim),
            "guide_weight": z(b, h, 1),
        }
        vmask = video_to_video_mask(sv, sv, self.cfg.video.video_attention_mask_mode)
        amask = fastwam_mask(sv, h, sv, self.cfg.video.video_attention_mask_mode)[sv:]
        # all True at inference (one latent frame): no mask, so flash kernels apply
        self._buf["vmask"] = None if bool(vmask.all()) else vmask.to(dev)
        if not bool(amask.all()):
            raise ValueError("the action rows of the inference mask are not all True; unsupported config")
        self._sig = sig
        self._graphs = None
        self._pending_text = tkv
        self._load_text_kv()

    # ------------------------------------------------------------------------------------------ kernels
    def _run_prefill(self) -> None:
        self._prefill_fn()

    def _prefill_body(self) -> None:
        """Proprio context row -> both experts' context K/V row; video prefill -> static K/V; noise -> state."""
        m, b = self.model, self._buf
        ve, ae = m.video_expert, m.action_expert
        r = b["ctx_rows"] - 1
        tok = m.proprio_encoder(b["proprio"].unsqueeze(1)).to(self.dtype)  # [B, 1, text_dim]
        for dst, kvs in (
            (b["ctx_v"], context_kv(ve.blocks, ve.embed_context(tok))),
            (b["ctx_a"], context_kv(ae.blocks, ae.embed_context(tok))),
        ):
            for (dk, dv), (k, v) in zip(dst, kvs):
                dk[:, r:].copy_(k)
                dv[:, r:].copy_(v)
        x = ve.patchify(b["latents"])
        cos, sin = b["rope_v"]
        sv, n = b["sv"], len(ve.blocks)
        for i, blk in enumerate(ve.blocks):
            mods = self._consts["vid_mods"][i]
            q, k, v = block_qkv_mods(blk, x, mods, lambda t: apply_rope_tables(t, cos, sin))
            kb, vb = b["kv"][i]
            kb[:, :sv].copy_(k)
            vb[:, :sv].copy_(v)
            if i < n - 1:  # the last layer's output never reaches the actions
                o = attention(q, k, v, ve.num_heads, b["vmask"])
                x = block_post(blk, x, o, mods, b["ctx_v"][i], ve.num_heads)
        b["action"].copy_(b["noise"])

    def _run_step(self, i: int) -> None:
        """Euler step ``i``: load the step's constants into the static step buffers, run the step body."""
        b = self._buf
        b["cur_mods"].copy_(self._consts["act_mods"][i])
        b["cur_delta"].copy_(self._consts["deltas"][i])
        b["cur_sigma"].copy_(self._consts["sigma_after"][i])
        self._step_fn()

    def _step_body(self) -> None:
        """One Euler step of the action chunk against the cached video K/V (in place on the action state)."""
        b = self._buf
        a = b["action"]
        vel = self._velocity(a, write_kv=True)
        a.copy_(inpaint_prefix(a + vel * b["cur_delta"], b["noise"], b["guide_target"], b["guide_weight"],
                               b["cur_sigma"]))

    def _velocity(self, a: torch.Tensor, write_kv: bool) -> torch.Tensor:
        """The action expert's velocity [B, H, A] for action state ``a`` at the current step (``cur_mods``),
        against the cached video K/V. ``write_kv``: write the action K/V into the static buffers in place (the
        graph/compile path); False: concatenate instead (differentiable in ``a``, buffers untouched)."""
        m, b = self.model, self._buf
        ae = m.action_expert
        sv = b["sv"]
        cos, sin = b["rope_a"]
        cur = b["cur_mods"]
        x = ae.embed_actions(a)
        for li, blk in enumerate(ae.blocks):
            mods = [cur[li, k] for k in range(6)]
            q, k, v = block_qkv_mods(blk, x, mods, lambda t: apply_rope_tables(t, cos, sin))
            kb, vb = b["kv"][li]
            if write_kv:
                kb[:, sv:].copy_(k)
                vb[:, sv:].copy_(v)
            else:
                kb = torch.cat((kb[:, :sv], k), dim=1)
                vb = torch.cat((vb[:, :sv], v), dim=1)
            o = attention(q, kb, vb, ae.num_heads, None)
            x = block_post(blk, x, o, mods, b["ctx_a"][li], ae.num_heads)
        return ae.output(x)

    def _run_guided_step(self, i: int, beta: float) -> None:
        """Euler step ``i`` with the RTC paper's VJP guidance (eager: no CUDA graph, no compile)."""
        b = self._buf
        b["cur_mods"].copy_(self._consts["act_mods"][i])
        a = b["action"]
        vel = guided_velocity(lambda x: self._velocity(x, write_kv=False), a, float(self._consts["sigma_before"][i]),
                              b["guide_target"], b["guide_weight"], beta)
        a.copy_(a + vel * self._consts["deltas"][i])

    def _run_all(self) -> None:
        self._run_prefill()
        for i in range(self.num_steps):
            self._run_step(i)

    # ------------------------------------------------------------------------------------------ compile
    def _compile(self) -> None:
        """torch.compile (inductor, static shapes) of the prefill body and the step body: fuses the many small
        element-wise kernels of a layer (RoPE, modulation, gates, casts). CUDA graphs are applied on top by
        :meth:`_capture` (so not the ``reduce-overhead`` mode). Any failure falls back to eager, with a warning."""
        try:
            self._prefill_fn = torch.compile(self._prefill_body, dynamic=False)
            self._step_fn = torch.compile(self._step_body, dynamic=False)
            self._run_all()  # compiles now (configure time), raises here if unsupported
            self.compiled = True
        except Exception as exc:  # noqa: BLE001 - any backend failure: keep the eager path
            warnings.warn(f"FastActionSampler: torch.compile failed, running eager ({exc!r:.300})", stacklevel=2)
            self.stats["compile_error"] = repr(exc)[:500]
            self._prefill_fn, self._step_fn = self._prefill_body, self._step_body
            self.compiled = False

    # ------------------------------------------------------------------------------------------ graphs
    @torch.no_grad()
    def _capture(self) -> None:
        """Capture the prefill and every action step as CUDA graphs (shared pool, replayed in capture order)."""
        dev = self.device
        side = torch.cuda.Stream(device=dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):  # warm-up: cuBLAS handles, SDPA kernel selection, allocator
            for _ in range(self.graph_warmup_iters):
                self._run_all()
        torch.cuda.current_stream(dev).wait_stream(side)
        torch.cuda.synchronize(dev)
        pool = torch.cuda.graph_pool_handle()
        kw = {"pool": pool}
        if "capture_error_mode" in inspect.signature(torch.cuda.graph.__init__).parameters:
            # a ROS node has other threads: only this thread's unsafe calls may abort the capture
            kw["capture_error_mode"] = "thread_local"
        graphs = []
        for fn in [self._run_prefill] + [functools.partial(self._run_step, i) for i in range(self.num_steps)]:
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g, **kw):
                fn()
            graphs.append(g)
        torch.cuda.synchronize(dev)
        self._pool, self._graphs = pool, graphs
        self.stats["graph_captures"] += 1

    # ------------------------------------------------------------------------------------------ public API
    def _ensure(self, latent_shape: Sequence[int], horizon: int) -> None:
        sig = _Signature(int(latent_shape[0]), tuple(int(s) for s in latent_shape), int(horizon))
        if self._sig is None or self._sig.key() != sig.key():
            self._allocate(sig)
        elif self._pending_text is not None:
            self._load_text_kv()
        if self.compile and self.compiled is None:
            self._compile()
        if self.use_cuda_graphs and self._graphs is None:
            self._capture()

    @torch.no_grad()
    def warmup(self, latent_shape: Sequence[int] | None = None, horizon: int | None = None, iters: int = 1) -> None:
        """Allocate the static buffers for ``latent_shape`` [B, 48, 1, h, w] (default: the config's image size,
        B = 1), capture the CUDA graphs on GPU, and run ``iters`` dummy replans. Call at node configure, after
        :meth:`set_instruction`."""
        if latent_shape is None:
            pc, vc = self.cfg.policy, self.cfg.vae
            f = int(vc.scale_factor_spatial)
            latent_shape = (1, self.cfg.video.in_dim, 1, pc.image_height // f, pc.image_width // f)
        h = int(self.cfg.policy.action_horizon if horizon is None else horizon)
        self._ensure(latent_shape, h)
        for _ in range(max(0, int(iters))):
            self._replay(None)
        if is_cuda(self.device):
            torch.cuda.synchronize(self.device)

    def _replay(self, timer: StageTimer | None, guided_beta: float | None = None) -> None:
        """Prefill + the N steps (graph replays where captured). ``guided_beta``: run the steps with VJP
        guidance, eagerly (the prefill still replays its graph)."""
        if timer is not None:
            timer.mark("start")
        if guided_beta is not None:
            if self._graphs is not None:
                self._graphs[0].replay()
            else:
                self._run_prefill()
            if timer is not None:
                timer.mark("prefill")
            for i in range(self.num_steps):
                self._run_guided_step(i, guided_beta)
                if timer is not None:
                    timer.mark(f"step_{i}")
        elif self._graphs is not None:
            self._graphs[0].replay()
            if timer is not None:
                timer.mark("prefill")
            for i, g in enumerate(self._graphs[1:]):
                g.replay()
                if timer is not None:
                    timer.mark(f"step_{i}")
        else:
            self._run_prefill()
            if timer is not None:
                timer.mark("prefill")
            for i in range(self.num_steps):
                self._run_step(i)
                if timer is not None:
                    timer.mark(f"step_{i}")

    @torch.no_grad()
    def sample(
        self,
        first_frame_latents: torch.Tensor,
        proprio_norm: torch.Tensor,
        noise: torch.Tensor,
        timings: dict[str, float] | None = None,
        clone: bool = True,
        prefix: torch.Tensor | None = None,
        prefix_weight: torch.Tensor | None = None,
        rtc_mode: str = "inpaint",
        guidance_beta: float = DEFAULT_GUIDANCE_BETA,
    ) -> torch.Tensor:
        """Normalised action chunk [B, H, A] (on the model device, model dtype) for first-frame latents
        [B, 48, 1, h, w], normalised proprio [B, P] and initial noise [B, H, A]. ``prefix`` [B, d, A] /
        ``prefix_weight`` / ``rtc_mode`` / ``guidance_beta``: real-time chunking exactly as
        ``FastWAM.infer_action`` does it. ``inpaint`` and ``off`` run the captured graphs / compiled steps;
        ``guided`` runs the N action steps eagerly (a forward and a backward through the action expert per
        step; CUDA graphs and torch.compile are not used for them), the prefill as usual.

        ``timings``: if given, filled with seconds for ``prefill`` and ``step_0..`` (synchronises once at the
        end on GPU). ``clone=False`` returns the static action buffer itself (overwritten by the next call)."""
        if self.text_key is None:
            raise RuntimeError("no instruction set: call set_instruction(key, text_embeds) first")
        if first_frame_latents.ndim != 5 or first_frame_latents.shape[2] != 1:
            raise ValueError(f"first_frame_latents must be [B, C, 1, h, w], got {tuple(first_frame_latents.shape)}")
        b = int(first_frame_latents.shape[0])
        if noise.ndim != 3 or noise.shape[0] != b or noise.shape[2] != self.cfg.action_dim:
            raise ValueError(f"noise must be [{b}, H, {self.cfg.action_dim}], got {tuple(noise.shape)}")
        if proprio_norm.ndim == 3:
            proprio_norm = proprio_norm[:, 0]
        if tuple(proprio_norm.shape) != (b, self.cfg.proprio_dim):
            raise ValueError(f"proprio_norm must be [{b}, {self.cfg.proprio_dim}], got {tuple(proprio_norm.shape)}")
        self._ensure(first_frame_latents.shape, int(noise.shape[1]))
        buf = self._buf
        nb = is_cuda(self.device)
        buf["latents"].copy_(first_frame_latents, non_blocking=nb)
        buf["proprio"].copy_(proprio_norm, non_blocking=nb)
        buf["noise"].copy_(noise, non_blocking=nb)
        if not float(guidance_beta) > 0:
            raise ValueError(f"guidance_beta must be > 0, got {guidance_beta}")
        if prefix is None or check_mode(rtc_mode) == "off":
            buf["guide_weight"].zero_()  # weight 0 makes the inpainting step a no-op (the target is never used)
        else:
            target, weight = self.model.prefix_guidance_buffers(buf["noise"], prefix, prefix_weight)
            buf["guide_target"].copy_(target)
            buf["guide_weight"].copy_(weight)
        guided = prefix is not None and rtc_mode == "guided"
        timer = StageTimer(self.device) if timings is not None else None
        self._replay(timer, float(guidance_beta) if guided else None)
        self.stats["calls"] += 1
        if timer is not None:
            if timer.cuda:
                torch.cuda.synchronize(self.device)
            timings.update(timer.durations())
        return buf["action"].clone() if clone else buf["action"]


__all__ = ["FastActionSampler", "HostStaging", "SUPPORTED_VARIANTS", "apply_rope_tables", "rope_tables"]
