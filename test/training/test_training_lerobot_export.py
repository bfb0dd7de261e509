"""LeRobot v3 export (fastwam convert --to lerobot) and frame-by-frame video reading: rosbag2 -> LeRobot v3 ->
the project's LeRobot reader gives the same training samples as the rosbag2 reader, to the codec's tolerance."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import training_bagfactory as bf
import yaml

av = pytest.importorskip("av", reason="PyAV (the lerobot extra) is needed for video export / reading")

from fastwam_ros.training.cli import convert_command  # noqa: E402
from fastwam_ros.training.dataset import FastWAMDataset  # noqa: E402
from fastwam_ros.training.errors import DatasetError  # noqa: E402
from fastwam_ros.training.frames import load_perception_config  # noqa: E402
from fastwam_ros.training.sources import load_episodes  # noqa: E402
from fastwam_ros.training.video import VideoWriter, decode_video_frame, require_av  # noqa: E402

CODEC = "libsvtav1" if "libsvtav1" in av.codecs_available else "libx264"  # AV1 = LeRobot's default
# codec tolerance (yuv420p chroma subsampling + AV1 at crf 30): per frame, mean |error| in uint8 levels and PSNR;
# on the smooth synthetic frames also the largest error (real camera frames have sharp edges: measured mean
# 0.87 levels, PSNR >= 39.9 dB on the sample recording)
MEAN_LEVELS, MIN_PSNR_DB, SYNTHETIC_MAX_LEVELS = 3.0, 32.0, 16


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> Path:
    return bf.write_recordings(tmp_path_factory.mktemp("export") / "recordings", second_instruction="stack the cups")


@pytest.fixture(scope="module")
def robot_yaml(tmp_path_factory) -> Path:
    return bf.write_robot_yaml(tmp_path_factory.mktemp("robot") / "robot.yaml")


def _compare(rosbag_eps, lerobot_eps, pcfg, max_levels=None):
    assert [len(e) for e in lerobot_eps] == [len(e) for e in rosbag_eps]
    errs = []
    for a, b in zip(rosbag_eps, lerobot_eps):
        assert a.instruction == b.instruction
        np.testing.assert_array_equal(a.state, b.state)
        np.testing.assert_array_equal(a.action, b.action)
        assert list(b.cameras) == list(a.cameras)
        for cam in a.cameras:
            for k in range(len(a)):
                errs.append(a.cameras[cam].frame(k).astype(np.float64) - b.cameras[cam].frame(k).astype(np.float64))
    mean_abs = np.array([np.abs(e).mean() for e in errs])
    psnr = np.array([10 * np.log10(255.0**2 / max(float((e**2).mean()), 1e-12)) for e in errs])
    assert mean_abs.max() <= MEAN_LEVELS and psnr.min() >= MIN_PSNR_DB, (mean_abs.max(), psnr.min())
    if max_levels is not None:
        assert max(np.abs(e).max() for e in errs) <= max_levels
    live, back = FastWAMDataset(rosbag_eps, pcfg), FastWAMDataset(lerobot_eps, pcfg)
    assert len(live) == len(back)
    for i in range(0, len(live), 5):
        x, y = live[i], back[i]
        for k in ("actions", "state", "action_is_pad", "image_is_pad"):
            np.testing.assert_array_equal(x[k].numpy(), y[k].numpy(), err_msg=k)
        assert x["instruction"] == y["instruction"]
        diff = (x["video"] - y["video"]).abs()  # [-1, 1] units: 2/255 per level
        assert float(diff.mean()) <= 2 * MEAN_LEVELS / 255
        if max_levels is not None:
            assert float(diff.max()) <= 2 * max_levels / 255 + 1e-6


def test_rosbag_to_lerobot_v3_round_trip(bags, robot_yaml, tmp_path):
    out = tmp_path / "shared_ds"
    rc = convert_command([str(bags), "--perception", str(robot_yaml), "--to", "lerobot", "--codec", CODEC,
                          "--out", str(out), "--repo-id", "lab/towels"])
    assert rc == 0
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] == 2 and info["total_frames"] == 45 + 27
    assert info["features"]["observation.state"]["names"] == bf.JOINTS
    assert info["features"]["observation.images.head"]["info"]["video.codec"] in ("av1", "h264")
    stats = json.loads((out / "meta" / "stats.json").read_text())
    assert np.asarray(stats["observation.images.head"]["mean"]).shape == (3, 1, 1)
    pcfg = load_perception_config(str(robot_yaml))
    rosbag_eps = load_episodes("rosbag", [bags], {}, pcfg)
    lerobot_eps = load_episodes("lerobot", [out], {}, pcfg)
    _compare(rosbag_eps, lerobot_eps, pcfg, max_levels=SYNTHETIC_MAX_LEVELS)
    # the state/action statistics LeRobot stores are those of the exported rows
    allstate = np.concatenate([e.state for e in rosbag_eps]).astype(np.float64)
    np.testing.assert_allclose(stats["observation.state"]["mean"], allstate.mean(0), rtol=1e-6)
    # a non-empty output directory is refused
    assert convert_command([str(bags), "--perception", str(robot_yaml), "--to", "lerobot", "--out", str(out)]) == 2


def test_sample_recording_round_trip(sample_bag, tmp_path):
    repo = Path(__file__).resolve().parents[2]
    cfg = repo / "config" / "train_tiny_sample.yaml"  # its cameras and tiling; the shared recording's joints
    joints = [f"{side}_{j}" for side in ("left", "right") for j in (*(f"joint{i}" for i in range(1, 7)), "gripper")]
    out = tmp_path / "sample_lr"
    assert convert_command([str(cfg), f"data.paths=[{sample_bag}]", f"data.perception.joint_names=[{','.join(joints)}]",
                            "--to", "lerobot", "--codec", CODEC, "--out", str(out)]) == 0
    pdict = yaml.safe_load(cfg.read_text())["data"]["perception"]
    pcfg = load_perception_config({**pdict, "joint_names": joints})
    _compare(load_episodes("rosbag", [sample_bag], {}, pcfg), load_episodes("lerobot", [out], {}, pcfg), pcfg)


def test_frame_by_frame_random_access_matches_sequential_decode(tmp_path):
    fps, n = 10.0, 25
    path = tmp_path / "v.mp4"
    w = VideoWriter(path, fps, 32, 48, codec=CODEC, crf=20, gop=8)
    for k in range(n):
        img = np.zeros((32, 48, 3), np.uint8)
        img[:, :, 0] = 8 * k  # level encodes the frame index
        img[:, :, 1] = 255 - 8 * k
        w.write(img)
    w.close()
    with av.open(str(path)) as c:  # independent full decode
        full = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(full) == n
    for k in (24, 3, 4, 5, 17, 0, 9, 8, 24):  # backwards, forwards, across keyframes
        np.testing.assert_array_equal(decode_video_frame((str(path), k, fps)), full[k], err_msg=str(k))
        assert abs(float(full[k][:, :, 0].mean()) - 8 * k) < 4
    with pytest.raises(DatasetError, match="no frame 25"):
        decode_video_frame((str(path), n, fps))


def test_missing_pyav_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(DatasetError, match="pip install av"):
        require_av()
