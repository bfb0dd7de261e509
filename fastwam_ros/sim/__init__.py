"""Simulated bimanual robot for the demo (ROS-free): ALOHA arms in MuJoCo, or a numpy kinematic fallback.

Public API: :class:`BimanualSim`, :class:`SimConfig`, :data:`JOINT_NAMES`, :data:`CAMERAS`,
:func:`joint_limits`, :func:`urdf_string`, :class:`ScriptedFolder` (scripted demonstrations).
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
