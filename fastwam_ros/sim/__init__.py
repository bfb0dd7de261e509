"""Simulated bimanual robot for the demo (ROS-free): ALOHA arms in MuJoCo, or a numpy kinematic fallback.

Public API: :class:`BimanualSim`, :class:`SimConfig`, :data:`JOINT_NAMES`, :data:`CAMERAS`,
:func:`joint_limits`, :func:`urdf_string`. Scripted demonstrations: :mod:`.scripted`; their dataset format:
:mod:`.demo_data`. Nothing here imports ``mujoco`` until a MuJoCo-mode simulator is built.
"""

from .robot import CAMERAS, HOME_POSITIONS, JOINT_NAMES, JointLimit, joint_limits, urdf_string
from .sim import BimanualSim, SimConfig

__all__ = [
    "CAMERAS",
    "HOME_POSITIONS",
    "JOINT_NAMES",
    "BimanualSim",
    "JointLimit",
    "SimConfig",
    "joint_limits",
    "urdf_string",
]
