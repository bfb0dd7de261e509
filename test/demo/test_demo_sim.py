"""The demo simulator: joint layout, limits, tracking, time, cameras, towel, scripted folds (kinematic mode
always; MuJoCo mode where mujoco + gym-aloha + an offscreen GL backend are available)."""

from __future__ import annotations

import numpy as np
import pytest

from fastwam_ros.control import parse_urdf_limits
from fastwam_ros.sim import HOME_POSITIONS, JOINT_NAMES, BimanualSim, SimConfig, joint_limits
from fastwam_ros.sim import kinematics as K
from fastwam_ros.sim.scripted import make_folder


def _mujoco_sim() -> BimanualSim:
    from fastwam_ros.sim import mujoco_backend as mb

    ok, why = mb.mujoco_available()
    if not ok:
        pytest.skip(why)
    if mb.probe_render_backend() is None:
        pytest.skip("no offscreen GL backend for MuJoCo here")
    return BimanualSim(mode="mujoco", seed=0)


@pytest.fixture(scope="module")
def mj_sim():
    sim = _mujoco_sim()
    yield sim
    sim.close()


def test_joint_layout_is_aloha_14():
    assert len(JOINT_NAMES) == 14
    assert JOINT_NAMES[:7] == ("left_waist", "left_shoulder", "left_elbow", "left_forearm_roll",
                               "left_wrist_angle", "left_wrist_rotate", "left_gripper")
    assert JOINT_NAMES[7:] == tuple(n.replace("left", "right") for n in JOINT_NAMES[:7])


def test_urdf_limits_parse_with_the_controller_parser():
    sim = BimanualSim(mode="kinematic")
    parsed = parse_urdf_limits(sim.urdf())
    for name, lim in joint_limits().items():
        assert parsed[name].lower == pytest.approx(lim.lower)
        assert parsed[name].upper == pytest.approx(lim.upper)
        assert parsed[name].max_velocity == pytest.approx(lim.velocity)


def test_kinematic_tracking_time_and_clamps():
    sim = BimanualSim(SimConfig(tracking_time_constant_s=0.05), mode="kinematic", seed=1)
    assert sim.mode == "kinematic" and sim.render_backend == "synthetic"
    np.testing.assert_allclose(sim.joint_positions(), HOME_POSITIONS)
    target = HOME_POSITIONS.copy()
    target[[0, 7]] += 0.4
    target[[6, 13]] = 0.0
    for _ in range(60):
        sim.step(target, 1.0 / 60.0)
    assert sim.time_ns == 60 * round(1e9 / 60.0)
    assert sim.time_s == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(sim.joint_positions(), target, atol=1e-3)
    # velocity limit respected: a 2 rad jump on the waist cannot happen in one 10 ms step
    before = sim.joint_positions()[0]
    far = target.copy()
    far[0] = before + 2.0
    sim.step(far, 0.01)
    assert sim.joint_positions()[0] - before <= joint_limits()["left_waist"].velocity * 0.01 + 1e-9
    # out-of-range commands are clamped and counted; NaN commands are ignored
    bad = target.copy()
    bad[1] = 10.0
    sim.step(bad, 0.01)
    assert sim.command_clamp_count == 1
    assert sim.last_command()[1] == pytest.approx(joint_limits()["left_shoulder"].upper)
    held = sim.last_command()
    nan = target.copy()
    nan[3] = np.nan
    sim.step(nan, 0.01)
    np.testing.assert_array_equal(sim.last_command(), held)
    with pytest.raises(ValueError):
        sim.step(np.zeros(13), 0.01)
    sim.reset(seed=2)
    assert sim.time_ns == 0


def test_kinematic_images_carry_the_joint_state():
    sim = BimanualSim(mode="kinematic", seed=0)
    imgs = {cam: sim.render(cam) for cam in sim.cameras}
    for cam, img in imgs.items():
        assert img.dtype == np.uint8 and img.shape == (*sim.config.camera_hw[cam], 3)
        assert img.std() > 5, f"{cam} image is flat"
    moved = HOME_POSITIONS.copy()
    moved[[0, 1, 7, 8]] += 0.5
    for _ in range(60):
        sim.step(moved, 1 / 30)
    for cam in sim.cameras:
        diff = np.abs(sim.render(cam).astype(int) - imgs[cam].astype(int)).mean()
        assert diff > 2.0, f"{cam} did not change when the arms moved"
    assert sim.render("head", 40, 60).shape == (40, 60, 3)
    with pytest.raises(ValueError):
        sim.render("top")


