"""End-effector pose proprio (LIBERO layout): position + axis-angle from a ROS (x, y, z, w) quaternion."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastwam_ros.perception import ProprioError, pose_proprio


def _quat_xyzw(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    return np.concatenate([np.sin(angle / 2) * axis, [np.cos(angle / 2)]])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=3, max_size=3).filter(lambda v: np.linalg.norm(v) > 1e-2),
       st.floats(0.0, np.pi - 1e-3), st.floats(0.1, 5.0), st.booleans())
def test_axis_angle_of_a_known_rotation(axis, angle, scale, negate):
    q = _quat_xyzw(axis, angle) * scale * (-1 if negate else 1)  # unnormalised, either sign of the double cover
    out = pose_proprio([0.1, -0.2, 0.3], q)
    expect = np.asarray(axis) / np.linalg.norm(axis) * angle
    np.testing.assert_allclose(out[:3], [0.1, -0.2, 0.3], rtol=1e-6)
    np.testing.assert_allclose(out[3:], expect, atol=1e-5)
    assert out.dtype == np.float32


def test_identity_and_bad_poses():
    np.testing.assert_array_equal(pose_proprio([0, 0, 0], [0, 0, 0, 1]), np.zeros(6, np.float32))
    for pos, q in (([0, 0, 0], [0, 0, 0, 0]), ([0, np.nan, 0], [0, 0, 0, 1]), ([0, 0], [0, 0, 0, 1])):
        with pytest.raises(ProprioError) as e:
            pose_proprio(pos, q, frame="left_ee")
        assert e.value.reason == "bad_pose" and e.value.joint == "left_ee"
