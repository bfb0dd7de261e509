"""Scripted demonstrations: recording, the npz format, and reading them back as training Episodes."""

from __future__ import annotations

import numpy as np
import pytest

from fastwam_ros.sim import JOINT_NAMES, BimanualSim
from fastwam_ros.sim.demo_data import (
    START_JITTER,
    merge_datasets,
    read_episodes,
    read_meta,
    record_episode,
    write_dataset,
)
from fastwam_ros.sim.robot import GRIPPER_INDICES, HOME_POSITIONS
from fastwam_ros.sim.scripted import GRIPPER_CLOSED, GRIPPER_OPEN, INSTRUCTION, make_folder


def test_record_episode_arrays_are_consistent():
    sim = BimanualSim(mode="kinematic")
    ep = record_episode(sim, seed=11, fps=30.0)
    n = len(ep["state"])
    sim.reset(seed=11)  # the same towel the episode started with
    folder = make_folder(sim.towel, np.random.default_rng(11 + 100_000), start=ep["state"][0])
    assert n == int(np.ceil((folder.duration_s + 1.0) * 30))
    # the start state is the home pose jittered within START_JITTER
    jit = np.where(np.isin(np.arange(14), GRIPPER_INDICES), START_JITTER[1], START_JITTER[0])
    assert np.all(np.abs(ep["state"][0] - HOME_POSITIONS) <= jit + 1e-9) and np.any(ep["state"][0] != HOME_POSITIONS)
    for cam in sim.cameras:
        assert ep[cam].shape == (n, *sim.config.camera_hw[cam], 3) and ep[cam].dtype == np.uint8
    assert ep["state"].shape == ep["action"].shape == (n, 14)
    np.testing.assert_allclose(np.diff(ep["timestamps_s"]), 1 / 30, atol=1e-6)
    # action k is the scripted pose for the next tick; the state lags it (first-order tracking)
    np.testing.assert_allclose(ep["action"][10], folder.command(ep["timestamps_s"][10] + 1 / 30), atol=1e-6)
    assert np.abs(ep["state"][1:] - ep["action"][:-1]).max() < 0.2
    assert ep["fold_fraction"][0] == 0.0 and ep["fold_fraction"][-1] > 0.9
    # grippers close and open during the fold, inside their range
    assert ep["action"][:, 6].min() == pytest.approx(GRIPPER_CLOSED) and ep["action"][:, 6].max() == pytest.approx(GRIPPER_OPEN)


def test_dart_recording_perturbs_the_execution_not_the_labels():
    sim = BimanualSim(mode="kinematic")
    clean = record_episode(sim, seed=5, perturb_rad=0.0)
    noisy = record_episode(sim, seed=5, perturb_rad=0.08)
    # same towel, start and script: the labels (the script's commands) are identical
    np.testing.assert_allclose(noisy["action"], clean["action"], atol=1e-12)
    dev = np.abs(noisy["state"] - clean["state"])
    arm = [j for j in range(14) if j not in GRIPPER_INDICES]
    # the executed command was offset: the arms went elsewhere by up to ~the amplitude, the grippers did not
    assert 0.02 < dev[:, arm].max() <= 0.08 + 1e-6
    assert dev[:, list(GRIPPER_INDICES)].max() < 1e-9
    assert noisy["fold_fraction"][-1] > 0.8  # small enough to keep the grasp


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


def test_merge_datasets_renumbers_in_order(tmp_path):
    a = write_dataset(tmp_path / "a", 1, ["kinematic"], lambda m: BimanualSim(mode=m), seed=3, log=lambda s: None)
    b = write_dataset(tmp_path / "b", 2, ["kinematic"], lambda m: BimanualSim(mode=m), seed=4, log=lambda s: None)
    merged = merge_datasets([tmp_path / "a", tmp_path / "b"], tmp_path / "m")
    assert [e["name"] for e in merged["episodes"]] == ["episode_000", "episode_001", "episode_002"]
    assert [e["seed"] for e in merged["episodes"]] == [3000, 4000, 4001]
    assert read_meta(tmp_path / "m") == merged and a["fps"] == b["fps"] == merged["fps"]
    with np.load(tmp_path / "b" / "episode_001.npz") as z0, np.load(tmp_path / "m" / "episode_002.npz") as z1:
        np.testing.assert_array_equal(z0["action"], z1["action"])
