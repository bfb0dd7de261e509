"""Parity checker against official Fast-WAM fixtures.

    python -m fastwam_ros.model.parity FIXTURE_DIR [--tol 1e-5]

Builds the model from the fixture's own config (``fixtures.json`` -> ``config``), loads its official checkpoint
strictly, replays every recorded case (training forwards of all variants, cached / uncached / joint / IDM
inference, action-expert initialisation, scheduler, normaliser) and prints one line per check with the max abs
error. Exit status 1 if any check exceeds the tolerance (or a case cannot run).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoints.action_init import init_action_expert_state
from .checkpoints.checkpoint import load_official_checkpoint
from .config import FastWAMConfig, config_from_official
from .network.fastwam import DRAW_ORDER, FastWAM
from .network.flow import FlowMatchScheduler
from .network.masks import fastwam_mask, joint_mask
from .processing.normalizer import LinearNormalizer

DEFAULT_TOL = 1e-5
TRAIN_FILES = {"fastwam": "train_uncond", "joint": "train_joint", "idm": "train_idm"}


@dataclass
class Check:
    name: str
    max_abs_err: float
    tol: float
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.max_abs_err <= self.tol  # NaN fails

    def line(self) -> str:
        tag = "PASS" if self.ok else "FAIL"
        note = f"  ({self.note})" if self.note else ""
        return f"{tag}  {self.name:<58s} max_abs_err={self.max_abs_err:.3e}{note}"


def max_abs(a, b) -> float:
    a = torch.as_tensor(a).detach().to(torch.float64).cpu()
    b = torch.as_tensor(b).detach().to(torch.float64).cpu()
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.numel() == 0:
        return 0.0
    return float((a - b).abs().max())


class Fixture:
    """Read access to a fixture folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta = self.root / "fixtures.json"
        if not meta.is_file():
            raise FileNotFoundError(f"{meta} not found: not a parity fixture folder")
        self.meta = json.loads(meta.read_text())
        self._cache: dict[str, dict[str, torch.Tensor]] = {}

    def tensors(self, stem: str) -> dict[str, torch.Tensor]:
        if stem not in self._cache:
            from safetensors.torch import load_file

            p = self.root / f"{stem}.safetensors"
            if not p.is_file():
                raise FileNotFoundError(f"fixture file missing: {p}")
            self._cache[stem] = load_file(str(p))
        return self._cache[stem]

    def config(self, variant: str = "fastwam") -> FastWAMConfig:
        off = self.meta["config"]
        cfg = config_from_official(off, variant)
        vf, lf = off.get("video_frames"), off.get("latent_frames")
        if vf and lf and lf > 1:
            cfg.vae.scale_factor_temporal = (int(vf) - 1) // (int(lf) - 1)
        cfg.policy.seed = int(self.meta.get("inference", {}).get("seed", cfg.policy.seed))
        return cfg.validate()


def build_model(fx: Fixture, variant: str) -> tuple[FastWAM, dict]:
    torch.manual_seed(0)
    model = FastWAM(fx.config(variant)).eval()
    report = load_official_checkpoint(model, fx.root / "checkpoint_official_format.pt")
    return model, report


def _cmp(checks, name, mine, ref, tol, note=""):
    checks.append(Check(name, max_abs(mine, ref), tol, note))


def check_checkpoint(fx: Fixture, tol: float) -> list[Check]:
    checks = []
    model, rep = build_model(fx, "fastwam")
    n_bad = len(rep["missing"]) + len(rep["unexpected"])
    checks.append(Check("checkpoint .pt strict load", float(n_bad), 0.0,
                        f"{len(rep['missing'])} missing / {len(rep['unexpected'])} unexpected, "
                        f"{rep['num_tensors']} tensors"))
    other = FastWAM(fx.config("fastwam"))
    rep2 = load_official_checkpoint(other, fx.root / "model_state_dict.safetensors")
    checks.append(Check("checkpoint .safetensors strict load",
                        float(len(rep2["missing"]) + len(rep2["unexpected"])), 0.0,
                        f"{len(rep2['missing'])} missing / {len(rep2['unexpected'])} unexpected"))
    sa, sb = model.state_dict(), other.state_dict()
    checks.append(Check("checkpoint .pt == .safetensors weights",
                        max(max_abs(sa[k], sb[k]) for k in sa), 0.0))
    return checks


