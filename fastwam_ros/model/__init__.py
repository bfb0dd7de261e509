"""Model core of fastwam_ros (ROS-free): the Fast-WAM MoT (video + action experts), flow matching, masks,
normaliser, official checkpoint loading and the parity checker.

Public names are imported lazily so that ``fastwam_ros.model.config`` works without torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "FastWAM": "fastwam",
    "TextKV": "fastwam",
    "FastWAMConfig": "config",
    "load_config": "config",
    "ConfigError": "config",
    "FlowMatchScheduler": "flow",
    "LinearNormalizer": "normalizer",
    "StateActionNormalizer": "normalizer",
    "CheckpointError": "checkpoint",
    "load_official_checkpoint": "checkpoint",
    "init_action_expert_state": "action_init",
    "run_parity": "parity",
    "FastWAMProcessor": "processor",
    "FastWAMPolicy": "policy",
    "PolicyOutput": "policy",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