def test_towel_pose_is_seeded_and_visible():
    a = BimanualSim(mode="kinematic", seed=3)
    b = BimanualSim(mode="kinematic", seed=3)
    c = BimanualSim(mode="kinematic", seed=4)
    np.testing.assert_array_equal(a.towel.rest_corners_xy, b.towel.rest_corners_xy)
    assert not np.allclose(a.towel.rest_corners_xy, c.towel.rest_corners_xy)
    np.testing.assert_array_equal(a.render("head"), b.render("head"))
    assert np.abs(a.render("head").astype(int) - c.render("head").astype(int)).sum() > 0


def test_inverse_kinematics_reaches_the_towel_corners():
    sim = BimanualSim(mode="kinematic", seed=5)
    for i, side in enumerate(("left", "right")):
        target = np.array([*sim.towel.grasp_points_xy()[i], 0.03])
        q6 = K.solve_reach(side, target, 1.2)
        q7 = np.concatenate([q6, [0.5]])
        assert np.linalg.norm(K.gripper_point(side, q7) - target) < 0.005


@pytest.mark.parametrize("seed", [0, 7])
def test_scripted_fold_folds_the_towel_kinematic(seed):
    sim = BimanualSim(mode="kinematic", seed=seed)
    folder = make_folder(sim.towel, np.random.default_rng(seed))
    lower = np.array([joint_limits()[n].lower for n in JOINT_NAMES])
    upper = np.array([joint_limits()[n].upper for n in JOINT_NAMES])
    assert sim.fold_fraction() == 0.0
    while sim.time_s < folder.duration_s + 0.3:
        cmd = folder.command(sim.time_s + 1 / 30)
        assert np.all(cmd >= lower) and np.all(cmd <= upper)
        sim.step(cmd, 1 / 30)
    assert sim.fold_fraction() > 0.9
    assert sim.towel.held_by == [None, None]  # both corners released


@pytest.mark.parametrize("seed", [0, 3, 11])
def test_scripted_fold_is_feasible_with_a_margin(seed):
    """The demonstrations must never ask for more than the demo robot can do: peak speeds under 60 % of the
    velocity limits, accelerations under a third of the robot file's limits, grippers inside (0, 1) (finite
    differences of the script at 1 kHz, independent of how the script sizes its segments)."""
    from fastwam_ros.robot import load_robot

    robot = load_robot("demo_aloha")
    ctrl = robot.controller_config()
    amax = np.array([ctrl.limits[n].max_acceleration for n in JOINT_NAMES])
    vmax = np.array([joint_limits()[n].velocity for n in JOINT_NAMES])
    sim = BimanualSim(mode="kinematic", seed=seed)
    start = HOME_POSITIONS + np.random.default_rng(seed).uniform(-0.05, 0.05, 14)
    folder = make_folder(sim.towel, np.random.default_rng(seed), start=start)
    dt = 1e-3
    q = np.stack([folder.command(t) for t in np.arange(0.0, folder.duration_s + 0.1, dt)])
    v = np.diff(q, axis=0) / dt
    a = np.diff(v, axis=0) / dt
    np.testing.assert_allclose(q[0], start, atol=1e-12)
    assert np.all(np.abs(v).max(axis=0) <= 0.6 * vmax + 1e-3)
    assert np.all(np.abs(a).max(axis=0) <= amax / 3 + 0.05)
    grip = q[:, [6, 13]]
    assert grip.min() >= 0.1 - 1e-9 and grip.max() <= 0.9 + 1e-9


