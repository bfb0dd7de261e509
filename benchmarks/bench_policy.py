"""Per-stage latency of one Fast-WAM replan: the fast path (fastwam_ros.model.inference.fast_path) and, with
``--reference``, the straightforward implementation of the official algorithm on identical inputs.

Weights are random at the configured sizes (nothing is downloaded). Stages of one replan:

  perception    3 synthetic 480x640 RGB camera images -> tiled float32 [3, H, W] in [-1, 1] (fastwam_ros.perception)
  h2d           frame, normalised proprio, initial noise -> device (pinned + non_blocking on GPU in the fast path)
  vae_encode    Wan2.2 VAE posterior mean of the frame, normalised
  text          fast: instruction-embedding + per-layer text K/V cache lookup; reference: UMT5 encoder every call
  prefill       video expert over the first-frame tokens -> per-layer video K/V (fast: + the proprio context row)
  step_0..N-1   each Euler action step (fast: CUDA graph replays on GPU)
  d2h           action chunk -> host (float32)
  denormalise   action normaliser inverse
  total         wall time of the whole replan (perf_counter, device synchronised at the end)

Synchronisation: the device is synchronised between stages (torch.cuda.synchronize); inside the model the
prefill / step times come from CUDA events (GPU) or perf_counter (CPU). Figures are p50 / p95 / mean over
``--iters`` iterations after ``--warmup`` untimed ones. Peak memory: torch.cuda.max_memory_allocated on GPU,
the process's peak RSS (ru_maxrss, whole process lifetime) on CPU.

The reference (``--reference``) is the official algorithm as written (reference spec §2.2, §2.6): text encoder on
every call, context projections and cross-attention K/V recomputed every step, per-token time MLP in the
prefill, boolean masks always passed, K/V concatenated per layer, pageable copies, no graphs. The script reports
the speed-up (reference p50 / fast p50) and the max |difference| of the two chunks over all iterations.

``--config wan22_5b`` on a CPU is not timed (6 B + 5.7 B parameters do not fit a small machine): the models are
built on the meta device and the sizes and the memory-bandwidth floor are printed. On an H100::

  python benchmarks/bench_policy.py --config wan22_5b --device cuda --dtype bfloat16 --iters 50 --json
  python benchmarks/bench_policy.py --config wan22_5b --device cuda --dtype bfloat16 --iters 50 --json --reference

Usage: python benchmarks/bench_policy.py [--config tiny] [--device cpu] [--dtype float32] [--iters 30]
       [--warmup 5] [--reference] [--json] [--threads N] [--no-graphs] [--compile auto|on|off] [--meta]

The fast path's configure time (instruction K/V, buffers, torch.compile, CUDA-graph capture) is reported as
``fast.configure_s``; it is not part of the per-replan figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastwam_ros.model.config import FastWAMConfig, load_config  # noqa: E402
from fastwam_ros.model.inference.fast_path import FastActionSampler, HostStaging
from fastwam_ros.model.inference.reference_sampler import ReferenceSampler  # noqa: E402
from fastwam_ros.model.network.fastwam import FastWAM  # noqa: E402

H100_HBM_BYTES_PER_S = 3.35e12  # H100 SXM5 HBM3 peak
INSTRUCTION = "fold the towel"
N_OBS = 4  # distinct synthetic observations, cycled


# ------------------------------------------------------------------------------------------------ helpers
def _dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
            "float16": torch.float16, "fp16": torch.float16}[name]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name} ({os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()})"


def _summary(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64) * 1e3
    return {"p50_ms": round(float(np.percentile(a, 50)), 4), "p95_ms": round(float(np.percentile(a, 95)), 4),
            "mean_ms": round(float(a.mean()), 4)}


def _params(module: torch.nn.Module, skip: tuple[str, ...] = ()) -> int:
    return sum(p.numel() for n, p in module.named_parameters() if not any(s in n for s in skip))


def _tiling_dims(cfg: FastWAMConfig) -> tuple[tuple[int, int], tuple[int, int]]:
    """(top_hw, bottom_tile_hw) of the RoboTwin layout filling the config's image size."""
    h, w = cfg.policy.image_height, cfg.policy.image_width
    bottom = h // 3
    return (h - bottom, w), (bottom, w // 2)


# ------------------------------------------------------------------------------------------------ sizes
def size_report(cfg: FastWAMConfig, dtype: torch.dtype) -> dict:
    """Parameter counts (meta device) and the weight-read floor of one replan at H100 HBM bandwidth."""
    from diffusers import AutoencoderKLWan
    from transformers import UMT5Config, UMT5EncoderModel

    from fastwam_ros.model.network.action_expert import ActionExpert
    from fastwam_ros.model.network.video_expert import VideoExpert
    from fastwam_ros.model.processing.encoders import wan22_vae_config

    model = torch.nn.Module()  # the FastWAM parameter tree (its scheduler needs real tensors, so not on meta)
    with torch.device("meta"):
        model.video_expert = VideoExpert(cfg.video)
        model.action_expert = ActionExpert(cfg.action)
        model.proprio_encoder = torch.nn.Linear(cfg.proprio_dim, cfg.text_dim)
        vae = AutoencoderKLWan(**wan22_vae_config(**dict(cfg.vae.__dict__)))
        tc = cfg.text_encoder
        t5 = UMT5EncoderModel(UMT5Config(vocab_size=tc.vocab_size, d_model=tc.d_model, d_kv=tc.d_kv, d_ff=tc.d_ff,
                                         num_layers=tc.num_layers, num_heads=tc.num_heads,
                                         feed_forward_proj=tc.feed_forward_proj))
    cached = ("attn2.to_k", "attn2.to_v", "attn2.norm_k")  # per-instruction text K/V: not read per replan
    video_blocks = _params(model.video_expert.blocks, cached)
    action_blocks = _params(model.action_expert.blocks, cached)
    vae_enc = _params(vae.encoder) + _params(vae.quant_conv)
    steps = cfg.flow.num_inference_steps
    el = torch.finfo(dtype).bits // 8
    read = el * (video_blocks + steps * action_blocks + vae_enc)
    read_all = el * (_params(model.video_expert) + steps * _params(model.action_expert) + vae_enc)
    sv = (cfg.policy.image_height // 32) * (cfg.policy.image_width // 32)
    return {
        "params": {
            "video_expert": _params(model.video_expert), "action_expert": _params(model.action_expert),
            "proprio_encoder": _params(model.proprio_encoder), "vae": _params(vae), "vae_encoder": vae_enc,
            "text_encoder": _params(t5),
        },
        "video_tokens": sv, "context_rows": cfg.policy.text_len + 1, "action_horizon": cfg.policy.action_horizon,
        "num_steps": steps,
        "weight_bytes_read_per_replan": read,
        "bandwidth_floor_ms_h100_peak": round(read / H100_HBM_BYTES_PER_S * 1e3, 3),
        "weight_bytes_all_params": read_all,
        "bandwidth_floor_all_params_ms_h100_peak": round(read_all / H100_HBM_BYTES_PER_S * 1e3, 3),
        "size_dtype": str(dtype).replace("torch.", ""),
        "floor_note": "weights read once per replan: video blocks once (prefill), action blocks once per step, "
                      "VAE encoder once; text K/V projections cached (the all_params figure reads every expert "
                      "weight); activations, KV and attention ignored; "
                      f"H100 SXM peak {H100_HBM_BYTES_PER_S / 1e12:.2f} TB/s (sustained ~80-90 %)",
    }


# ------------------------------------------------------------------------------------------------ build
def build(cfg: FastWAMConfig, device: torch.device, dtype: torch.dtype, seed: int):
    """Random model, VAE, UMT5 text encoder (offline tiny tokenizer, real encoder size) and normaliser."""
    from transformers import UMT5Config, UMT5EncoderModel

    from fastwam_ros.model.processing.encoders import WanVAE
    from fastwam_ros.model.processing.normalizer import LinearNormalizer, StateActionNormalizer
    from fastwam_ros.model.processing.text import TextEncoder, build_tiny_tokenizer
    from fastwam_ros.model.processing.text_cache import TextEmbeddingCache

    torch.manual_seed(seed)
    with torch.device(device):  # initialise where the weights live; cast per component (bounded peak memory)
        model = FastWAM(cfg).to(dtype).eval()
        vae = WanVAE.from_vae_config(cfg.vae, seed=seed + 1).to(dtype).eval()
        tc = cfg.text_encoder
        tok = build_tiny_tokenizer()
        t5 = UMT5EncoderModel(UMT5Config(
            vocab_size=max(tc.vocab_size, len(tok)), d_model=tc.d_model, d_kv=tc.d_kv, d_ff=tc.d_ff,
            num_layers=tc.num_layers, num_heads=tc.num_heads, feed_forward_proj=tc.feed_forward_proj,
            relative_attention_num_buckets=tc.relative_attention_num_buckets,
            relative_attention_max_distance=tc.relative_attention_max_distance, dropout_rate=0.0,
            pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        )).to(dtype).eval()
    encoder = TextEncoder(tok, t5, max_length=cfg.policy.text_len, identity=f"bench-random-{cfg.name}-{seed}")
    cache = TextEmbeddingCache(encoder, template=cfg.policy.prompt_template)
    rng = np.random.default_rng(seed)
    norm = StateActionNormalizer(
        LinearNormalizer(rng.uniform(0.5, 2.0, cfg.proprio_dim), rng.normal(0, 0.1, cfg.proprio_dim),
                         cfg.normalization.clamp, cfg.normalization.mode),
        LinearNormalizer(rng.uniform(0.5, 2.0, cfg.action_dim), rng.normal(0, 0.1, cfg.action_dim),
                         cfg.normalization.clamp, cfg.normalization.mode),
    )
    return model, vae, encoder, cache, norm


def make_observations(cfg: FastWAMConfig, seed: int):
    """N_OBS sets of 3 camera images (uint8 480x640), raw proprio and initial noise (official: CPU generator)."""
    rng = np.random.default_rng(seed + 100)
    obs = []
    for i in range(N_OBS):
        base = rng.integers(0, 256, size=(3, 60, 80, 3), dtype=np.uint8)  # smooth-ish content, upsampled
        cams = {n: np.ascontiguousarray(np.repeat(np.repeat(base[j], 8, 0), 8, 1))
                for j, n in enumerate(("head", "left", "right"))}
        proprio = rng.normal(0, 0.5, cfg.proprio_dim).astype(np.float32)
        g = torch.Generator("cpu").manual_seed(cfg.policy.seed + i)
        noise = torch.randn((1, cfg.policy.action_horizon, cfg.action_dim), generator=g, dtype=torch.float32)
        obs.append((cams, proprio, noise))
    return obs


def perception_fn(cfg: FastWAMConfig):
    """images -> float32 [3, H, W] in [-1, 1] via fastwam_ros.perception (RoboTwin 3-camera tiling)."""
    from fastwam_ros.perception.config import PerceptionConfig
    from fastwam_ros.perception.pipeline import preprocess_frames

    top, bottom = _tiling_dims(cfg)
    pc = PerceptionConfig.from_dict({
        "cameras": [{"name": "head"}, {"name": "left"}, {"name": "right"}],
        "layout": "robotwin", "top_hw": list(top), "bottom_tile_hw": list(bottom),
    })
    return lambda cams: preprocess_frames(cams, pc)


# ------------------------------------------------------------------------------------------------ runs
class StageClock:
    def __init__(self, device: torch.device):
        self.device = device
        self.t = time.perf_counter()
        self.stages: dict[str, float] = {}

    def lap(self, name: str) -> None:
        _sync(self.device)
        now = time.perf_counter()
        self.stages[name] = now - self.t
        self.t = now


def _record(clk: StageClock, inner: dict[str, float], total_s: float) -> dict[str, float]:
    """One iteration's stage times (s): the outer laps, the sampler's own prefill/step times, the rest of the
    model lap as ``model_overhead``, and the wall total."""
    rec = {k: v for k, v in clk.stages.items() if k != "model"}
    rec.update(inner)
    rec["model_overhead"] = max(clk.stages["model"] - sum(inner.values()), 0.0)
    rec["total"] = total_s
    return rec


def run_fast(parts, obs, cfg, device, dtype, iters, warmup, use_graphs, compile_flag):
    model, vae, encoder, cache, norm = parts
    perceive = perception_fn(cfg)
    staging = HostStaging(device)
    eng = FastActionSampler(model, use_cuda_graphs=use_graphs, compile=compile_flag)
    key = f"{cache.encoder_id}\n{cache.prompt_for(INSTRUCTION)}"
    # node configure: embed the instruction once, build buffers, capture graphs
    t0 = time.perf_counter()
    eng.set_instruction(key, cache.get(INSTRUCTION).to(device, dtype).unsqueeze(0))
    eng.warmup(iters=1)
    configure_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    records, outputs = [], {}
    for it in range(warmup + iters):
        idx = it % N_OBS
        cams, proprio, noise = obs[idx]
        t_start = time.perf_counter()
        clk = StageClock(device)
        frame = perceive(cams)
        clk.lap("perception")
        state = norm.state.forward(torch.from_numpy(proprio)).reshape(1, -1)
        frame_d = staging.to_device("frame", frame, dtype).unsqueeze(0)
        prop_d = staging.to_device("proprio", state, dtype)
        noise_d = staging.to_device("noise", noise, dtype)
        clk.lap("h2d")
        lat = vae.encode_frames(frame_d)
        clk.lap("vae_encode")
        if eng.text_key != key:  # instruction changed: (cached) embedding -> text K/V, once
            eng.set_instruction(key, cache.get(INSTRUCTION).to(device, dtype).unsqueeze(0))
        clk.lap("text")
        inner: dict[str, float] = {}
        a_dev = eng.sample(lat, prop_d, noise_d, timings=inner, clone=False)
        clk.lap("model")
        a_norm = staging.to_host("actions", a_dev[0]).clone()
        clk.lap("d2h")
        actions = norm.action.inverse(a_norm)
        clk.lap("denormalise")
        total = time.perf_counter() - t_start
        if it >= warmup:
            records.append(_record(clk, inner, total))
        outputs[idx] = (a_norm.numpy().copy(), actions.numpy().copy())
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return records, outputs, {"configure_s": round(configure_s, 4), "cuda_graphs": eng.graphs_captured,
                              "compiled": eng.compiled,
                              "peak_device_memory_mb": None if peak is None else round(peak / 2**20, 1),
                              "engine_stats": dict(eng.stats)}


def run_reference(parts, obs, cfg, device, dtype, iters, warmup):
    model, vae, encoder, cache, norm = parts
    perceive = perception_fn(cfg)
    ref = ReferenceSampler(model)
    prompt = cache.prompt_for(INSTRUCTION)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    records, outputs = [], {}
    for it in range(warmup + iters):
        idx = it % N_OBS
        cams, proprio, noise = obs[idx]
        t_start = time.perf_counter()
        clk = StageClock(device)
        frame = perceive(cams)
        clk.lap("perception")
        state = norm.state.forward(torch.from_numpy(proprio)).reshape(1, -1)
        frame_d = torch.from_numpy(frame).to(device).to(dtype).unsqueeze(0)
        prop_d = state.to(device).to(dtype)
        noise_d = noise.to(device).to(dtype)
        clk.lap("h2d")
        lat = vae.encode_frames(frame_d)
        clk.lap("vae_encode")
        text = encoder.encode([prompt])  # the official code runs T5 on every replan
        clk.lap("text")
        inner: dict[str, float] = {}
        a_dev = ref.sample(lat, text, prop_d, noise_d, timings=inner)
        clk.lap("model")
        a_norm = a_dev[0].float().cpu()
        clk.lap("d2h")
        actions = norm.action.inverse(a_norm)
        clk.lap("denormalise")
        total = time.perf_counter() - t_start
        if it >= warmup:
            records.append(_record(clk, inner, total))
        outputs[idx] = (a_norm.numpy().copy(), actions.numpy().copy())
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return records, outputs, {"peak_device_memory_mb": None if peak is None else round(peak / 2**20, 1)}


def summarise(records: list[dict[str, float]], num_steps: int) -> dict:
    keys = list(records[0])
    stages = {k: _summary([r[k] for r in records]) for k in keys}
    steps = [sum(r[f"step_{i}"] for i in range(num_steps)) for r in records]
    stages["action_steps_total"] = _summary(steps)
    stages["model_total"] = _summary([r["text"] + r["prefill"] + s + r["model_overhead"]
                                      for r, s in zip(records, steps)])
    return stages


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="tiny", help="tiny | wan22_5b | path to a config YAML/JSON")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None, help="float32 | bfloat16 (default: float32 on CPU, bfloat16 on GPU)")
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--reference", action="store_true", help="also run the straightforward official algorithm")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-graphs", action="store_true", help="fast path without CUDA graphs (ablation)")
    ap.add_argument("--compile", default="auto", choices=("auto", "on", "off"),
                    help="torch.compile the fast path's prefill/step bodies (auto: on for CUDA)")
    ap.add_argument("--meta", action="store_true", help="sizes and bandwidth floor only (no timing)")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = _dtype(args.dtype or ("bfloat16" if device.type == "cuda" else "float32"))
    cfg = load_config(args.config)
    result: dict = {
        "config": cfg.name, "variant": cfg.variant, "device": str(device), "device_name": _device_name(device),
        "torch": torch.__version__, "python": platform.python_version(), "dtype": str(dtype).replace("torch.", ""),
        "image_hw": [cfg.policy.image_height, cfg.policy.image_width],
    }
    result["sizes"] = size_report(cfg, dtype if args.dtype else torch.bfloat16)
    big = result["sizes"]["params"]["video_expert"] > 1e9
    if args.meta or (big and device.type == "cpu"):
        result["timings"] = None
        result["note"] = ("not timed: the full model needs a GPU (about 12 GB of bf16 weights + 11 GB text encoder); "
                          "run with --device cuda --dtype bfloat16")
        _emit(result, args.json)
        return 0

    with torch.no_grad():
        parts = build(cfg, device, dtype, args.seed)
        obs = make_observations(cfg, args.seed)
        steps = cfg.flow.num_inference_steps
        compile_flag = None if args.compile == "auto" else args.compile == "on"
        recs, outs, extra = run_fast(parts, obs, cfg, device, dtype, args.iters, args.warmup, not args.no_graphs,
                                     compile_flag)
        result["fast"] = {"stages": summarise(recs, steps), **extra}
        if args.reference:
            rrecs, routs, rextra = run_reference(parts, obs, cfg, device, dtype, args.iters, args.warmup)
            result["reference"] = {"stages": summarise(rrecs, steps), **rextra}
            fs, rs = result["fast"]["stages"], result["reference"]["stages"]
            result["speedup_p50"] = {
                k: round(rs[k]["p50_ms"] / max(fs[k]["p50_ms"], 1e-9), 2)
                for k in ("total", "model_total", "text", "prefill", "action_steps_total")
            }
            result["max_abs_diff"] = {
                "actions_normalized": float(max(np.abs(outs[i][0] - routs[i][0]).max() for i in outs)),
                "actions": float(max(np.abs(outs[i][1] - routs[i][1]).max() for i in outs)),
                "action_scale": float(max(np.abs(routs[i][0]).max() for i in routs)),
            }
    result["iters"], result["warmup"] = args.iters, args.warmup
    if device.type != "cuda":
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    with contextlib.suppress(OSError):
        result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    _emit(result, args.json)
    return 0


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=1))
        return
    print(f"{result['config']} on {result['device_name']} ({result['dtype']}, torch {result['torch']})")
    s = result["sizes"]
    print(f"  params: video {s['params']['video_expert'] / 1e6:.1f} M, action {s['params']['action_expert'] / 1e6:.1f} M,"
          f" VAE {s['params']['vae'] / 1e6:.1f} M, text {s['params']['text_encoder'] / 1e6:.1f} M;"
          f" video tokens {s['video_tokens']}; H100 weight-read floor {s['bandwidth_floor_ms_h100_peak']} ms")
    if result.get("timings", 0) is None:
        print("  " + result["note"])
        return
    modes = ["fast"] + (["reference"] if "reference" in result else [])
    names = list(result["fast"]["stages"])
    print(f"  {'stage':<20}" + "".join(f"{m + ' p50':>14}{m + ' p95':>14}" for m in modes))
    for n in names:
        row = "".join(f"{result[m]['stages'][n]['p50_ms']:>14.3f}{result[m]['stages'][n]['p95_ms']:>14.3f}"
                      for m in modes)
        print(f"  {n:<20}{row}")
    if "speedup_p50" in result:
        print(f"  speed-up (p50): {result['speedup_p50']}")
        print(f"  max |fast - reference|: {result['max_abs_diff']}")


if __name__ == "__main__":
    raise SystemExit(main())
