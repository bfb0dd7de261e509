"""control core of fastwam_ros (ROS-free, numpy only): chunk buffering, splicing, limits, watchdogs.

Public entry point: :class:`ChunkController` (see ``controller.py``); configuration in ``config.py``.
Every function takes time explicitly, in seconds; nothing here reads a clock.
"""

from .config import ConfigError, ControllerConfig, JointGroup, JointLimits, URDFError, parse_urdf_limits
from .controller import (
    REJECT_REASONS,
    Chunk,
    ChunkController,
    CommittedPrefix,
    ControlOutput,
    GroupOutput,
    Metrics,
    SubmitResult,
    Trajectory,
)
from .limits import CLAMP_KINDS, LimitArrays, limiter_step

__all__ = [
    "CLAMP_KINDS", "REJECT_REASONS", "Chunk", "ChunkController", "CommittedPrefix", "ConfigError",
    "ControlOutput", "ControllerConfig", "GroupOutput", "JointGroup", "JointLimits", "LimitArrays", "Metrics",
    "SubmitResult", "Trajectory", "URDFError", "limiter_step", "parse_urdf_limits",
]
