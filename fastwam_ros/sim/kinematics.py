"""Forward / inverse kinematics of the ALOHA ViperX-300s arms in numpy (geometry from gym-aloha's MJCF).

Used by the kinematic backend's renderer and by the scripted demonstrations, so neither needs MuJoCo.
World frame as in the ALOHA model: x to the right arm, y away from the viewer, z up; table top at z = 0.
"""

from __future__ import annotations

import numpy as np

from .robot import GRIPPER_INDICES, gripper_to_finger_m

# (joint, offset of the joint's body from its parent body in metres, rotation axis). Order = command order.
CHAIN: tuple[tuple[str, tuple[float, float, float], str], ...] = (
    ("waist", (0.0, 0.0, 0.079), "z"),
    ("shoulder", (0.0, 0.0, 0.04805), "y"),
    ("elbow", (0.05955, 0.0, 0.3), "y"),
    ("forearm_roll", (0.2, 0.0, 0.0), "x"),
    ("wrist_angle", (0.1, 0.0, 0.0), "y"),
    ("wrist_rotate", (0.069744, 0.0, 0.0), "x"),
    ("gripper", (0.0687, 0.0, 0.0), "y"),
)
BASE_POSITIONS = {"left": np.array([-0.469, 0.5, 0.0]), "right": np.array([0.469, 0.5, 0.0])}
BASE_YAW = {"left": 0.0, "right": np.pi}
FINGER_LENGTH_M = 0.045  # from the finger slide origin to the finger tip (approximate)
# Wrist camera pose in the gripper frame (gym-aloha: pos -0.1 0 0.16, looking at (0.15, 0, 0.01)).
WRIST_CAMERA_POS = np.array([-0.1, 0.0, 0.16])
WRIST_CAMERA_TARGET = np.array([0.15, 0.0, 0.01])


def _rot(axis: str, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def arm_frames(side: str, q7: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """World (position [3], rotation [3,3]) of each link frame of one arm for its 7 command values.

    Keys: "base", the 6 revolute joints' child links, "finger_left_tip", "finger_right_tip" (positions of the
    finger tips; rotation = the gripper's).
    """
    p = BASE_POSITIONS[side].astype(float).copy()
    R = _rot("z", BASE_YAW[side])
    frames = {"base": (p.copy(), R.copy())}
    for i, (name, offset, axis) in enumerate(CHAIN[:6]):
        p = p + R @ np.asarray(offset)
        R = R @ _rot(axis, float(q7[i]))
        frames[name] = (p.copy(), R.copy())
    finger_origin = p + R @ np.asarray(CHAIN[6][1])
    half = gripper_to_finger_m(float(q7[6]))
    for key, sign in (("finger_left_tip", 1.0), ("finger_right_tip", -1.0)):
        tip = finger_origin + R @ np.array([FINGER_LENGTH_M, sign * half, 0.0])
        frames[key] = (tip, R.copy())
    frames["finger_origin"] = (finger_origin, R.copy())
    return frames


def gripper_point(side: str, q7: np.ndarray) -> np.ndarray:
    """World position (m) of the point between the finger tips of one arm."""
    f = arm_frames(side, q7)
    return 0.5 * (f["finger_left_tip"][0] + f["finger_right_tip"][0])


def arm_polyline(side: str, q7: np.ndarray) -> list[np.ndarray]:
    """World points (m) along one arm, base to finger origin, for drawing."""
    f = arm_frames(side, q7)
    return [f[k][0] for k in ("base", "waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")] + [
        f["finger_origin"][0]
    ]


def wrist_camera_pose(side: str, q7: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World (eye position [3], camera-to-world rotation [3,3]) of a wrist camera, MuJoCo camera convention
    (the camera looks along its -z axis, +y is up in the image)."""
    p, R = arm_frames(side, q7)["wrist_rotate"]
    eye = p + R @ WRIST_CAMERA_POS
    target = p + R @ WRIST_CAMERA_TARGET
    # MuJoCo's mode="targetbody" keeps the camera's x axis horizontal (world z is the up hint).
    return eye, look_at(eye, target, np.array([0.0, 0.0, 1.0]))


def look_at(eye: np.ndarray, target: np.ndarray, up_hint: np.ndarray) -> np.ndarray:
    """Camera-to-world rotation whose -z looks from eye to target (MuJoCo / OpenGL convention)."""
    fwd = np.asarray(target, float) - np.asarray(eye, float)
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, up_hint)
    if np.linalg.norm(right) < 1e-9:
        right = np.cross(fwd, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    return np.stack([right, up, -fwd], axis=1)


def solve_reach(
    side: str,
    target_m: np.ndarray,
    pitch_rad: float = 1.2,
    q_init: np.ndarray | None = None,
    iterations: int = 60,
) -> np.ndarray:
    """Joint angles [6] that put the gripper point of `side` at `target_m` with the gripper pitched down by
    `pitch_rad` (0 = horizontal), forearm roll and wrist rotate kept at 0. Damped least squares on
    (waist, shoulder, elbow, wrist_angle); returns the best solution found (not guaranteed exact)."""
    q = np.zeros(7)
    q[6] = 0.5
    if q_init is not None:
        q[:6] = np.asarray(q_init, float)[:6]
    else:
        q[:6] = [0.0, -0.3, 0.5, 0.0, 0.8, 0.0]
    active = [0, 1, 2, 4]
    target = np.asarray(target_m, float)

    def residual(qq: np.ndarray) -> np.ndarray:
        pos_err = gripper_point(side, qq) - target
        pitch = qq[1] + qq[2] + qq[4]  # all three pitch joints rotate about the same (y) axis
        return np.concatenate([pos_err, [0.2 * (pitch - pitch_rad)]])

    for _ in range(iterations):
        r = residual(q)
        if np.linalg.norm(r) < 1e-5:
            break
        J = np.zeros((4, 4))
        for k, j in enumerate(active):
            dq = q.copy()
            dq[j] += 1e-5
            J[:, k] = (residual(dq) - r) / 1e-5
        step = np.linalg.solve(J.T @ J + 1e-4 * np.eye(4), -J.T @ r)
        q[active] += np.clip(step, -0.3, 0.3)
    return q[:6]


def gripper_value(q14: np.ndarray, side: str) -> float:
    """The normalised gripper opening of `side` in a 14-vector."""
    return float(q14[GRIPPER_INDICES[0] if side == "left" else GRIPPER_INDICES[1]])
