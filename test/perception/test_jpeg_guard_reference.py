"""The seam scorer (fastwam_ros/perception/jpeg_guard.seam_score, vectorised over a cached geometry plan) against
a straightforward reference written here from the definition in its docstring: Python loops over every MCU row,
block column and channel, integer block sums rounded half to even, and exact rational comparisons (``Fraction``)
for every threshold. Scores must match to float tolerance on random pictures, simulator and recorded frames
decoded at every DCT scale, and corrupted ones (byte flips libjpeg decodes, synthetic DC drifts)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from fastwam_ros.perception.compressed import decode_compressed, decode_scale_for
from fastwam_ros.perception.errors import DecodeError
from fastwam_ros.perception.jpeg_guard import seam_score

from conftest import load_script

REPO = Path(__file__).resolve().parents[2]


BENCH = load_script("benchmarks/bench_jpeg_guard.py")  # its picture sources and flipper are the ones measured


def _round_half_even(total: int, n: int) -> int:
    q, r = divmod(total, n)
    return q + (2 * r > n or (2 * r == n and q % 2 == 1))


def reference_score(rgb: np.ndarray, scale: int, sampling: tuple[int, int], step_levels: float,
                    min_segment: int = 2) -> float:
    if scale >= 8:
        return 0.0
    bh, bw = 8 * max(1, sampling[1]) // scale, 8 // scale
    h, w = rgb.shape[:2]
    n_rows, n_cols = h // bh, w // bw
    if n_rows < 3 or n_cols < 2 * min_segment or bh < 2:
        return 0.0
    px = rgb.astype(np.int64)

    def mean(y: int, j: int, c: int) -> int:  # whole-level mean of block column j on line y
        return _round_half_even(int(px[y, j * bw : (j + 1) * bw, c].sum()), bw)

    def across2(boundary_row: int, j: int, c: int) -> int:  # twice the excess step across y = boundary_row * bh
        y = boundary_row * bh
        a, b, cc, e = (mean(y + d, j, c) for d in (-2, -1, 0, 1))
        return 3 * (cc - b) - (e - a)

    def inside4(row: int, k: int, c: int) -> int:  # 4 x the mean excess step at x = k * bw on the row's 2 lines
        total = 0
        for y in (row * bh + bh // 4, row * bh + 3 * bh // 4):
            a, b, cc, e = (int(px[y, k * bw + d, c]) for d in (-2, -1, 0, 1))
            total += 3 * (cc - b) - (e - a)
        return total

    def agrees(step2: int, after: int, delta2: int) -> bool:
        ratio = Fraction(step2, delta2)
        clipped = after >= 253 if delta2 > 0 else after <= 2
        return Fraction(1, 2) <= ratio <= 2 or (clipped and ratio > Fraction(1, 10))

    grid = {(r, j, c): across2(r, j, c) for r in range(1, n_rows) for j in range(n_cols) for c in range(3)}
    best = Fraction(0)
    for row in range(1, n_rows - 1):
        for k in range(min_segment, n_cols - min_segment + 1):
            for c in range(3):
                delta2 = grid[row, k, c]
                if abs(Fraction(delta2, 2)) < Fraction(step_levels):
                    continue
                rel = Fraction(inside4(row, k, c), 4) / Fraction(delta2, 2)
                if not Fraction(3, 10) <= rel <= Fraction(3, 2):
                    continue
                top = sum(agrees(grid[row, j, c], mean(row * bh, j, c), delta2) for j in range(k, n_cols))
                bottom = sum(agrees(grid[row + 1, j, c], mean((row + 1) * bh, j, c), delta2) for j in range(k))
                score = min(Fraction(top, n_cols - k), Fraction(bottom, k))
                if n_rows >= 5 and n_cols >= 20 and score >= Fraction(1, 2):
                    score = Fraction(top + bottom, n_cols)
                best = max(best, score)
    return float(best)


def _check(rgb, scale, sampling=(2, 2), step=8.0, min_segment=2):
    got, want = seam_score(rgb, scale, sampling, step, min_segment), reference_score(rgb, scale, sampling, step,
                                                                                      min_segment)
    assert got == pytest.approx(want, abs=1e-12), (rgb.shape, scale, sampling, step, min_segment)
    return got


def _drift(img, mcu, row, k, channel, delta):
    out = img.astype(np.int16)
    out[row * mcu : (row + 1) * mcu, k * mcu :, channel] += delta
    out[(row + 1) * mcu :, :, channel] += delta
    return np.clip(out, 0, 255).astype(np.uint8)


def _strict(data: bytes, need):
    return decode_compressed(SimpleNamespace(format="jpeg", data=data), need_hw=need)


def test_random_pictures_and_settings_match_the_reference():
    rng = np.random.default_rng(7)
    for trial in range(24):
        scale = int(rng.choice([1, 2, 4]))
        h, w = int(rng.integers(24, 72)), int(rng.integers(24, 120))
        base = rng.integers(0, 256, (1, 1, 3)) + np.cumsum(rng.normal(0, 3, (h, w, 3)), axis=1)
        img = np.clip(base + rng.normal(0, rng.choice([0.5, 4, 40]), (h, w, 3)), 0, 255).astype(np.uint8)
        if trial % 3 == 0:  # blocky steps and saturated areas (the clipped branch)
            img[rng.integers(0, h) :, rng.integers(0, w) :] = rng.choice([0, 255])
        sampling = [(2, 2), (1, 1), (2, 1)][trial % 3]
        mcu = 8 * sampling[1] // scale
        if h // mcu >= 3 and trial % 2:
            img = _drift(img, mcu, int(rng.integers(1, h // mcu - 1)), int(rng.integers(0, max(1, w // mcu))),
                         int(rng.integers(0, 3)), int(rng.choice([-50, -12, 9, 40])))
        _check(img, scale, sampling, float(rng.choice([3.0, 8.0, 20.0])), int(rng.choice([1, 2, 3])))
        _check(img[:, ::-1], scale, sampling)  # a non-contiguous view


def test_simulator_frames_clean_drifted_and_byte_flipped_match_the_reference():
    rng = np.random.default_rng(3)
    frames = BENCH.sim_frames(1)[0]  # head, left and right wrist, 480x640
    scores = []
    for cam, img in enumerate(frames):
        data = BENCH.jpeg(img, 75)
        need = (240, 320) if cam == 0 else (120, 160)  # the robotwin head / wrist tiles' decode scales
        d = decode_scale_for((480, 640), need)
        clean = _strict(data, need)
        scores.append(_check(clean, d))
        mcu = 16 // d
        for _ in range(2):
            row, k = int(rng.integers(1, clean.shape[0] // mcu - 1)), int(rng.integers(2, clean.shape[1] // mcu - 2))
            scores.append(_check(_drift(clean, mcu, row, k, int(rng.integers(0, 3)), int(rng.choice([-30, 25]))),
                                 d))
        n = 0
        for flipped in BENCH.flips(data, seed=11 + cam):
            try:
                out = _strict(flipped, need)
            except DecodeError:
                continue
            scores.append(_check(out, d))
            n += 1
            if n == 3:
                break
    assert max(scores) >= 0.75 > min(scores)  # both sides of the refusal threshold were compared


def test_recorded_frames_match_the_reference():
    pytest.importorskip("rosbags")
    jpegs = [v[len(v) // 2] for v in BENCH.recorded_jpegs(REPO / "data" / "sample_episode", every=40).values()]
    assert jpegs
    for data in jpegs:
        img = _strict(data, None)
        _check(img, 1)
        _check(_strict(data, (img.shape[0] // 2, img.shape[1] // 2)), 2)
