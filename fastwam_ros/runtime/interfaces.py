"""Typed seams of the policy runtime (``typing.Protocol``): what the runtime needs of a policy, of its loader and
of the observation pipeline. ``FastWAMPolicy`` / ``FastWAMPolicy.from_pretrained`` and
``perception.ObservationPipeline`` implement them; test doubles implement them too. Nothing is filtered by
reflection: a loader receives every argument of :class:`PolicyLoadRequest`, and an argument it cannot honour is
its error to raise (e.g. a variant the checkpoint was not trained with).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


class PolicyOutputLike(Protocol):
    actions: np.ndarray  # [H, A] in robot units, the robot file's joint order
    timing_s: Mapping[str, float]


@runtime_checkable
class ChunkPolicy(Protocol):
    """The policy the worker thread drives."""

    def predict(self, frame: np.ndarray, instruction: str | None, proprio: np.ndarray | None, *,
                seed: int | None = None, prefix: np.ndarray | None = None,
                prefix_weight: np.ndarray | None = None, rtc_mode: str = "inpaint",
                guidance_beta: float = 5.0) -> PolicyOutputLike | np.ndarray: ...


@dataclass(frozen=True)
class PolicyLoadRequest:
    """Everything the policy node asks of a checkpoint (from its deployment parameters + the robot file).

    ``robot``: the RobotSpec the checkpoint's contract is checked against; ``variant``: the attention variant it
    must have been trained with; ``joint_map``: deliberate renames {checkpoint joint: robot joint}."""

    checkpoint: str
    robot: Any
    device: str = "cpu"
    dtype: str = "float32"
    variant: str | None = None
    joint_map: Mapping[str, str] = field(default_factory=dict)
    config: str | None = None
    stats: str | None = None
    vae_dir: str | None = None
    text_encoder_dir: str | None = None
    tokenizer_dir: str | None = None
    cache_dir: str | None = None
    num_inference_steps: int | None = None


class PolicyLoader(Protocol):
    """Builds the policy (on the worker thread), honouring every field of the request or raising."""

    def __call__(self, request: PolicyLoadRequest) -> ChunkPolicy: ...


class ObservationLike(Protocol):
    frame: np.ndarray  # float32 [3, H, W] in [-1, 1]
    stamp_s: float
    proprio: np.ndarray | None


@runtime_checkable
class ObservationSource(Protocol):
    """The perception seam: camera / joint-state messages in, synchronised tiled observations out."""

    def add_image(self, camera: str, msg: Any, stamp_s: float) -> bool: ...

    def add_joint_state(self, stamp_s: float, names: Sequence[str], positions: Sequence[float]) -> bool: ...

    def poll(self, now_s: float) -> ObservationLike | None: ...


def fastwam_loader(request: PolicyLoadRequest) -> ChunkPolicy:
    """The default loader: ``FastWAMPolicy.from_pretrained`` with every request field passed explicitly."""
    from fastwam_ros.model.inference.policy import FastWAMPolicy  # torch import happens here, on the worker

    r = request
    return FastWAMPolicy.from_pretrained(
        r.checkpoint, device=r.device, dtype=r.dtype, text_encoder_dir=r.text_encoder_dir, vae_dir=r.vae_dir,
        cache_dir=r.cache_dir, tokenizer_dir=r.tokenizer_dir, config=r.config, stats=r.stats,
        num_inference_steps=r.num_inference_steps, robot=r.robot, variant=r.variant,
        joint_map=dict(r.joint_map) or None,
    )
