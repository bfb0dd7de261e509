"""The demo robot: two ViperX-300s arms (ALOHA layout), 6 revolute joints + 1 gripper each = 14 positions.

Command / state vector layout (the towel-folding layout the policy uses)::

    [left_waist, left_shoulder, left_elbow, left_forearm_roll, left_wrist_angle, left_wrist_rotate,
     left_gripper, right_waist, ..., right_wrist_rotate, right_gripper]

Arm joints are in radians. Grippers are a normalised opening, 0 = closed, 1 = open (as gym-aloha), which the
MuJoCo backend maps to the finger slide joints (metres). Limits follow the ALOHA MuJoCo model
(``vx300s_left.xml`` ranges); velocity limits are conservative values for the demo, not the datasheet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper")
SIDES = ("left", "right")
JOINT_NAMES: tuple[str, ...] = tuple(f"{side}_{j}" for side in SIDES for j in ARM_JOINTS)
N_JOINTS = len(JOINT_NAMES)  # 14
GRIPPER_INDICES = (6, 13)
CAMERAS = ("head", "left_wrist", "right_wrist")

# (lower, upper) position limits: rad for arm joints, normalised opening for grippers.
_ARM_LIMITS = {
    "waist": (-3.14158, 3.14158),
    "shoulder": (-1.85005, 1.25664),
    "elbow": (-1.76278, 1.6057),
    "forearm_roll": (-3.14158, 3.14158),
    "wrist_angle": (-1.8675, 2.23402),
    "wrist_rotate": (-3.14158, 3.14158),
    "gripper": (0.0, 1.0),
}
# Velocity limits: rad/s for arm joints, 1/s (normalised opening per second) for grippers.
_VELOCITY_LIMITS = {
    "waist": 2.0,
    "shoulder": 2.0,
    "elbow": 2.0,
    "forearm_roll": 3.0,
    "wrist_angle": 3.0,
    "wrist_rotate": 3.0,
    "gripper": 4.0,
}
# Effort limits (N·m or N), from the ALOHA model's actuator force ranges where given.
_EFFORT_LIMITS = {
    "waist": 150.0,
    "shoulder": 300.0,
    "elbow": 100.0,
    "forearm_roll": 100.0,
    "wrist_angle": 50.0,
    "wrist_rotate": 20.0,
    "gripper": 20.0,
}

# Home pose (gym-aloha START_ARM_POSE with the gripper half open).
HOME_POSITIONS = np.array([0.0, -0.96, 1.16, 0.0, -0.3, 0.0, 0.5] * 2, dtype=np.float64)

# Finger slide travel of the ALOHA model (metres), used to map the normalised gripper opening.
FINGER_CLOSED_M = 0.021
FINGER_OPEN_M = 0.057


@dataclass(frozen=True)
class JointLimit:
    """Limits of one joint: positions in rad (normalised for grippers), velocity per second, effort."""

    lower: float
    upper: float
    velocity: float
    effort: float


def joint_limits() -> dict[str, JointLimit]:
    """Per-joint limits keyed by joint name (the URDF ``<limit>`` values as a dict)."""
    out = {}
    for name in JOINT_NAMES:
        kind = name.split("_", 1)[1]
        lo, hi = _ARM_LIMITS[kind]
        out[name] = JointLimit(lo, hi, _VELOCITY_LIMITS[kind], _EFFORT_LIMITS[kind])
    return out


def limit_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower [14], upper [14], max velocity [14]) in the command layout."""
    lim = joint_limits()
    lower = np.array([lim[n].lower for n in JOINT_NAMES])
    upper = np.array([lim[n].upper for n in JOINT_NAMES])
    vel = np.array([lim[n].velocity for n in JOINT_NAMES])
    return lower, upper, vel


def gripper_to_finger_m(opening: float) -> float:
    """Normalised gripper opening (0 closed .. 1 open) -> left-finger slide position in metres."""
    g = float(np.clip(opening, 0.0, 1.0))
    return FINGER_CLOSED_M + g * (FINGER_OPEN_M - FINGER_CLOSED_M)


def finger_m_to_gripper(finger_m: float) -> float:
    """Left-finger slide position (metres) -> normalised gripper opening."""
    return (float(finger_m) - FINGER_CLOSED_M) / (FINGER_OPEN_M - FINGER_CLOSED_M)


def urdf_string(robot_name: str = "fastwam_demo_bimanual") -> str:
    """A minimal URDF of the 14 controlled joints (chain geometry approximate, limits exact).

    Meant for ``robot_description`` consumers that need names and limits (the controller's limit parser,
    robot_state_publisher for rviz). Grippers are modelled as one prismatic joint whose position is the
    normalised opening (0..1), so its "metres" are really the normalised unit.
    """
    from .kinematics import CHAIN  # local import: kinematics imports this module

    lim = joint_limits()
    lines = ['<?xml version="1.0"?>', f'<robot name="{robot_name}">', '  <link name="world"/>']
    for side in SIDES:
        base_xyz, base_rpy = (
            ("-0.469 0.5 0", "0 0 0") if side == "left" else ("0.469 0.5 0", "0 0 3.14159265")
        )
        lines.append(f'  <link name="{side}_base_link"/>')
        lines.append(
            f'  <joint name="{side}_base_fixed" type="fixed"><parent link="world"/>'
            f'<child link="{side}_base_link"/><origin xyz="{base_xyz}" rpy="{base_rpy}"/></joint>'
        )
        parent = f"{side}_base_link"
        for (jname, offset, axis) in CHAIN:
            name = f"{side}_{jname}"
            child = f"{name}_link"
            lines.append(f'  <link name="{child}"/>')
            jtype = "prismatic" if jname == "gripper" else "revolute"
            ax = {"x": "1 0 0", "y": "0 1 0", "z": "0 0 1"}[axis]
            ox, oy, oz = offset
            lines.append(
                f'  <joint name="{name}" type="{jtype}"><parent link="{parent}"/><child link="{child}"/>'
                f'<origin xyz="{ox:g} {oy:g} {oz:g}" rpy="0 0 0"/><axis xyz="{ax}"/>'
                f'<limit lower="{lim[name].lower:g}" upper="{lim[name].upper:g}" '
                f'velocity="{lim[name].velocity:g}" effort="{lim[name].effort:g}"/></joint>'
            )
            parent = child
    lines.append("</robot>")
    return "\n".join(lines) + "\n"
