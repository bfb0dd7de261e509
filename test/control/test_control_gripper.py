"""Gripper command conventions (official LIBERO post-processing) and their application to gripper groups."""

from __future__ import annotations

import numpy as np
import pytest

from fastwam_ros.control import Chunk, ChunkController, ConfigError, ControllerConfig
from fastwam_ros.control.gripper import postprocess_gripper


def test_libero_mapping_hand_values():
    # official eval: g -> 2g - 1 -> negate -> sign: open (1) -> -1, closed (0) -> +1, 0.5 -> 0 (np.sign)
    g = np.array([0.0, 0.2, 0.4999, 0.5, 0.5001, 0.8, 1.0, -0.3, 1.4])
    np.testing.assert_array_equal(postprocess_gripper(g, "libero"), [1, 1, 1, 0, -1, -1, -1, 1, -1])
    np.testing.assert_array_equal(postprocess_gripper(g, "none"), g)
    with pytest.raises(ValueError, match="gripper post-processing"):
        postprocess_gripper(g, "robotwin")


def _config(mode: str) -> ControllerConfig:
    big = {"max_velocity": 1000.0, "max_acceleration": 1.0e6}
    return ControllerConfig.from_dict({
        "groups": [{"name": "arm", "kind": "arm", "joints": ["a0", "a1"], "limits": big},
                   {"name": "gripper", "kind": "gripper", "joints": ["g"], "limits": big}],
        "control_rate_hz": 20.0, "handoff_margin_s": 0.05, "splice_mode": "replace", "replace_execute_steps": 10,
        "enable_ramp_s": 0.0, "trajectory_horizon_s": 0.0, "gripper_postprocess": mode,
    })


@pytest.mark.parametrize(("mode", "expect_gripper"), [("libero", -1.0), ("none", 0.9)])
def test_controller_applies_it_to_gripper_groups_only(mode, expect_gripper):
    cfg = _config(mode)
    ctl = ChunkController(cfg)
    ctl.update_joint_state(0.0, ["a0", "a1", "g"], [0.0, 0.0, 0.0])
    ctl.enable(0.0)
    ctl.tick(0.0)
    pos = np.tile([0.25, -0.5, 0.9], (32, 1))  # gripper 0.9 = open in the data's 0..1 convention
    assert ctl.submit_chunk(Chunk(stamp_s=0.0, step_period_s=0.05, joint_names=("g", "a0", "a1"),
                                  positions=pos[:, [2, 0, 1]]), 0.0).accepted
    out = None
    for k in range(1, 9):
        out = ctl.tick(0.05 * k)
        ctl.update_joint_state(0.05 * k, ["a0", "a1", "g"],
                               np.concatenate([out.groups["arm"].positions, out.groups["gripper"].positions]))
    np.testing.assert_allclose(out.groups["arm"].positions, [0.25, -0.5], atol=0.01)  # the limiter smooths the step
    np.testing.assert_allclose(out.groups["gripper"].positions, [expect_gripper], atol=0.02)


def test_unknown_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="gripper_postprocess"):
        _config("binary")
