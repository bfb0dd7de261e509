"""The JPEG seam guard (fastwam_ros/perception/jpeg_guard.py): corrupted JPEGs that libjpeg decodes without a
warning are refused and counted per camera; good JPEGs of simulator, recorded and synthetic scenes never are."""

from __future__ import annotations

import functools
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import yaml

from fastwam_ros.perception import ObservationPipeline, PerceptionConfig
from fastwam_ros.perception.compressed import SEAM_AGREEMENT, SEAM_STEP_LEVELS, decode_compressed
from fastwam_ros.perception.errors import ConfigError, DecodeError
from fastwam_ros.perception.jpeg_guard import seam_score

from conftest import load_script

REPO = Path(__file__).resolve().parents[2]
WRIST_NEED = (128, 160)  # the robotwin wrist tile: a 480x640 JPEG decodes at 1/4, 240x320 at 1/2


BENCH = load_script("benchmarks/bench_jpeg_guard.py")  # its picture sources and flipper are the ones measured


@functools.lru_cache(maxsize=4)
def _sim_frames(n_moments: int = 2) -> list[np.ndarray]:
    """Simulator images (480x640) of all three cameras at moments of a scripted fold (the wrists move fast)."""
    return [img for moment in BENCH.sim_frames(n_moments) for img in moment]


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    return BENCH.jpeg(rgb, quality)


def _decode(data: bytes, need_hw, guard: bool) -> np.ndarray:
    return decode_compressed(SimpleNamespace(format="jpeg", data=data), need_hw=need_hw,
                             seam_agreement=SEAM_AGREEMENT if guard else None)


def _config(**kw) -> PerceptionConfig:
    return PerceptionConfig.from_dict({"cameras": [{"name": "head", "transport": "compressed"},
                                                   {"name": "left", "transport": "compressed"},
                                                   {"name": "right", "transport": "compressed"}],
                                       "layout": "robotwin", "use_cv_bridge": False, **kw})


# -- refusals ---------------------------------------------------------------------------------------------------
def test_flipped_jpegs_that_libjpeg_decodes_silently_are_refused_and_counted_per_camera():
    clean_img = _sim_frames(1)[1]  # the left wrist camera, 480x640
    data = _jpeg(clean_img, 75)
    clean = _decode(data, WRIST_NEED, guard=False)
    corrupted = []  # flips libjpeg's strict mode decodes without a warning, to a visibly different picture
    for flipped in BENCH.flips(data, seed=3):
        try:
            out = _decode(flipped, WRIST_NEED, guard=False)
        except DecodeError:
            continue
        if np.abs(out.astype(np.float32) - clean).mean() > 10.0:
            corrupted.append(flipped)
        if len(corrupted) == 12:
            break
    pipe = ObservationPipeline(_config())
    accepted = [pipe.add_image("left", SimpleNamespace(format="jpeg", data=d), stamp_s=1.0 + i / 30)
                for i, d in enumerate(corrupted)]
    refused = accepted.count(False)
    assert refused >= 4, f"only {refused} of {len(corrupted)} silently corrupted frames refused"
    st = pipe.stats()
    assert st["rejections"]["decode:corrupt_jpeg_seam"] == refused
    assert st["cameras"]["left"]["rejected"] == {"decode:corrupt_jpeg_seam": refused}
    assert st["cameras"]["head"]["rejected"] == {} and st["cameras"]["left"]["decoded"] == len(corrupted) - refused
    assert "DC-drift seam" in st["last_error"]["decode:corrupt_jpeg_seam"]
    # the switch: with the guard off the same frames are all accepted (what main did)
    off = ObservationPipeline(_config(jpeg_guard=False))
    assert all(off.add_image("left", SimpleNamespace(format="jpeg", data=d), stamp_s=1.0 + i / 30)
               for i, d in enumerate(corrupted))


