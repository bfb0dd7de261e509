#!/usr/bin/env python3
"""Decoder + observation-pipeline fuzz: a random stream of good and broken messages into one ObservationPipeline.

Messages: raw images (every encoding, wrong/unknown encodings, odd sizes and steps, short data, every data
container), compressed images (valid JPEG/PNG; JPEG cut short, cut with ``FF D9`` re-appended, bytes flipped, a
stray marker, garbage; decompression-bomb headers; compressedDepth and unknown formats), stamps (good, zero, NaN,
inf, negative, far past/future, duplicates, sustained jumps), joint states from two publishers (good, duplicate
names, length mismatches, NaN, 1e300, non-numbers, unknown joints) and polls, some with the clock going back.

Printed figures:

* ``crashes``: exceptions escaping ``add_image`` / ``add_joint_state`` / ``poll`` / ``stats`` (must be 0);
* ``corrupt_accepted``: corrupted compressed images whose corruption libjpeg/libpng can detect (cut, cut + EOI,
  stray marker, garbage, bomb headers) that were accepted (must be 0);
* ``byte_flips``: JPEGs with 1-5 bytes flipped inside the entropy-coded data, decoded by the pipeline's decoder at
  the camera's scale: refused by libjpeg (``corrupt_jpeg``), refused by the DC-drift seam guard
  (``corrupt_jpeg_seam``, see fastwam_ros/perception/jpeg_guard.py), accepted with the clean picture, accepted
  *slightly* different (mean absolute error vs the clean decode <= ``CORRUPT_TOLERANCE_LEVELS`` = 1.0 of 255
  levels: an AC coefficient of one block changed), and accepted **corrupted** (mean error above that) -- with the
  count, mean and max error of the corrupted ones. JPEG has no checksum: a flip that keeps the Huffman coding valid
  is invisible to the decoder, and the guard only sees the seam a DC drift leaves on the block grid, so this last
  number is not 0 (it is the residual, reported as it is). ``accepted_corrupted_by`` breaks it down by error
  band, picture and where the damage starts (:func:`damage_start`): in a picture too small for the guard, in the
  first or last MCU row or within ``min_segment`` blocks of a row's start or end (a drift there leaves no
  staircase, only a full-width or one-sided step, which the guard leaves to real edges), or inside;
* ``good_compressed_refused_by_decoder``: valid JPEG/PNG images the decoder refused (must be 0), of which
  ``good_jpeg_refused_by_seam_guard`` by the guard (must be 0; the JPEG set includes simulator scenes at
  qualities 50-95);
* ``uncounted_refusals``: ``add_*`` calls that returned False without a counted reason (must be 0);
* ``rejections``: every counted reason, exactly as ``ObservationPipeline.stats()`` (→ /diagnostics) shows them.

    python benchmarks/fuzz_perception.py --messages 10000 [--seed 0] [--json]     # by hand
    (test/perception/test_perception_fuzz.py runs a small count in CI)
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import sys
import time
import zlib
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastwam_ros.perception import ObservationPipeline, PerceptionConfig  # noqa: E402
from fastwam_ros.perception.compressed import _jpeg_frame  # noqa: E402 - the header's size and sampling
from fastwam_ros.perception.decode import RAW_ENCODINGS, DecodeError, decode_compressed, decode_scale_for  # noqa: E402

CAMS = ("head", "left", "right")  # head: raw, left: jpeg, right: png
CORRUPT_TOLERANCE_LEVELS = 1.0  # a flipped JPEG decoding to a mean |error| above this (0..255 levels) is corrupted
JOINTS = ["a1", "a2", "a3", "g1"]
ARM, GRIP = JOINTS[:3], JOINTS[3:]


def _picture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w] / max(w, 1)
    img = np.stack([np.sin(6 * x) * 80 + 120, np.cos(4 * y) * 70 + 110, (x + y) * 90 + 30], axis=2)
    img[h // 4 : h // 2, w // 3 : w // 2] = rng.integers(0, 256, 3)
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def _sim_pictures(seed: int) -> list[np.ndarray]:
    """Simulator camera images (head and both wrists, 480x640) at a random moment of a scripted fold."""
    from fastwam_ros.sim.scripted import make_folder  # noqa: PLC0415 - only the fuzz needs the simulator
    from fastwam_ros.sim.sim import BimanualSim, SimConfig  # noqa: PLC0415

    sim = BimanualSim(SimConfig(camera_hw={c: (480, 640) for c in ("head", "left_wrist", "right_wrist")}),
                      mode="kinematic", seed=seed)
    sim.reset(seed=seed)
    folder = make_folder(sim.towel, np.random.default_rng(seed))
    for _ in range(int(np.random.default_rng(seed).integers(0, 90))):
        sim.step(folder.command(sim.time_s + 1 / 30), 1 / 30)
    return [sim.render(c) for c in sim.cameras]


def damage_start(data: bytes, out: np.ndarray, clean: np.ndarray, need_hw: tuple[int, int],
                 min_segment: int = 2, step_levels: float = 8.0) -> str:
    """Where the damage of an accepted corrupted JPEG (``data``, decoded to ``out`` at the scale ``need_hw``
    asks for; ``clean`` is the intact picture's decode) starts, relative to what the seam guard examines
    (fastwam_ros/perception/jpeg_guard.py, same geometry: MCU rows of 8*v/scale px, luma block columns of
    8/scale px): ``guard_not_applicable`` (1/8 scale, under 3 MCU rows or 2*min_segment block columns),
    ``first_mcu_row`` / ``last_mcu_row`` (no MCU-row boundary above / below the start), ``row_edge`` (within
    ``min_segment`` block columns of the row's start or end), ``inside``, or ``no_block_off_by_step`` (no block
    differs by ``step_levels`` or more anywhere: small errors spread out). The first block in MCU raster order
    (MCU row, then block column) with a pixel ``step_levels`` or more off is the start."""
    h, w, _, v = _jpeg_frame(np.frombuffer(data, np.uint8))
    d = decode_scale_for((h, w), need_hw)
    bh, bw = 8 * v // d, 8 // d
    n_rows, n_cols = out.shape[0] // bh if bh else 0, out.shape[1] // bw if bw else 0
    if d >= 8 or n_rows < 3 or n_cols < 2 * min_segment:
        return "guard_not_applicable"
    off = np.abs(out.astype(np.int16) - clean.astype(np.int16)).max(axis=2) >= step_levels
    blocks = off[: n_rows * bh, : n_cols * bw].reshape(n_rows, bh, n_cols, bw).any(axis=(1, 3))
    first = np.flatnonzero(blocks)
    if not first.size:
        return "no_block_off_by_step"
    r, c = divmod(int(first[0]), n_cols)
    if r == 0:
        return "first_mcu_row"
    if r == n_rows - 1:
        return "last_mcu_row"
    if c < min_segment or c >= n_cols - min_segment:
        return "row_edge"
    return "inside"


def _scan_start(data: bytes) -> int:
    sos = data.find(b"\xff\xda")
    return sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")


def _png_header_only(h: int, w: int) -> bytes:
    """A PNG whose IHDR claims h×w (a bomb's header) followed by a tiny IDAT and IEND."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


class Fuzzer:
    def __init__(self, seed: int, max_pixels: int = 1 << 20):
        self.rng = random.Random(seed)
        self.nrng = np.random.default_rng(seed)
        cfg = PerceptionConfig.from_dict({
            "cameras": [{"name": "head"}, {"name": "left", "transport": "compressed"},
                        {"name": "right", "transport": "compressed"}],
            # the real robotwin tile sizes: a 480x640 JPEG is decoded at 1/4, 240x320 at 1/2 (as on a robot)
            "layout": "robotwin", "top_hw": [256, 320], "bottom_tile_hw": [128, 160],
            "joint_names": JOINTS, "slop_s": 0.02, "max_age_s": 0.5, "max_image_pixels": max_pixels,
            "use_cv_bridge": False,
        })
        self.pipe = ObservationPipeline(cfg)
        self.need = {c: cfg.decode_target_hw(c) for c in CAMS}
        self.max_pixels = max_pixels
        self.jpegs = []  # (bytes, clean decode at the camera's scale)
        pictures = [_picture(self.nrng, h, w) for h, w in [(48, 64), (120, 160), (240, 320), (33, 47), (480, 640)]]
        pictures += _sim_pictures(seed)
        self.picture_label = {}  # id(clean decode) -> "synthetic HxW" / "sim HxW" (for the residual's breakdown)
        for i, img in enumerate(pictures):
            q = self.rng.choice([50, 60, 75, 90, 95])
            ok, enc = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
            data = enc.tobytes()
            self.jpegs.append((data, decode_compressed(SimpleNamespace(format="jpeg", data=data),
                                                       need_hw=self.need["left"])))
            kind = "synthetic" if i < 5 else "sim"
            self.picture_label[id(self.jpegs[-1][1])] = f"{kind}_{img.shape[0]}x{img.shape[1]}"
        self.pngs = []
        for h, w in [(16, 20), (50, 70)]:
            ok, enc = cv2.imencode(".png", _picture(self.nrng, h, w))
            self.pngs.append(enc.tobytes())
        self.t = 100.0
        self.last_js = {}
        self.f = Counter()  # figures
        self.flip_errors: list[float] = []  # mean |error| of accepted corrupted flips, levels
        self.corrupted_by: Counter[str] = Counter()  # accepted corrupted flips by error band and decoded size

    # -- messages ---------------------------------------------------------------------------------------------
    def raw_msg(self):
        r = self.rng
        if r.random() < 0.5:  # a good frame
            enc = r.choice(list(RAW_ENCODINGS))
            bpp = RAW_ENCODINGS[enc].bytes_per_pixel
            data = self.nrng.integers(0, 256, 48 * 64 * bpp, dtype=np.uint8).tobytes()
            return SimpleNamespace(height=48, width=64, encoding=enc, is_bigendian=0, step=64 * bpp, data=data)
        enc = r.choice(list(RAW_ENCODINGS) + ["RGB8", "hsv8", "", "rgb16", None, 5])
        bpp = RAW_ENCODINGS[enc.lower()].bytes_per_pixel if isinstance(enc, str) and enc.lower() in RAW_ENCODINGS \
            else 3
        h, w = r.choice([(0, 8), (24, 32), (9, 7), (48, 64), (70000, 2), (-1, 4), (24, 31)])
        step = w * bpp + r.choice([0, 0, 0, 3, -1, 1 << 20])
        n = max(step * max(h, 0), 0)
        if r.random() < 0.15:
            n = r.randint(0, n) if n else 0
        n = min(n, 1 << 20)
        payload = self.nrng.integers(0, 256, n, dtype=np.uint8)
        kind = r.random()
        data = (payload.tobytes() if kind < 0.4 else payload if kind < 0.6 else memoryview(payload.tobytes())
                if kind < 0.75 else bytearray(payload.tobytes()) if kind < 0.9 else payload.tolist()[:256])
        return SimpleNamespace(height=h, width=w, encoding=enc, is_bigendian=r.randint(0, 1), step=step, data=data)

    def compressed_msg(self, cam: str):
        """(message, kind, clean decode or None). kind: good | detectable | flip."""
        r = self.rng
        if cam == "right":
            data = r.choice(self.pngs)
            k = r.random()
            if k < 0.6:
                return SimpleNamespace(format="png", data=data), "good", None
            if k < 0.75:
                return SimpleNamespace(format="png", data=data[: r.randint(8, len(data) - 1)]), "detectable", None
            if k < 0.85:
                b = bytearray(data)
                p = r.randint(33, len(b) - 13)
                b[p] ^= 1 << r.randint(0, 7)  # a CRC- or zlib-checked byte
                return SimpleNamespace(format="png", data=bytes(b)), "detectable", None
            big = int(np.sqrt(self.max_pixels)) + r.randint(1, 20000)
            return SimpleNamespace(format="png", data=_png_header_only(big, big)), "detectable", None
        data, clean = r.choice(self.jpegs)
        start = _scan_start(data)
        k = r.random()
        fmt = r.choice(["jpeg", "rgb8; jpeg compressed bgr8", ""])
        if k < 0.45:
            return SimpleNamespace(format=fmt, data=data), "good", clean
        if k < 0.55:
            return SimpleNamespace(format=fmt, data=data[: r.randint(3, len(data) - 3)]), "detectable", None
        if k < 0.65:
            cut = data[: r.randint(start + 1, len(data) - 8)] + b"\xff\xd9"
            return SimpleNamespace(format=fmt, data=cut), "detectable", None
        if k < 0.72:
            b = bytearray(data)
            p = r.randint(start, len(b) - 6)
            b[p : p + 2] = bytes([0xFF, r.choice([0xC4, 0xDB, 0xD9, 0xDA, 0xC0])])  # a stray marker in the scan
            return SimpleNamespace(format=fmt, data=bytes(b)), "detectable", None
        if k < 0.76:
            junk = bytes(self.nrng.integers(0, 256, r.randint(0, 300), dtype=np.uint8))
            return SimpleNamespace(format=fmt, data=b"\xff\xd8\xff" + junk + b"\xff\xd9"), "detectable", None
        if k < 0.80:  # bomb: the frame header claims a huge size
            b = bytearray(data)
            sof = next(i for i in range(2, len(b) - 9) if b[i] == 0xFF and b[i + 1] in (0xC0, 0xC1, 0xC2))
            b[sof + 5 : sof + 9] = struct.pack(">HH", 60000, 60000)
            return SimpleNamespace(format=fmt, data=bytes(b)), "detectable", None
        if k < 0.84:
            return SimpleNamespace(format=r.choice(["tiff", "16UC1; compressedDepth png", 7]), data=data), \
                "detectable", None
        b = bytearray(data)
        for _ in range(r.randint(1, 5)):
            p = r.randint(start, len(b) - 3)
            b[p] = r.choice([b[p] ^ 0xFF, r.randint(0, 255), b[p] ^ (1 << r.randint(0, 7))])
        return SimpleNamespace(format=fmt, data=bytes(b)), "flip", clean

    def stamp(self, stream: str) -> float:
        r = self.rng
        k = r.random()
        if k < 0.9:
            return self.t + r.uniform(-0.004, 0.004)
        return r.choice([0.0, float("nan"), float("inf"), -5.0, self.t + 1e6, self.t - 50.0, 1e300, self.t])

    # -- one step ---------------------------------------------------------------------------------------------
    def guarded(self, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except Exception as exc:  # noqa: BLE001 - a crash is what we count
            self.f["crashes"] += 1
            self.f[f"crash:{type(exc).__name__}"] += 1
            return None

    def step(self) -> None:
        r, p = self.rng, self.pipe
        self.t += 1 / 30
        if r.random() < 0.005:
            self.t -= r.choice([5.0, 30.0])  # bag loop / sim-time reset
        # joint states: arm + gripper publishers
        for names in (ARM, GRIP):
            k = r.random()
            if k < 0.8:
                n, pos = list(names), self.nrng.normal(size=len(names)).tolist()
            else:
                n, pos = r.choice([
                    (list(names) + [names[0]], [0.0] * (len(names) + 1)),
                    (list(names), [0.0] * (len(names) + 1)),
                    (list(names), [float("nan")] * len(names)),
                    (list(names), [1e300] * len(names)),
                    (list(names), ["x"] * len(names)),
                    (None, [0.0]),
                    (["zz"], [1.0]),
                    ([f"u{r.randint(0, 10**6)}"], [1.0]),
                ])
            ret = self.guarded(p.add_joint_state, self.stamp("js"), n, pos)
            self.f["messages"] += 1
            self.f["refused"] += ret is False
        for cam in CAMS:
            if r.random() < 0.1:
                continue  # a dropped frame
            if cam == "head":
                msg, kind, clean = self.raw_msg(), "raw", None
            else:
                msg, kind, clean = self.compressed_msg(cam)
            ok = self.guarded(p.add_image, cam, msg, stamp_s=self.stamp(cam))
            self.f["messages"] += 1
            self.f["refused"] += ok is False
            self.f[f"{kind}_sent"] += 1
            if kind == "good":
                refused = self._refusal(msg, cam)
                self.f["good_compressed_refused_by_decoder"] += refused is not None
                self.f["good_jpeg_refused_by_seam_guard"] += refused == "corrupt_jpeg_seam"
            if kind == "detectable" and ok is not None:
                accepted = self._decodes(msg, cam) is not None
                self.f["corrupt_accepted"] += accepted
            if kind == "flip":
                out = self._decodes(msg, cam)
                if out is None:
                    self.f[f"flip_rejected:{self._refusal(msg, cam)}"] += 1
                elif out.shape != clean.shape:
                    self.f["flip_accepted_corrupted"] += 1  # (never seen: the size is in the header)
                    self.flip_errors.append(255.0)
                elif np.array_equal(out, clean):
                    self.f["flip_accepted_identical"] += 1
                else:
                    err = float(np.abs(out.astype(np.float32) - clean).mean())
                    if err > CORRUPT_TOLERANCE_LEVELS:
                        self.f["flip_accepted_corrupted"] += 1
                        self.flip_errors.append(err)
                        band = "1-3" if err <= 3 else "3-10" if err <= 10 else "over_10"
                        self.corrupted_by[f"error_{band}_levels"] += 1
                        self.corrupted_by[f"picture_{self.picture_label[id(clean)]}"] += 1
                        self.corrupted_by[f"starts_{damage_start(msg.data, out, clean, self.need[cam])}"] += 1
                    else:
                        self.f["flip_accepted_slightly_different"] += 1
        now = self.t + r.uniform(0.0, 0.03)
        obs = self.guarded(p.poll, now)
        if obs is not None:
            self.f["observations"] += 1
            if not (np.isfinite(obs.frame).all() and np.abs(obs.frame).max() <= 1.0 and np.isfinite(obs.proprio).all()):
                self.f["bad_observation"] += 1
        if r.random() < 0.05:
            self.guarded(p.stats, now)

    def _refusal(self, msg, cam):
        """The decoder's reason for refusing this message, or None if it decodes."""
        try:
            self.pipe.decoder.decode(msg, self.need[cam])
        except DecodeError as exc:
            return exc.reason
        return None

    def _decodes(self, msg, cam):
        """The pipeline's own decoder on this message (same budget and scale): the array, or None if refused."""
        try:
            return self.pipe.decoder.decode(msg, self.need[cam])
        except DecodeError:
            return None
        except Exception:  # noqa: BLE001
            self.f["crashes"] += 1
            return None


def run(messages: int, seed: int) -> dict:
    fz = Fuzzer(seed)
    t0 = time.perf_counter()
    while fz.f["messages"] < messages:
        fz.step()
    st = fz.pipe.stats(fz.t)
    rej = st["rejections"]
    set_level = {"too_old", "future_stamp", "joint_state_gap", "missing_joint", "tiling"}
    counted_add_level = sum(v for k, v in rej.items() if k not in set_level and not k.startswith("proprio:"))
    counted_add_level += st["events"].get("joint_state_unused", 0)
    f = fz.f
    return {
        "messages": f["messages"],
        "seconds": round(time.perf_counter() - t0, 2),
        "crashes": f["crashes"],
        "corrupt_detectable_sent": f["detectable_sent"],
        "corrupt_accepted": f["corrupt_accepted"],
        "good_compressed_sent": f["good_sent"],
        "good_compressed_refused_by_decoder": f["good_compressed_refused_by_decoder"],
        "good_jpeg_refused_by_seam_guard": f["good_jpeg_refused_by_seam_guard"],
        "byte_flips": {
            "sent": f["flip_sent"],
            "rejected_by_libjpeg": f["flip_rejected:corrupt_jpeg"] + f["flip_rejected:bad_compressed"],
            "rejected_by_seam_guard": f["flip_rejected:corrupt_jpeg_seam"],
            "accepted_identical_picture": f["flip_accepted_identical"],
            f"accepted_within_{CORRUPT_TOLERANCE_LEVELS:g}_level": f["flip_accepted_slightly_different"],
            "accepted_corrupted": f["flip_accepted_corrupted"],
            "accepted_corrupted_mean_error_levels": round(float(np.mean(fz.flip_errors)), 2) if fz.flip_errors
            else None,
            "accepted_corrupted_max_error_levels": round(float(np.max(fz.flip_errors)), 2) if fz.flip_errors
            else None,
            "accepted_corrupted_by": dict(sorted(fz.corrupted_by.items())),
        },
        "observations": f["observations"],
        "bad_observations": f["bad_observation"],
        "refused": f["refused"],
        "uncounted_refusals": max(0, f["refused"] - counted_add_level),
        "rejections": dict(sorted(rej.items())),
        "rejections_per_camera": {c: dict(sorted(v["rejected"].items())) for c, v in st["cameras"].items()},
        "events": dict(sorted(st["events"].items())),
        "jpeg_decoder": st["jpeg_decoder"],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    out = run(args.messages, args.seed)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
    ok = out["crashes"] == 0 and out["corrupt_accepted"] == 0 and out["uncounted_refusals"] == 0 \
        and out["bad_observations"] == 0 and out["good_compressed_refused_by_decoder"] == 0 \
        and out["good_jpeg_refused_by_seam_guard"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
