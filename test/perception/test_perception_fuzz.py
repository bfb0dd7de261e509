"""The decoder + pipeline fuzz (benchmarks/fuzz_perception.py) at a CI-sized count; run it by hand with
``--messages 10000`` or more."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import load_script


def load():
    return load_script("benchmarks/fuzz_perception.py")


@pytest.mark.parametrize("seed", [0, 1])
def test_fuzz_no_crash_no_detectable_corruption_accepted_every_refusal_counted(seed):
    out = load().run(messages=800, seed=seed)
    assert out["messages"] >= 800
    assert out["crashes"] == 0
    assert out["corrupt_detectable_sent"] > 50 and out["corrupt_accepted"] == 0
    assert out["good_compressed_sent"] > 50 and out["good_compressed_refused_by_decoder"] == 0
    assert out["good_jpeg_refused_by_seam_guard"] == 0  # no false refusal (the JPEG set includes sim scenes)
    assert out["uncounted_refusals"] == 0 and out["bad_observations"] == 0
    assert out["observations"] > 0
    rej = out["rejections"]  # the reasons reach stats() (→ /diagnostics)
    for reason in ("decode:truncated", "decode:too_many_pixels", "joint_state:duplicate_joint", "bad_stamp"):
        assert rej.get(reason, 0) > 0, reason
    flips = out["byte_flips"]
    assert flips["rejected_by_libjpeg"] > 0  # libjpeg's corruption warnings are errors
    assert flips["rejected_by_seam_guard"] > 0  # silently corrupted frames refused by the seam guard ...
    assert rej["decode:corrupt_jpeg_seam"] == flips["rejected_by_seam_guard"]  # ... counted ...
    assert out["rejections_per_camera"]["left"]["decode:corrupt_jpeg_seam"] == flips["rejected_by_seam_guard"]


def test_the_residual_is_placed_by_where_its_drift_starts():
    """damage_start (the fuzz's breakdown of accepted corrupted flips) on drifts built by hand: a raster suffix
    of MCUs offset from (MCU row r, block column c) on, in a 480x640 4:2:0 JPEG decoded at 1/4 (120x160: 30 MCU
    rows of 4 px, 80 block columns of 2 px)."""
    fz = load()
    img = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    need = (128, 160)
    clean = np.full((120, 160, 3), 100, np.uint8)

    def drifted(r, c, delta=20):
        out = clean.copy()
        out[4 * r : 4 * (r + 1), 2 * c :] += delta
        out[4 * (r + 1) :] += delta
        return out

    cases = {(0, 40): "first_mcu_row", (29, 40): "last_mcu_row", (10, 0): "row_edge", (10, 1): "row_edge",
             (10, 78): "row_edge", (10, 2): "inside", (10, 77): "inside", (1, 40): "inside", (28, 40): "inside"}
    for (r, c), want in cases.items():
        assert fz.damage_start(data, drifted(r, c), clean, need) == want, (r, c)
    assert fz.damage_start(data, drifted(10, 40, delta=5), clean, need) == "no_block_off_by_step"
    assert fz.damage_start(data, clean, clean, need) == "no_block_off_by_step"
    small = cv2.imencode(".jpg", img[:40, :40])[1].tobytes()  # decoded at 1/1: 2 MCU rows of 16 px
    assert fz.damage_start(small, img[:40, :40] // 2, img[:40, :40], need) == "guard_not_applicable"