def check_training(fx: Fixture, variant: str, tol: float) -> list[Check]:
    stem = TRAIN_FILES[variant]
    f = fx.tensors(stem)
    model, _ = build_model(fx, variant)
    batch = {
        "video_latents": f["sample.clean_latents"],
        "actions": f["sample.clean_action"],
        "proprio": f["sample.proprio"],
        "text_embeds": f["sample.text_context"],
        "action_is_pad": f.get("sample.action_is_pad"),
        "image_is_pad": f.get("sample.image_is_pad"),
    }
    draws = {k[4:]: v for k, v in f.items() if k.startswith("rng.")}
    out = model.training_loss(batch, draws=draws)
    checks: list[Check] = []
    p = f"train[{variant}] "
    pairs = [
        ("timestep_video", "timestep_video"), ("timestep_action", "timestep_action"),
        ("noisy_video_latents", "model_in.video_latents"),
        ("video_token_timesteps", "model_in.video_token_timesteps"),
        ("noisy_actions", "model_in.action_tokens_noisy"), ("context", "model_in.context"),
        ("target_video", "target_video"), ("target_action", "target_action"),
        ("attention_mask", "attention_mask"),
        ("pred_video", "pred_video"), ("pred_action", "pred_action"),
        ("video_frame_mse", "loss.video_frame_mse"), ("video_per_sample", "loss.video_per_sample"),
        ("video_weight", "loss.video_weight"), ("action_token_mse", "loss.action_token_mse"),
        ("action_per_sample", "loss.action_per_sample"), ("action_weight", "loss.action_weight"),
        ("loss_video", "loss.video"), ("loss_action", "loss.action"), ("loss", "loss.total"),
    ]
    if variant == "idm":
        pairs += [
            ("cond_video_latents", "model_in.cond_video_latents"),
            ("timestep_video_cond", "timestep_video_cond"),
            ("cond_video_token_timesteps", "model_in.cond_video_token_timesteps"),
            ("timestep_video_cond_sampled", "timestep_video_cond_sampled"),
        ]
    for mine, ref in pairs:
        if ref in f:
            _cmp(checks, p + mine, out[mine], f[ref], tol)
    # the random draws replay from the global generator in the official order
    seed = fx.meta["training"][{"fastwam": "uncond"}.get(variant, variant)]["rng_seed"]
    torch.manual_seed(int(seed))
    out2 = model.training_loss(batch)
    _cmp(checks, p + "seeded replay (draw order) loss", out2["loss"], f["loss.total"], tol,
         "draws: " + ",".join(k for k in DRAW_ORDER if k in draws))
    return checks


