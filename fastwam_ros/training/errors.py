"""Errors raised by the training data layer: each names the file, topic, field or joint that is wrong."""

from __future__ import annotations

from fastwam_ros.errors import ConfigError


class DatasetError(ValueError):
    """A recording or dataset cannot be turned into training samples (missing topic, NaN joint, corrupt file...)."""


class TrainConfigError(ConfigError):
    """A training configuration value is missing, unknown or inconsistent."""
