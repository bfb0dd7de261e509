"""The JPEG seam guard (fastwam_ros/perception/jpeg_guard.py): corrupted JPEGs that libjpeg decodes without a
warning are refused and counted per camera; good JPEGs of simulator, recorded and synthetic scenes never are."""

from __future__ import annotations

import functools
import random
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

REPO = Path(__file__).resolve().parents[2]
WRIST_NEED = (128, 160)  # the robotwin wrist tile: a 480x640 JPEG decodes at 1/4, 240x320 at 1/2


@functools.lru_cache(maxsize=4)
def _sim_frames(n_moments: int = 2, hw=(480, 640)) -> list[np.ndarray]:
    """Simulator images of all three cameras at moments of a scripted fold (the wrists move fast)."""
    from fastwam_ros.sim.scripted import make_folder
    from fastwam_ros.sim.sim import BimanualSim, SimConfig

    sim = BimanualSim(SimConfig(camera_hw={c: hw for c in ("head", "left_wrist", "right_wrist")}),
                      mode="kinematic", seed=0)
    sim.reset(seed=1)
    folder = make_folder(sim.towel, np.random.default_rng(1))
    out, n_steps = [], int(folder.duration_s * 30)
    for t in range(n_steps):
        if t % (n_steps // n_moments) == n_steps // (2 * n_moments):
            out += [sim.render(c) for c in sim.cameras]
        sim.step(folder.command(sim.time_s + 1 / 30), 1 / 30)
    return out


def _synthetic(h: int = 240, w: int = 320) -> list[np.ndarray]:
    """High-frequency, noisy and grid-aligned pictures (the hard cases for a block-grid check)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    grey = lambda a: np.repeat(a.astype(np.uint8)[:, :, None], 3, axis=2)  # noqa: E731
    out = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
           grey(np.clip(128 + rng.normal(0, 12, (h, w)), 0, 255)),
           grey((xx % 2) * 255), grey(((yy // 8) % 2) * 200 + 20),
           grey(127.5 + 127.5 * np.cos((xx ** 2 + yy ** 2) / 80.0))]
    for sq in (8, 16):
        cb = ((yy // sq + xx // sq) % 2 * 255).astype(np.uint8)
        out.append(np.stack([cb, 255 - cb, cb // 2], axis=2))
    out.append(np.kron(rng.integers(0, 256, (h // 16, w // 16, 3)), np.ones((16, 16, 1))).astype(np.uint8))
    edge = np.zeros((h, w, 3), np.uint8)
    edge[:128], edge[128:] = (90, 120, 160), (200, 180, 150)  # a table edge exactly on an MCU row boundary
    out.append(edge)
    text = np.full((h, w, 3), 255, np.uint8)
    for i in range(12):
        cv2.putText(text, "FASTWAM ros 0123 jpeg", (5, 18 + i * 19), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1)
    out.append(text)
    return out


def _recorded_jpegs() -> list[bytes]:
    """Every 8th JPEG of each camera of the repo's sample recording (rosbags needed)."""
    rosbags = pytest.importorskip("rosbags")  # noqa: F841
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    out = []
    with AnyReader([REPO / "data" / "sample_episode"], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as r:
        conns = [c for c in r.connections if c.msgtype == "sensor_msgs/msg/CompressedImage"]
        for i, (c, _, raw) in enumerate(r.messages(connections=conns)):
            if i % 8 == 0:
                out.append(bytes(r.deserialize(raw, c.msgtype).data))
    return out


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    return cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def _decode(data: bytes, need_hw, guard: bool) -> np.ndarray:
    return decode_compressed(SimpleNamespace(format="jpeg", data=data), need_hw=need_hw,
                             seam_agreement=SEAM_AGREEMENT if guard else None)


def _flips(data: bytes, seed: int):
    """JPEGs with 1-5 bytes of the entropy-coded data changed, as the fuzz makes them."""
    r = random.Random(seed)
    sos = data.find(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")
    while True:
        b = bytearray(data)
        for _ in range(r.randint(1, 5)):
            p = r.randint(start, len(b) - 3)
            b[p] = r.choice([b[p] ^ 0xFF, r.randint(0, 255), b[p] ^ (1 << r.randint(0, 7))])
        yield bytes(b)


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
    for flipped in _flips(data, seed=3):
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
    images = _sim_frames(2) + _synthetic()
    for img in images:
        for data in (_jpeg(img, quality), _simplejpeg_444(img, quality)):
            if data is None:
                continue
            h, w = img.shape[:2]
            for need in (None, (h // 2, w // 2), (h // 4, w // 4), (h // 8, w // 8)):  # scales 1, 2, 4, 8
                _decode(data, need, guard=True)  # raises DecodeError('corrupt_jpeg_seam') on a false refusal


def _simplejpeg_444(img: np.ndarray, quality: int) -> bytes | None:
    sj = pytest.importorskip("simplejpeg")
    return sj.encode_jpeg(np.ascontiguousarray(img), quality=quality, colorspace="RGB", colorsubsampling="444")


def test_recorded_jpegs_are_never_refused():
    jpegs = _recorded_jpegs()
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
