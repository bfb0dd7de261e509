"""Fail fast on bad weight files: header + key set are checked before any model is built, whatever the file size.

The 5 GB-sized stubs are sparse files (``truncate``): they occupy almost no disk, but every reader that trusted
the file and started to parse or allocate would take minutes (the 5 B model in fp32 is ~24 GiB).
"""

from __future__ import annotations

import json
import struct
import time

import pytest
import torch

from fastwam_ros.model.checkpoints.checkpoint import CheckpointError, export_official_state_dict
from fastwam_ros.model.checkpoints.file_check import check_official_keys, read_header, read_safetensors_header
from fastwam_ros.model.checkpoints.serialization import PolicyFormatError
from fastwam_ros.model.config import load_config
from fastwam_ros.model.inference.policy import FastWAMPolicy
from fastwam_ros.model.network.fastwam import FastWAM

GB5 = 5 * 1024**3
LIMIT_S = 5.0


def _tiny_official(tmp_path):
    """A real official-layout checkpoint of the tiny config: (flat dict, .pt path, .safetensors path)."""
    torch.manual_seed(0)
    flat = export_official_state_dict(FastWAM(load_config("tiny")))
    payload = {"mot": {k: v for k, v in flat.items() if k.startswith("mixtures.")},
               "proprio_encoder": {k.split(".", 1)[1]: v for k, v in flat.items() if k.startswith("proprio_encoder.")},
               "step": 3}
    pt = tmp_path / "tiny.pt"
    torch.save(payload, pt)
    from safetensors.torch import save_file

    st = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in flat.items()}, str(st))
    return flat, pt, st


def _sparse(path, prefix: bytes, size: int = GB5):
    with open(path, "wb") as f:
        f.write(prefix)
        f.truncate(size)
    assert path.stat().st_size == size
    return path


def test_valid_files_pass_with_their_shapes(tmp_path):
    flat, pt, st = _tiny_official(tmp_path)
    cfg = load_config("tiny")
    expected = {k: tuple(v.shape) for k, v in flat.items()}
    assert check_official_keys(cfg, pt) == expected
    assert check_official_keys(cfg, st) == expected
    assert read_header(st) == expected


def test_corrupt_5gb_pt_fails_fast_without_building_the_model(tmp_path):
    _, pt, _ = _tiny_official(tmp_path)
    head = pt.read_bytes()[: 64 * 1024]  # a real torch.save start, then 5 GB of nothing: no zip directory
    stub = _sparse(tmp_path / "corrupt_5gb.pt", head)
    zeros = _sparse(tmp_path / "zeros_5gb.pt", b"")
    for bad in (stub, zeros):
        t0 = time.perf_counter()
        with pytest.raises(CheckpointError) as e:
            # no config=: the wan22_5b preset (5 B parameters) would be built in fp32 if the file were trusted
            FastWAMPolicy.from_pretrained(bad, stats={"unused": True}, vae_dir=tmp_path / "no_vae")
        dt = time.perf_counter() - t0
        assert dt < LIMIT_S, f"{bad.name}: took {dt:.1f} s"
        assert bad.name in str(e.value)
    assert "truncated" in str(e.value) or "corrupt" in str(e.value)


def test_truncated_safetensors_fails_fast(tmp_path):
    _, _, st = _tiny_official(tmp_path)
    data = st.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors is truncated"):
        read_safetensors_header(cut)
    # a header announcing 5 GB of tensor data in a file that stops after 1 GB (sparse)
    header = json.dumps({"w": {"dtype": "F32", "shape": [GB5 // 4], "data_offsets": [0, GB5]}}).encode()
    big = _sparse(tmp_path / "big_cut.safetensors", struct.pack("<Q", len(header)) + header, 1024**3)
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="truncated"):
        FastWAMPolicy.from_pretrained(big, stats={"unused": True}, vae_dir=tmp_path / "no_vae")
    assert time.perf_counter() - t0 < LIMIT_S
    garbage = _sparse(tmp_path / "garbage.safetensors", b"\xff" * 16)
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        read_header(garbage)


def test_key_mismatch_is_listed_before_building(tmp_path):
    _, pt, _ = _tiny_official(tmp_path)
    # a tiny checkpoint against the 5 B preset: compared with a meta-device skeleton (0.4 s on an idle 2-core
    # CPU, see benchmarks/bench_file_check.py), never a 5 B model in memory
    with pytest.raises(CheckpointError) as e:
        FastWAMPolicy.from_pretrained(pt, stats={"unused": True}, vae_dir=tmp_path / "no_vae")
    msg = str(e.value)
    assert "tiny.pt" in msg and "wan22_5b" in msg and "missing key(s)" in msg and "shape mismatch" in msg


def test_policy_dir_with_truncated_weights(tmp_path):
    policy = FastWAMPolicy.from_config("tiny")
    d = policy.save_pretrained(tmp_path / "policy")
    w = d / "model.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[: len(data) // 2])
    with pytest.raises(PolicyFormatError, match="truncated"):
        FastWAMPolicy.from_pretrained(d)
