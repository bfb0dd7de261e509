"""The latency harness (benchmarks/bench_policy.py) runs on CPU, reports every stage for both paths, and its
fast and reference chunks agree; the full-size config is sized on the meta device (no timing on CPU)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_policy.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_policy", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(args: list[str]) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert _bench().main(args) == 0
    return json.loads(out.getvalue())


def test_tiny_cpu_run_reports_all_stages_and_matching_outputs():
    r = _run(["--config", "tiny", "--iters", "2", "--warmup", "1", "--reference", "--json", "--threads", "1"])
    stages = {"perception", "h2d", "vae_encode", "text", "prefill", "d2h", "denormalise", "total",
              "action_steps_total", "model_total"} | {f"step_{i}" for i in range(10)}
    for mode in ("fast", "reference"):
        got = r[mode]["stages"]
        assert stages <= set(got), stages - set(got)
        for name in stages:
            s = got[name]
            assert 0 <= s["p50_ms"] <= s["p95_ms"] + 1e-9
    assert r["fast"]["cuda_graphs"] is False and r["fast"]["compiled"] is None  # CPU default: eager, no graphs
    assert r["fast"]["engine_stats"]["text_kv_computed"] == 1  # once per instruction, not per call
    assert r["max_abs_diff"]["actions_normalized"] < 1e-5
    assert r["max_abs_diff"]["action_scale"] > 0.1
    assert r["peak_rss_mb"] > 0
    assert set(r["speedup_p50"]) == {"total", "model_total", "text", "prefill", "action_steps_total"}


@pytest.mark.parametrize("config", ["wan22_5b"])
def test_full_size_is_sized_on_meta_and_not_timed_on_cpu(config):
    r = _run(["--config", config, "--json"])
    assert r["timings"] is None
    p = r["sizes"]["params"]
    # diffusers_wan.md §8: Wan2.2-TI2V-5B DiT 4.9998 B, action expert 1.021 B, umt5-xxl 5.68 B, VAE 0.70 B
    assert abs(p["video_expert"] / 1e9 - 4.9998) < 1e-3
    assert abs(p["action_expert"] / 1e9 - 1.021) < 1e-3
    assert abs(p["text_encoder"] / 1e9 - 5.68) < 1e-2
    assert abs(p["vae"] / 1e9 - 0.70) < 1e-2
    assert r["sizes"]["video_tokens"] == 120  # 384x320 -> 12 x 10 tokens
    floor = r["sizes"]["bandwidth_floor_ms_h100_peak"]
    assert 5.0 < floor < r["sizes"]["bandwidth_floor_all_params_ms_h100_peak"] < 15.0
