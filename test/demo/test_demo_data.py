"""Scripted demonstrations: recording, the npz format, and reading them back as training Episodes."""

from __future__ import annotations

import numpy as np
import pytest

from fastwam_ros.sim import JOINT_NAMES, BimanualSim
from fastwam_ros.sim.demo_data import read_episodes, record_episode, write_dataset
from fastwam_ros.sim.scripted import INSTRUCTION, make_folder


def test_record_episode_arrays_are_consistent():
    sim = BimanualSim(mode="kinematic")
    ep = record_episode(sim, seed=11, fps=30.0)
    n = len(ep["state"])
    sim.reset(seed=11)  # the same towel the episode started with
    folder = make_folder(sim.towel, np.random.default_rng(11 + 100_000))
    assert n == int(np.ceil((folder.duration_s + 0.4) * 30))
    for cam in sim.cameras:
        assert ep[cam].shape == (n, *sim.config.camera_hw[cam], 3) and ep[cam].dtype == np.uint8
    assert ep["state"].shape == ep["action"].shape == (n, 14)
    np.testing.assert_allclose(np.diff(ep["timestamps_s"]), 1 / 30, atol=1e-6)
    # action k is the scripted pose for the next tick; the state lags it (first-order tracking)
    np.testing.assert_allclose(ep["action"][10], folder.command(ep["timestamps_s"][10] + 1 / 30), atol=1e-6)
    assert np.abs(ep["state"][1:] - ep["action"][:-1]).max() < 0.2
    assert ep["fold_fraction"][0] == 0.0 and ep["fold_fraction"][-1] > 0.9
    # grippers close and open during the fold
    assert ep["action"][:, 6].min() == pytest.approx(0.0) and ep["action"][:, 6].max() == pytest.approx(1.0)


def test_dataset_roundtrip_as_training_episodes(tmp_path):
    meta = write_dataset(tmp_path, 2, ["kinematic"], lambda m: BimanualSim(mode=m), log=lambda s: None)
    assert [e["name"] for e in meta["episodes"]] == ["episode_000", "episode_001"]
    eps = read_episodes(tmp_path)
    assert len(eps) == 2
    ep = eps[0]
    assert ep.instruction == INSTRUCTION and ep.fps == 30.0
    assert ep.state.shape[1] == ep.action.shape[1] == len(JOINT_NAMES)
    assert set(ep.cameras) == {"head", "left_wrist", "right_wrist"}
    assert ep.cameras["head"].frame(5).shape == (64, 128, 3)
    with np.load(tmp_path / "episode_001.npz") as z:
        np.testing.assert_array_equal(eps[1].cameras["left_wrist"].frame(7), z["left_wrist"][7])
    # resume keeps the files that exist and reproduces the same metadata
    again = write_dataset(tmp_path, 2, ["kinematic"], lambda m: BimanualSim(mode=m), resume=True, log=lambda s: None)
    assert again["episodes"] == meta["episodes"]
