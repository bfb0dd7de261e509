"""Data layer: window sampling (§3.1), rosbag2 reading and as-of resampling, samples through perception."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import training_bagfactory as bf

from fastwam_ros.perception.config import PerceptionConfig
from fastwam_ros.perception.pipeline import preprocess_frames
from fastwam_ros.training.dataset import FastWAMDataset
from fastwam_ros.training.errors import DatasetError
from fastwam_ros.training.rosbag_source import RosbagSpec, read_rosbag_episode
from fastwam_ros.training.sampling import WindowSpec, window_indices


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    return bf.write_bag(tmp_path_factory.mktemp("bags") / "ep0")


@pytest.fixture(scope="module")
def spec() -> RosbagSpec:
    return RosbagSpec(cameras=dict(bf.CAMERAS), joint_names=list(bf.JOINTS))


@pytest.fixture(scope="module")
def episode(bag, spec):
    return read_rosbag_episode(bag, spec)


# ----------------------------------------------------------------------------------------------- sampling
@pytest.mark.parametrize(
    "t, length, video, img_pad, act_last, first_act_pad",
    [
        # hand-computed: video = t + 0,4,...,32 clamped to length-1; actions t..t+31 clamped
        (0, 100, [0, 4, 8, 12, 16, 20, 24, 28, 32], [0] * 9, 31, None),
        (60, 100, [60, 64, 68, 72, 76, 80, 84, 88, 92], [0] * 9, 91, None),
        (70, 100, [70, 74, 78, 82, 86, 90, 94, 98, 99], [0] * 8 + [1], 99, 30),  # 70+30 = 100 > 99
        (99, 100, [99] * 9, [0] + [1] * 8, 99, 1),
        (20, 45, [20, 24, 28, 32, 36, 40, 44, 44, 44], [0] * 7 + [1, 1], 44, 25),
        (0, 1, [0] * 9, [0] + [1] * 8, 0, 1),
    ],
)
def test_window_indices_hand_computed(t, length, video, img_pad, act_last, first_act_pad):
    w = window_indices(t, length)
    assert w.video_index.tolist() == video
    assert w.image_is_pad.astype(int).tolist() == img_pad
    assert len(w.action_index) == 32 and w.action_index[0] == t and w.action_index[-1] == act_last
    expected_pad = [False] * 32 if first_act_pad is None else [k >= first_act_pad for k in range(32)]
    assert w.action_is_pad.tolist() == expected_pad
    assert w.state_index == t


def test_window_spec_rejects_bad_sizes():
    assert WindowSpec().num_video_frames == 9
    with pytest.raises(ValueError, match="multiple of video_stride"):
        WindowSpec(num_frames=32)
    with pytest.raises(IndexError):
        window_indices(5, 5)


# ----------------------------------------------------------------------------------------------- rosbag
def test_rosbag_timeline_and_asof_values(episode):
    # timeline starts at the first camera frame (0.02 s, the last stream to start) and ends at the last one
    # (0.02 + 22/15 s): 44 periods of 1/30 s -> 45 ticks
    assert len(episode) == 45
    assert episode.instruction == bf.INSTRUCTION
    np.testing.assert_allclose(episode.timestamps_s, np.arange(45) / 30, atol=1e-9)
    n = np.arange(45)
    # camera (15 Hz) at tick n: frame n // 2 ; joint state (50 Hz from 0): message 1 + 5n // 3 ;
    # command (30 Hz from 0.001 s): message n
    for cam in bf.CAMERAS:
        assert episode.cameras[cam].index.tolist() == (n // 2).tolist()
    d = np.arange(14)
    expected_state = np.array([[bf.state_value(1 + (5 * k) // 3, j) for j in d] for k in n], dtype=np.float32)
    expected_action = np.array([[bf.command_value(k, j) for j in d] for k in n], dtype=np.float32)
    np.testing.assert_array_equal(episode.state, expected_state)
    np.testing.assert_array_equal(episode.action, expected_action)


def test_rosbag_frames_decode_through_perception(episode):
    for ci, cam in enumerate(bf.CAMERAS):
        for tick in (0, 7, 44):
            np.testing.assert_array_equal(episode.cameras[cam].frame(tick), bf.camera_frame(ci, tick // 2))


def test_dataset_sample_window_stride_padding(episode):
    pcfg = PerceptionConfig.from_dict(bf.perception_dict())
    ds = FastWAMDataset([episode], pcfg)
    assert len(ds) == 45
    item = ds[20]
    # hand-computed for t = 20 of 45 ticks: video ticks 20, 24, ..., 44, then 48, 52 clamped to 44 (padded)
    ticks = [20, 24, 28, 32, 36, 40, 44, 44, 44]
    assert item["image_is_pad"].tolist() == [False] * 7 + [True, True]
    assert item["action_is_pad"].tolist() == [k >= 25 for k in range(32)]
    acts = [min(20 + k, 44) for k in range(32)]
    np.testing.assert_array_equal(item["actions"].numpy(), episode.action[acts])
    np.testing.assert_array_equal(item["state"].numpy(), episode.state[20])
    assert tuple(item["video"].shape) == (3, 9, 64, 96)
    for f, tick in enumerate(ticks):
        images = {cam: bf.camera_frame(ci, tick // 2) for ci, cam in enumerate(bf.CAMERAS)}
        np.testing.assert_array_equal(item["video"][:, f].numpy(), preprocess_frames(images, pcfg))
    assert item["instruction"] == bf.INSTRUCTION and item["index"] == 20


def test_sqlite3_bag_and_trajectory_commands(tmp_path, spec):
    bag = bf.write_bag(tmp_path / "sq", storage="sqlite3", trajectory_commands=True)
    ep = read_rosbag_episode(bag, spec)
    # JointTrajectory: the first point is the command (the second is offset by +100)
    expected = np.array([[bf.command_value(k, j) for j in range(14)] for k in range(45)], dtype=np.float32)
    np.testing.assert_array_equal(ep.action, expected)


def test_next_state_fallback(bag):
    spec = RosbagSpec(cameras=dict(bf.CAMERAS), joint_names=list(bf.JOINTS), action_topic=None)
    ep = read_rosbag_episode(bag, spec, load_images=False)
    np.testing.assert_array_equal(ep.action[:-1], ep.state[1:])
    np.testing.assert_array_equal(ep.action[-1], ep.state[-1])
    assert ep.cameras == {}


def test_sample_bag_real_recording(sample_bag):
    spec = RosbagSpec(cameras={c: f"/cameras/{c}/image_raw/compressed" for c in ("head", "left_wrist", "right_wrist")},
                      joint_names=list(bf.JOINTS))
    ep = read_rosbag_episode(sample_bag, spec)
    assert ep.instruction == "fold the towel in half"
    # 3.6 s recording at 30 Hz: roughly 3.5 s of overlap of all streams
    assert 95 <= len(ep) <= 110
    assert ep.state.shape == (len(ep), 14) and ep.action.shape == (len(ep), 14)
    # the raw head stream carries the same frames as the compressed one (JPEG: close, not equal)
    spec_raw = RosbagSpec(cameras={"head": "/cameras/head/image_raw"}, joint_names=list(bf.JOINTS))
    ep_raw = read_rosbag_episode(sample_bag, spec_raw)
    a = ep.cameras["head"].frame(10).astype(int)
    b = ep_raw.cameras["head"].frame(int(np.searchsorted(ep_raw.timestamps_s, ep.timestamps_s[10] - 1e-6)))
    assert a.shape == (120, 160, 3)
    assert np.abs(a - b).mean() < 8.0


# ----------------------------------------------------------------------------------------------- bad input
def test_missing_topic_named(bag):
    spec = RosbagSpec(cameras={"head": "/cameras/nope"}, joint_names=list(bf.JOINTS))
    with pytest.raises(DatasetError, match="/cameras/nope not in the recording"):
        read_rosbag_episode(bag, spec)


def test_missing_joint_named(bag):
    spec = RosbagSpec(cameras=dict(bf.CAMERAS), joint_names=list(bf.JOINTS) + ["elbow_x"])
    with pytest.raises(DatasetError, match="/joint_states.*elbow_x"):
        read_rosbag_episode(bag, spec, load_images=False)


def test_nan_joint_named(tmp_path, spec):
    bag = bf.write_bag(tmp_path / "nan", nan_at=10)
    # position[2] of the reversed name list is JOINTS[-3]
    with pytest.raises(DatasetError, match=f"/joint_states: joint '{bf.JOINTS[-3]}' has non-finite"):
        read_rosbag_episode(bag, spec)


def test_camera_dropout_detected(tmp_path, spec):
    bag = bf.write_bag(tmp_path / "drop", drop_head_frames=range(5, 15))
    # last head frame before the hole: k = 4 at 4/15 s; first tick older than 0.5 s: n = 24 (0.8 s), age 0.533 s
    with pytest.raises(DatasetError, match="/cameras/head/image_raw/compressed: no message for 0.533 s at 0.800 s"):
        read_rosbag_episode(bag, spec)


def test_corrupt_bag(tmp_path, bag, spec):
    import shutil

    bad = tmp_path / "corrupt"
    shutil.copytree(bag, bad)
    mcap = next(bad.glob("*.mcap"))
    data = bytearray(mcap.read_bytes())
    mcap.write_bytes(bytes(data[: len(data) // 2]))  # truncated file
    with pytest.raises(DatasetError, match="corrupt|cannot (open|read)"):
        read_rosbag_episode(bad, spec)
    with pytest.raises(DatasetError, match="does not exist"):
        read_rosbag_episode(tmp_path / "absent", spec)


def test_missing_instruction(tmp_path, spec):
    bag = bf.write_bag(tmp_path / "noinst", instruction=None)
    with pytest.raises(DatasetError, match="/instruction not in the recording"):
        read_rosbag_episode(bag, spec, load_images=False)
    fixed = RosbagSpec(cameras=dict(bf.CAMERAS), joint_names=list(bf.JOINTS), instruction_topic=None,
                       instruction="stack the cups")
    assert read_rosbag_episode(bag, fixed, load_images=False).instruction == "stack the cups"


def test_dataset_window_stride_keeps_every_kth_window(episode):
    pcfg = PerceptionConfig.from_dict(bf.perception_dict())
    full = FastWAMDataset([episode, episode], pcfg)
    ds = FastWAMDataset([episode, episode], pcfg, window_stride=4)
    assert len(ds) == 2 * 12  # ticks 0, 4, ..., 44 of each 45-tick episode
    assert ds.locate(0) == (0, 0) and ds.locate(11) == (0, 44) and ds.locate(12) == (1, 0) and ds.locate(13) == (1, 4)
    a, b = ds[13], full[45 + 4]
    for k in ("actions", "state", "video", "action_is_pad", "image_is_pad"):
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy())
    with pytest.raises(DatasetError, match="window_stride"):
        FastWAMDataset([episode], pcfg, window_stride=0)
