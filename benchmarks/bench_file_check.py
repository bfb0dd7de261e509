#!/usr/bin/env python3
"""How fast a bad weight file is refused: ``FastWAMPolicy.from_pretrained(<file>)`` without ``config=`` (so the
5 B ``wan22_5b`` preset would be built if the file were trusted) on 5 GB-sized sparse stubs.

    python benchmarks/bench_file_check.py [--json]

Cases: a torch.save start followed by 5 GB of nothing (no zip directory), 5 GB of zeros, a safetensors header
announcing 5 GB of data in a 1 GB file, and a valid tiny official checkpoint checked against the 5 B preset
(key / shape mismatch). Each is timed in a fresh process: the package import, then the refusal (which, for a
readable file, includes importing the network code: diffusers, several seconds on a loaded 2-core machine, then a
meta-device skeleton of the 5 B model, ~0.5 s).
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GB5 = 5 * 1024**3

_CHILD = r"""
import sys, time
t0 = time.perf_counter()
from fastwam_ros.model import CheckpointError, FastWAMPolicy
t1 = time.perf_counter()
try:
    FastWAMPolicy.from_pretrained(sys.argv[1], stats={"unused": True}, vae_dir=sys.argv[2])
    print("LOADED?!", flush=True)
except CheckpointError as exc:
    t2 = time.perf_counter()
    print(f"{t1 - t0:.3f} {t2 - t1:.3f} {str(exc)[:160]}", flush=True)
"""


def _sparse(path: Path, prefix: bytes, size: int = GB5) -> Path:
    with open(path, "wb") as f:
        f.write(prefix)
        f.truncate(size)
    return path


def _tiny_official(path: Path) -> Path:
    import torch

    from fastwam_ros.model import FastWAM, load_config
    from fastwam_ros.model.checkpoints.checkpoint import export_official_state_dict

    flat = export_official_state_dict(FastWAM(load_config("tiny")))
    torch.save({"mot": {k: v for k, v in flat.items() if k.startswith("mixtures.")},
                "proprio_encoder": {k.split(".", 1)[1]: v for k, v in flat.items() if k.startswith("proprio_enc")}},
               path)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        tiny = _tiny_official(d / "tiny.pt")
        header = json.dumps({"w": {"dtype": "F32", "shape": [GB5 // 4], "data_offsets": [0, GB5]}}).encode()
        cases = {
            "corrupt_5gb.pt (torch.save start, no zip directory)": _sparse(d / "corrupt.pt", tiny.read_bytes()[:65536]),
            "zeros_5gb.pt": _sparse(d / "zeros.pt", b""),
            "truncated_5gb.safetensors (1 GB of 5 GB)": _sparse(d / "cut.safetensors",
                                                                 struct.pack("<Q", len(header)) + header, 1024**3),
            "tiny.pt against wan22_5b (key/shape mismatch)": tiny,
        }
        for name, path in cases.items():
            out = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(d / "no_vae")], cwd=ROOT,
                                 capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": ""}, timeout=300)
            line = (out.stdout.strip().splitlines() or [out.stderr.strip()[-300:]])[-1]
            try:
                imp, refuse, msg = line.split(" ", 2)
                rows.append({"case": name, "size_bytes": path.stat().st_size, "import_s": float(imp),
                             "refused_after_s": float(refuse), "message": msg})
            except ValueError:
                rows.append({"case": name, "error": line})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            if "error" in r:
                print(f"{r['case']}: ERROR {r['error']}")
            else:
                print(f"{r['case']}: refused {r['refused_after_s']:.2f} s after the package import "
                      f"({r['import_s']:.1f} s)\n    {r['message']}")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
