"""Model core of fastwam_ros (ROS-free). Where things are:

* ``config``       FastWAMConfig and the presets (torch-free);
* ``network/``     the Fast-WAM MoT (video + action experts, masks, RoPE, flow matching, training loss);
* ``checkpoints/`` weights in and out: official checkpoints, Wan2.2 weights, policy directories, file checks;
* ``processing/``  data <-> network inputs: FastWAMProcessor, normaliser, VAE, text encoder and instruction cache;
* ``inference/``   observation -> chunk: FastWAMPolicy, the fast sampler, real-time chunking;
* ``parity``       the parity checker against the official implementation (``python -m fastwam_ros.model.parity``).

Public names are imported lazily so that ``fastwam_ros.model.config`` works without torch. The flat module paths
of earlier versions (``fastwam_ros.model.policy``, ``.fastwam``, ``.text``, ...) still import: they resolve to
the same module objects in their sub-package.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

_EXPORTS = {
    "FastWAM": "network.fastwam",
    "TextKV": "network.fastwam",
    "FastWAMConfig": "config",
    "load_config": "config",
    "ConfigError": "config",
    "FlowMatchScheduler": "network.flow",
    "LinearNormalizer": "processing.normalizer",
    "StateActionNormalizer": "processing.normalizer",
    "CheckpointError": "checkpoints.checkpoint",
    "load_official_checkpoint": "checkpoints.checkpoint",
    "check_official_keys": "checkpoints.file_check",
    "init_action_expert_state": "checkpoints.action_init",
    "run_parity": "parity",
    "FastWAMProcessor": "processing.processor",
    "FastWAMPolicy": "inference.policy",
    "PolicyOutput": "inference.policy",
}

# module of the old flat layout -> its sub-package (kept importable for existing code and open branches)
_MOVED = {
    "fastwam": "network", "mot": "network", "video_expert": "network", "action_expert": "network",
    "rope": "network", "masks": "network", "flow": "network", "training_loss": "network",
    "rtc": "network", "rtc_guidance": "network",
    "checkpoint": "checkpoints", "file_check": "checkpoints", "serialization": "checkpoints",
    "weights": "checkpoints", "action_init": "checkpoints",
    "processor": "processing", "normalizer": "processing", "encoders": "processing", "text": "processing",
    "text_cache": "processing",
    "policy": "inference", "policy_loading": "inference", "fast_path": "inference", "staging": "inference",
    "reference_sampler": "inference",

}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``fastwam_ros.model.<old>`` -> the module ``fastwam_ros.model.<sub-package>.<old>`` (same object)."""

    def find_spec(self, fullname, path=None, target=None):
        head, _, name = fullname.rpartition(".")
        if head != __name__ or name not in _MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        _, _, name = spec.name.rpartition(".")
        return importlib.import_module(f"{__name__}.{_MOVED[name]}.{name}")

    def exec_module(self, module):  # already executed under its new name
        pass


if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())
