"""The decoder + pipeline fuzz (benchmarks/fuzz_perception.py) at a CI-sized count; run it by hand with
``--messages 10000`` or more."""

from __future__ import annotations

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
