"""Window sampling of the official Fast-WAM pipeline (reference spec §3.1).

One sample per episode frame t. The window covers ``num_frames`` = 33 consecutive frames t..t+32:

* video: every ``video_stride`` = 4th frame → offsets 0, 4, ..., 32 → 9 frames (3 latent frames after the causal VAE);
* actions: ``action_horizon`` = 32 steps t..t+31;
* proprio: the state at t only.

Indices past the episode end are clamped to the last frame and flagged in ``image_is_pad`` / ``action_is_pad``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NUM_FRAMES = 33
ACTION_HORIZON = 32
VIDEO_STRIDE = 4


@dataclass(frozen=True)
class WindowSpec:
    """Shape of one training window, in dataset frames (control ticks)."""

    num_frames: int = NUM_FRAMES
    action_horizon: int = ACTION_HORIZON
    video_stride: int = VIDEO_STRIDE

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.action_horizon < 1 or self.video_stride < 1:
            raise ValueError(f"window sizes must be positive, got {self}")
        if (self.num_frames - 1) % self.video_stride != 0:
            raise ValueError(
                f"num_frames - 1 ({self.num_frames - 1}) must be a multiple of video_stride ({self.video_stride}) "
                "so that the last frame of the window is a video frame"
            )

    @property
    def num_video_frames(self) -> int:
        """Video frames per sample (9 for the official 33 / 4)."""
        return (self.num_frames - 1) // self.video_stride + 1


@dataclass(frozen=True)
class Window:
    """Frame indices of one sample, already clamped into [0, length-1]."""

    video_index: np.ndarray  # int64 [num_video_frames]
    image_is_pad: np.ndarray  # bool [num_video_frames]
    action_index: np.ndarray  # int64 [action_horizon]
    action_is_pad: np.ndarray  # bool [action_horizon]
    state_index: int


def window_indices(t: int, length: int, spec: WindowSpec = WindowSpec()) -> Window:
    """Indices for the sample starting at frame ``t`` of an episode with ``length`` frames."""
    if length < 1:
        raise ValueError(f"episode length must be >= 1, got {length}")
    if not 0 <= t < length:
        raise IndexError(f"start frame {t} outside the episode [0, {length - 1}]")
    last = length - 1
    video_raw = t + np.arange(0, spec.num_frames, spec.video_stride, dtype=np.int64)
    action_raw = t + np.arange(spec.action_horizon, dtype=np.int64)
    return Window(
        video_index=np.minimum(video_raw, last),
        image_is_pad=video_raw > last,
        action_index=np.minimum(action_raw, last),
        action_is_pad=action_raw > last,
        state_index=int(t),
    )
