"""Exceptions of the perception core. Each carries a short machine-readable ``reason`` code."""

from __future__ import annotations

from fastwam_ros.errors import PerceptionError, ProprioError  # noqa: F401  (defined once there, shared)


class DecodeError(PerceptionError):
    """An image message could not be decoded.

    Reasons: ``unknown_encoding``, ``unsupported_format``, ``truncated``, ``zero_size``, ``bad_step``,
    ``bad_dims``, ``bad_data``, ``bad_message``, ``bad_compressed``, ``corrupt_jpeg`` (libjpeg reported damaged
    entropy-coded data), ``too_many_pixels`` (the header's size exceeds the pixel budget).
    """


# The package's one configuration error (``ConfigError(field, message)``; ``.field`` names the field).
from fastwam_ros.errors import ConfigError  # noqa: E402,F401  (re-exported: perception.ConfigError)