def check_inference(fx: Fixture, tol: float) -> list[Check]:
    f = fx.tensors("infer")
    checks: list[Check] = []
    inf = fx.meta.get("inference", {})
    n_steps = int(inf.get("num_inference_steps", 10))
    shift = float(inf.get("shift", 5.0))
    ff, txt, prop = f["in.first_frame_latents"], f["in.text_context"], f["in.proprio"]
    noise = f["initial_noise"]
    g = torch.Generator("cpu").manual_seed(int(inf.get("seed", 42)))
    _cmp(checks, "infer initial noise == randn(seed)", torch.randn(noise.shape, generator=g), noise, 0.0)

    model, _ = build_model(fx, "fastwam")
    _cmp(checks, "infer context (text + proprio token)", model.build_context(txt, prop), f["context_full"], tol)
    sig = model.infer_scheduler.sigmas(n_steps, shift)
    _cmp(checks, "infer sigmas", sig, f["sigmas"], tol)
    a, tr = model.infer_action(ff, txt, prop, noise, n_steps, shift, use_cache=True, return_trace=True)
    _cmp(checks, "infer timesteps", tr["timesteps"], f["timesteps"], tol)
    _cmp(checks, "infer deltas", tr["deltas"], f["deltas"], tol)
    tpf = ff.shape[3] * ff.shape[4] // (model.cfg.video.patch_size[1] * model.cfg.video.patch_size[2])
    _cmp(checks, "infer attention mask [first frame ; actions]",
         fastwam_mask(tpf, noise.shape[1], tpf), f["attention_mask"], 0.0)
    _cmp(checks, "infer cached: video K cache (all layers)", tr["kv_cache_k"], f["kv_cache.k"], tol)
    _cmp(checks, "infer cached: video V cache (all layers)", tr["kv_cache_v"], f["kv_cache.v"], tol)
    _cmp(checks, "infer cached: velocity (every step)", tr["velocity"], f["infer_action.velocity"], tol)
    _cmp(checks, "infer cached: trajectory (every step)", tr["trajectory"], f["infer_action.trajectory"], tol)
    _cmp(checks, "infer cached: action", a[0], f["infer_action.action"], tol)

    a2, tr2 = model.infer_action(ff, txt, prop, noise, n_steps, shift, use_cache=False, return_trace=True)
    _cmp(checks, "infer uncached: velocity (every step)", tr2["velocity"], f["full.velocity"], tol)
    _cmp(checks, "infer uncached: trajectory (every step)", tr2["trajectory"], f["full.trajectory"], tol)
    _cmp(checks, "infer uncached: action", a2[0], f["full.action"], tol)
    _cmp(checks, "infer cached vs uncached (ours)", a, a2, tol)

    tkv = model.precompute_text_kv(txt)
    a3 = model.infer_action(ff, txt, prop, noise, n_steps, shift, text_kv=tkv)
    _cmp(checks, "infer cached + per-instruction text K/V: action", a3[0], f["infer_action.action"], tol)

    if "joint_uncond.action" in f:
        vn = f["joint_uncond.initial_video_noise"]
        g = torch.Generator("cpu").manual_seed(int(inf.get("seed", 42)))
        ref_vn = torch.randn(vn.shape, generator=g)
        _cmp(checks, "joint_uncond video noise (frames 1..) == randn(seed)", ref_vn[:, :, 1:], vn[:, :, 1:], 0.0)
        v, aj, trj = model.infer_joint(ff, txt, prop, noise, vn, n_steps, shift, return_trace=True)
        _cmp(checks, "joint_uncond: video velocity step 0", trj["video_velocity_step0"],
             f["joint_uncond.video_velocity_step0"], tol)
        _cmp(checks, "joint_uncond: action trajectory", trj["trajectory"], f["joint_uncond.action_trajectory"], tol)
        _cmp(checks, "joint_uncond: final video latents", v, f["joint_uncond.video_final"], tol)
        _cmp(checks, "joint_uncond: action", aj[0], f["joint_uncond.action"], tol)

    for variant in ("joint", "idm"):
        key = f"{variant}.action"
        if key not in f:
            continue
        m, _ = build_model(fx, variant)
        vn = f[f"{variant}.initial_video_noise"]
        av, trv = m.infer_action(ff, txt, prop, noise, n_steps, shift, video_noise=vn, return_trace=True)
        fv = vn.shape[2]
        sv = fv * tpf
        _cmp(checks, f"{variant}: attention mask", joint_mask(sv, noise.shape[1], tpf),
             f[f"{variant}.attention_mask"], 0.0)
        _cmp(checks, f"{variant}: action trajectory (every step)", trv["trajectory"],
             f[f"{variant}.action_trajectory"], tol)
        _cmp(checks, f"{variant}: final video latents", trv["video_final"], f[f"{variant}.video_final"], tol)
        _cmp(checks, f"{variant}: action", av[0], f[key], tol)
        if variant == "idm":
            au = m.infer_action(ff, txt, prop, noise, n_steps, shift, video_noise=vn, use_cache=False)
            _cmp(checks, "idm: uncached stage 2 action", au[0], f[key], tol)
        if variant == "joint":
            g = torch.Generator("cpu").manual_seed(int(inf.get("seed", 42)))
            aa = m.infer_action(ff, txt, prop, noise, n_steps, shift,
                                num_video_frames=1 + m.cfg.vae.scale_factor_temporal * (fv - 1),
                                seed=int(inf.get("seed", 42)))
            _cmp(checks, "joint: action with seeded video noise", aa[0], f[key], tol)
    return checks


def check_action_init(fx: Fixture, tol: float) -> list[Check]:
    checks: list[Check] = []
    src = fx.tensors("action_init_input_video_dit")
    cfg = fx.config("fastwam")
    for alpha, stem in ((True, "action_init_output_alpha"), (False, "action_init_output_noalpha")):
        ref = fx.tensors(stem)
        out, _ = init_action_expert_state(src, cfg.action, alpha_scaling=alpha)
        extra, lack = sorted(set(out) - set(ref)), sorted(set(ref) - set(out))
        checks.append(Check(f"action init ({'alpha' if alpha else 'no alpha'}): key set",
                            float(len(extra) + len(lack)), 0.0,
                            f"{len(out)} keys" + (f"; extra {extra} missing {lack}" if extra or lack else "")))
        common = [k for k in ref if k in out]
        checks.append(Check(f"action init ({'alpha' if alpha else 'no alpha'}): tensors",
                            max(max_abs(out[k], ref[k]) for k in common), tol))
    return checks