def _drift(img: np.ndarray, mcu: int, row: int, k: int, channels: slice, delta: int) -> np.ndarray:
    """Every pixel from MCU (row, k) on in raster order shifted by delta levels (clipped), in ``channels``: what
    a wrong DC difference does to the rest of the scan (all channels: luma; one channel: mostly chroma)."""
    shifted = img.astype(np.int16)
    shifted[row * mcu : (row + 1) * mcu, k * mcu :, channels] += delta
    shifted[(row + 1) * mcu :, :, channels] += delta
    return np.clip(shifted, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def head_frame():
    return _decode(_jpeg(_sim_frames(1)[0], 85), None, guard=False)


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_a_dc_drift_staircase_scores_above_the_threshold(scale, head_frame):
    """The defect the guard models, made directly on a decoded simulator frame (at the scale of a DCT-scaled
    decode). Seams inside the scene's smooth areas are all found; over a grid of positions (some seams lie along
    the table's edge or the arms, where a natural step hides the drift: the stated limit) most are."""
    img = cv2.resize(head_frame, (640 // scale, 480 // scale), interpolation=cv2.INTER_AREA)
    mcu = 16 // scale
    assert seam_score(img, scale, (2, 2), SEAM_STEP_LEVELS) < SEAM_AGREEMENT
    channel_sets = (slice(None), slice(2, 3), slice(0, 1))
    for row, k in [(8, 7), (17, 30), (22, 12)]:
        for channels in channel_sets:
            for delta in (-40, -15, 12, 30):
                drifted = _drift(img, mcu, row, k, channels, delta)
                assert seam_score(drifted, scale, (2, 2), SEAM_STEP_LEVELS) >= SEAM_AGREEMENT, (row, k, delta)
    found = [seam_score(_drift(img, mcu, row, k, channels, delta), scale, (2, 2), SEAM_STEP_LEVELS)
             >= SEAM_AGREEMENT for row in range(1, 29, 3) for k in (3, 12, 30) for channels in channel_sets
             for delta in (-30, 20)]
    assert np.mean(found) >= 0.8, np.mean(found)


# -- no false refusals ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("quality", [50, 60, 75, 85, 95])
def test_good_jpegs_of_sim_and_synthetic_scenes_are_never_refused(quality):
    images = _sim_frames(2) + BENCH.synthetic()
    for img in images:
        for data in (_jpeg(img, quality), BENCH.jpeg(img, quality, "simplejpeg")):
            h, w = img.shape[:2]
            for need in (None, (h // 2, w // 2), (h // 4, w // 4), (h // 8, w // 8)):  # scales 1, 2, 4, 8
                _decode(data, need, guard=True)  # raises DecodeError('corrupt_jpeg_seam') on a false refusal


def test_recorded_jpegs_are_never_refused():
    pytest.importorskip("rosbags")
    jpegs = [d for v in BENCH.recorded_jpegs(REPO / "data" / "sample_episode", every=8).values() for d in v]
    assert len(jpegs) > 50
    for data in jpegs:
        img = _decode(data, None, guard=True)  # as recorded
        for need in (None, (img.shape[0] // 2, img.shape[1] // 2)):
            _decode(data, need, guard=True)
        big = cv2.resize(img, (640, 480), interpolation=cv2.INTER_CUBIC)  # at a camera's size, re-encoded
        for quality in (50, 75, 95):
            _decode(_jpeg(big, quality), WRIST_NEED, guard=True)


# -- configuration -----------------------------------------------------------------------------------------------
def test_guard_settings_are_perception_config_fields_settable_from_the_robot_file():
    from fastwam_ros.robot import load_robot

    doc = yaml.safe_load((REPO / "config" / "robots" / "demo_aloha.yaml").read_text())
    doc.setdefault("sync", {}).update(jpeg_guard_agreement=0.9, jpeg_guard_step_levels=12, jpeg_guard=False)
    cfg = load_robot(doc).perception_config()
    assert (cfg.jpeg_guard, cfg.jpeg_guard_agreement, cfg.jpeg_guard_step_levels) == (False, 0.9, 12.0)
    default = _config()
    assert (default.jpeg_guard, default.jpeg_guard_agreement, default.jpeg_guard_step_levels) == (
        True, SEAM_AGREEMENT, SEAM_STEP_LEVELS)
    for bad in ({"jpeg_guard": "yes"}, {"jpeg_guard_agreement": 0.0}, {"jpeg_guard_agreement": 1.5},
                {"jpeg_guard_step_levels": float("nan")}, {"jpeg_guard_step_levels": 0.5}):
        with pytest.raises(ConfigError) as err:
            _config(**bad)
        assert next(iter(bad)) in str(err.value)
