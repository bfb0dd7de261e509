"""Exceptions of the perception core. Each carries a short machine-readable ``reason`` code."""

from __future__ import annotations


class PerceptionError(ValueError):
    """Base class: ``reason`` is a short code (used as a counter key in /diagnostics)."""

    def __init__(self, reason: str, message: str = ""):
        self.reason = str(reason)
        super().__init__(f"[{self.reason}] {message}" if message else f"[{self.reason}]")


class DecodeError(PerceptionError):
    """An image message could not be decoded.

    Reasons: ``unknown_encoding``, ``unsupported_format``, ``truncated``, ``zero_size``, ``bad_step``,
    ``bad_dims``, ``bad_data``, ``bad_message``, ``bad_compressed``, ``corrupt_jpeg`` (libjpeg reported damaged
    entropy-coded data), ``too_many_pixels`` (the header's size exceeds the pixel budget).
    """


class ProprioError(PerceptionError):
    """The proprio vector could not be assembled; ``joint`` names the offending joint (or None).

    Reasons: ``missing_joint``, ``nonfinite_joint``, ``out_of_range_joint``, ``duplicate_joint``,
    ``bad_joint_state``, ``bad_pose``.
    """

    def __init__(self, reason: str, joint: str | None = None, message: str = ""):
        self.joint = joint
        super().__init__(reason, message or (f"joint {joint!r}" if joint is not None else ""))


# The package's one configuration error (``ConfigError(field, message)``; ``.field`` names the field).
from fastwam_ros.errors import ConfigError  # noqa: E402,F401  (re-exported: perception.ConfigError)