def test_mujoco_mode_tracks_and_renders(mj_sim):
    sim = mj_sim
    sim.reset(seed=0)
    assert sim.mode == "mujoco" and sim.render_backend.startswith("mujoco-")
    np.testing.assert_allclose(sim.joint_positions(), HOME_POSITIONS, atol=1e-6)
    target = HOME_POSITIONS.copy()
    target[[0, 7]] += 0.3
    target[[2, 9]] -= 0.3
    target[[6, 13]] = 0.1
    for _ in range(60):
        sim.step(target, 1 / 30)
    assert sim.time_s == pytest.approx(2.0, abs=1e-6)
    err = np.abs(sim.joint_positions() - target)
    assert err.max() < 0.1, err
    for cam in sim.cameras:
        img = sim.render(cam)
        assert img.shape == (*sim.config.camera_hw[cam], 3) and img.dtype == np.uint8
        assert img.std() > 5


def test_mujoco_bodies_agree_with_numpy_kinematics(mj_sim):
    """The kinematic backend's renderer and the scripted demos use the numpy FK: it must match MuJoCo's."""
    sim = mj_sim
    sim.reset(seed=0)
    q = HOME_POSITIONS.copy()
    q[[0, 1, 2, 4]] += [0.3, 0.2, -0.2, 0.4]
    sim._backend.set_state(q)
    data = sim._backend.data
    q_meas = sim.joint_positions()
    for s, side in enumerate(("left", "right")):
        frames = K.arm_frames(side, q_meas[7 * s : 7 * s + 7])
        body = data.body(f"vx300s_{side}/gripper_link")
        np.testing.assert_allclose(frames["wrist_rotate"][0], body.xpos, atol=1e-4)
        np.testing.assert_allclose(frames["wrist_rotate"][1], body.xmat.reshape(3, 3), atol=1e-4)
        eye, R = K.wrist_camera_pose(side, q_meas[7 * s : 7 * s + 7])
        cam = data.cam(f"{side}_wrist")
        np.testing.assert_allclose(eye, cam.xpos, atol=1e-4)
        np.testing.assert_allclose(R, cam.xmat.reshape(3, 3), atol=1e-4)


def test_mujoco_scripted_fold(mj_sim):
    sim = mj_sim
    sim.reset(seed=1)
    folder = make_folder(sim.towel, np.random.default_rng(1))
    while sim.time_s < folder.duration_s + 0.3:
        sim.step(folder.command(sim.time_s + 1 / 30), 1 / 30)
    assert sim.fold_fraction() > 0.85


@pytest.mark.parametrize("propagate", [True, False])  # False: as when a plugin reconfigures logging
def test_auto_mode_falls_back_to_kinematic_with_a_reason(monkeypatch, propagate):
    import logging

    from fastwam_ros.sim import mujoco_backend as mb
    from fastwam_ros.sim import sim as sim_module

    # A handler on the module's own logger: independent of propagation, root handlers and the level a
    # (ROS) pytest plugin may set, which made caplog miss the warning on sourced ROS machines.
    class Collect(logging.Handler):
        def __init__(self):
            super().__init__(logging.DEBUG)
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    handler = Collect()
    monkeypatch.setattr(sim_module.LOG, "disabled", False)
    monkeypatch.setattr(sim_module.LOG, "level", logging.DEBUG)
    monkeypatch.setattr(sim_module.LOG, "propagate", propagate)
    sim_module.LOG.addHandler(handler)
    monkeypatch.setattr(mb, "mujoco_available", lambda: (False, "the `mujoco` package is not installed"))
    try:
        sim = BimanualSim(mode="auto")
    finally:
        sim_module.LOG.removeHandler(handler)
    assert sim.mode == "kinematic" and sim.render_backend == "synthetic"
    assert "mujoco" in sim.fallback_reason
    assert any("falling back" in m for m in handler.messages)
    with pytest.raises(RuntimeError, match="mujoco"):
        BimanualSim(mode="mujoco")


def test_sim_config_from_dict_validates():
    cfg = SimConfig.from_dict({"camera_hw": {"head": [32, 64]}, "tracking_time_constant_s": 0.1})
    assert cfg.camera_hw["head"] == (32, 64) and cfg.camera_hw["left_wrist"] == (48, 96)
    with pytest.raises(ValueError, match="unknown"):
        SimConfig.from_dict({"fps": 3})
    with pytest.raises(ValueError, match="camera"):
        SimConfig.from_dict({"camera_hw": {"top": [1, 1]}})
