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
       st.floats(1e-3, np.pi - 1e-3), st.floats(0.1, 5.0), st.booleans())
def test_axis_angle_of_a_known_rotation(axis, angle, scale, negate):
    """robosuite's convention: no sign canonicalisation. q = (sin(a/2)·u, cos(a/2)) gives u·a; the other cover
    −q has w = −cos(a/2), so its angle is 2·acos(−cos(a/2)) = 2π − a about −u."""
    q = _quat_xyzw(axis, angle) * scale * (-1 if negate else 1)  # unnormalised, either sign of the double cover
    out = pose_proprio([0.1, -0.2, 0.3], q)
    u = np.asarray(axis) / np.linalg.norm(axis)
    expect = -u * (2 * np.pi - angle) if negate else u * angle
    np.testing.assert_allclose(out[:3], [0.1, -0.2, 0.3], rtol=1e-6)
    np.testing.assert_allclose(out[3:], expect, atol=2e-5)
    assert out.dtype == np.float32


@pytest.mark.parametrize(
    ("q_xyzw", "expect"),
    [
        # hand-computed: w = -0.02/sqrt(1.0004) = -0.0199960; angle = 2*acos(w) = pi + 2*asin(0.0199960)
        # = 3.1415927 + 0.0399947 = 3.1815874; axis = +x (x / sqrt(1 - w^2) = 1)
        ((1.0, 0.0, 0.0, -0.02), (3.1815874, 0.0, 0.0)),
        # the other cover of the same rotation: angle = 2*acos(+0.0199960) = pi - 0.0399947 = 3.1015980 about -x
        ((-1.0, 0.0, 0.0, 0.02), (-3.1015980, 0.0, 0.0)),
        # w = 0 exactly: half a turn about y, pi either way
        ((0.0, 1.0, 0.0, 0.0), (0.0, np.pi, 0.0)),
        ((0.0, -1.0, 0.0, 0.0), (0.0, -np.pi, 0.0)),
        # near w = 0 on a diagonal axis: (0.6, 0, 0.8)/|.| scaled, w = -0.05 (unnormalised input, norm 1.0012492)
        # w_n = -0.0499376, angle = pi + 2*asin(0.0499376) = 3.1415927 + 0.0999170 = 3.2415097
        ((0.6, 0.0, 0.8, -0.05), (0.6 * 3.2415097, 0.0, 0.8 * 3.2415097)),
        # w = -1: a full turn, robosuite returns the zero vector (its denominator sqrt(1 - w^2) is 0)
        ((0.0, 0.0, 0.0, -1.0), (0.0, 0.0, 0.0)),
    ],
)
def test_robosuite_convention_near_w_zero(q_xyzw, expect):
    out = pose_proprio([0.0, 0.0, 0.0], q_xyzw)
    np.testing.assert_allclose(out[3:], expect, atol=2e-6)


def test_identity_and_bad_poses():
    np.testing.assert_array_equal(pose_proprio([0, 0, 0], [0, 0, 0, 1]), np.zeros(6, np.float32))
    for pos, q in (([0, 0, 0], [0, 0, 0, 0]), ([0, np.nan, 0], [0, 0, 0, 1]), ([0, 0], [0, 0, 0, 1])):
        with pytest.raises(ProprioError) as e:
            pose_proprio(pos, q, frame="left_ee")
        assert e.value.reason == "bad_pose" and e.value.joint == "left_ee"