def check_scheduler(fx: Fixture, tol: float) -> list[Check]:
    f = fx.tensors("scheduler")
    meta = fx.meta.get("scheduler", {})
    s = FlowMatchScheduler(int(meta.get("num_train_timesteps", 1000)), float(meta.get("shift", 5.0)))
    checks: list[Check] = []
    if "weight_y_min" in meta:
        checks.append(Check("scheduler weight y_min", abs(s.weight_y_min - meta["weight_y_min"]), 1e-12))
        checks.append(Check("scheduler weight norm const", abs(s.weight_norm_const - meta["weight_norm_const"]),
                            1e-12))
    steps = sorted({int(k.split(".")[0][1:]) for k in f if k.startswith("N")})
    for n in steps:
        _cmp(checks, f"scheduler N={n} sigmas", s.sigmas(n), f[f"N{n}.sigmas"], tol)
        t32, d32 = s.inference_schedule(n, torch.float32)
        _cmp(checks, f"scheduler N={n} timesteps fp32 / T", t32 / s.num_train_timesteps,
             f[f"N{n}.timesteps_fp32"] / s.num_train_timesteps, tol, "compared in sigma units")
        _cmp(checks, f"scheduler N={n} deltas fp32", d32, f[f"N{n}.deltas_fp32"], tol)
        tb, db = s.inference_schedule(n, torch.bfloat16)
        _cmp(checks, f"scheduler N={n} timesteps bf16 cast", tb, f[f"N{n}.timesteps_bf16"], 0.0)
        _cmp(checks, f"scheduler N={n} deltas bf16 cast", db, f[f"N{n}.deltas_bf16"], 0.0)
    _cmp(checks, "scheduler loss weight w(t)", s.training_weight(f["weight.t"]), f["weight.w"], tol)
    _cmp(checks, "scheduler loss weight w(bf16 t)", s.training_weight(f["weight.t_bf16"]), f["weight.w_of_bf16"], tol)
    torch.manual_seed(int(meta.get("sample_seed", 0)))
    n = f["sample.u"].shape[0]
    t = s.sample_training_t(n, torch.float32)
    _cmp(checks, "scheduler seeded training t (fp32) / T", t / s.num_train_timesteps,
         f["sample.t_fp32"] / s.num_train_timesteps, tol, "compared in sigma units")
    _cmp(checks, "scheduler training t from u (bf16)", s.timesteps_from_uniform(f["sample.u"], torch.bfloat16),
         f["sample.t_bf16"], 0.0)
    return checks


def check_normalizer(fx: Fixture, tol: float) -> list[Check]:
    f = fx.tensors("normalizer")
    clamp = fx.meta.get("normalizer", {}).get("clamp", [-5.0, 5.0])
    stats = {k.split(".", 1)[1]: v for k, v in f.items() if k.startswith("stats.")}
    checks: list[Check] = []
    for mode, p in (("min/max", "minmax"), ("z-score", "zscore")):
        n = LinearNormalizer.from_stats(stats, mode, clamp=float(clamp[1]))
        _cmp(checks, f"normalizer {mode} scale", n.scale, f[f"{p}.scale"], tol)
        _cmp(checks, f"normalizer {mode} offset", n.offset, f[f"{p}.offset"], tol)
        fwd = n.forward(f["x"])
        _cmp(checks, f"normalizer {mode} forward (clamped)", fwd, f[f"{p}.forward_x"], tol)
        _cmp(checks, f"normalizer {mode} inverse(forward)", n.inverse(fwd), f[f"{p}.backward_forward_x"], tol * 10,
             "raw units")
        _cmp(checks, f"normalizer {mode} inverse(y)", n.inverse(f["y_rand"]), f[f"{p}.backward_y_rand"], tol * 10,
             "raw units")
    return checks


SECTIONS = {
    "checkpoint": check_checkpoint,
    "train_fastwam": lambda fx, tol: check_training(fx, "fastwam", tol),
    "train_joint": lambda fx, tol: check_training(fx, "joint", tol),
    "train_idm": lambda fx, tol: check_training(fx, "idm", tol),
    "inference": check_inference,
    "action_init": check_action_init,
    "scheduler": check_scheduler,
    "normalizer": check_normalizer,
}


def run_parity(fixture_dir: str | Path, tol: float = DEFAULT_TOL, sections=None, stream=None) -> list[Check]:
    """Run the selected sections (all by default); print each check to ``stream`` if given."""
    fx = Fixture(fixture_dir)
    results: list[Check] = []
    with torch.no_grad():
        for name in sections or SECTIONS:
            try:
                got = SECTIONS[name](fx, tol)
            except Exception as e:  # noqa: BLE001 - a case that cannot run is a failed check
                got = [Check(f"{name}: could not run", float("inf"), tol, f"{type(e).__name__}: {e}")]
                if stream is not None:
                    traceback.print_exc(file=stream)
            for c in got:
                if stream is not None:
                    print(c.line(), file=stream)
            results.extend(got)
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fixture_dir")
    ap.add_argument("--tol", type=float, default=DEFAULT_TOL, help="max abs error allowed (default 1e-5)")
    ap.add_argument("--section", action="append", choices=sorted(SECTIONS), help="run only these sections")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    try:
        results = run_parity(args.fixture_dir, args.tol, args.section, stream=sys.stdout)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    bad = [c for c in results if not c.ok]
    worst = max((c.max_abs_err for c in results), default=0.0)
    print(f"{len(results) - len(bad)}/{len(results)} checks passed; worst max_abs_err={worst:.3e}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
