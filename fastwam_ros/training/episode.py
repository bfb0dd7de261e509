"""One episode on a fixed control-rate timeline: per-tick camera frames, joint state, commanded action, instruction.

Every source (rosbag2 recording, LeRobot dataset, converted cache) produces :class:`Episode` objects; the sampler
and the statistics only ever see this type. Camera frames stay encoded (JPEG bytes, raw CDR messages, video
frames) until a sample needs them, and are decoded by the perception package's own decoder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import DatasetError


@dataclass
class FrameSequence:
    """Frames of one camera on the episode timeline.

    ``items`` holds each distinct source frame once (encoded or already decoded); ``index[k]`` is the item
    shown at tick k (as-of resampling repeats items when the camera is slower than the control rate).
    ``decoder(item)`` turns an item into uint8 HxWx3 RGB; it must be a picklable module-level function so that
    DataLoader workers can use it.
    """

    items: Sequence[Any]
    index: np.ndarray  # int64 [T]
    decoder: Callable[[Any], np.ndarray]
    source: str = ""  # topic / feature name, for error messages

    def __len__(self) -> int:
        return int(len(self.index))

    def frame(self, tick: int) -> np.ndarray:
        """Decoded uint8 HxWx3 RGB frame shown at ``tick``."""
        item = self.items[int(self.index[tick])]
        try:
            img = self.decoder(item)
        except DatasetError:
            raise
        except Exception as exc:  # noqa: BLE001 - re-raised with the stream named
            raise DatasetError(f"cannot decode frame {tick} of {self.source or 'camera'}: {exc}") from exc
        img = np.asarray(img)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise DatasetError(
                f"decoded frame {tick} of {self.source or 'camera'} is {img.dtype} {img.shape}, expected uint8 HxWx3"
            )
        return img


def identity_decoder(item: Any) -> np.ndarray:
    """Decoder for items that are already uint8 HxWx3 arrays."""
    return np.asarray(item)


@dataclass
class Episode:
    """An episode resampled at ``fps`` (ticks k = 0..T-1 at ``timestamps_s[k]`` seconds from the episode start).

    ``state`` [T, P] and ``action`` [T, A] are float32 in the robot's units (rad, m); ``action[k]`` is the command
    issued at tick k (LeRobot convention), ``state[k]`` the joint state as of tick k.
    """

    name: str
    fps: float
    state: np.ndarray
    action: np.ndarray
    instruction: str
    cameras: dict[str, FrameSequence] = field(default_factory=dict)
    timestamps_s: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state = np.ascontiguousarray(self.state, dtype=np.float32)
        self.action = np.ascontiguousarray(self.action, dtype=np.float32)
        if self.state.ndim != 2 or self.action.ndim != 2:
            raise DatasetError(
                f"episode {self.name}: state and action must be [T, D], got {self.state.shape} and {self.action.shape}"
            )
        n = len(self.state)
        if n < 1:
            raise DatasetError(f"episode {self.name} has no frames")
        if len(self.action) != n:
            raise DatasetError(f"episode {self.name}: {n} state rows but {len(self.action)} action rows")
        for what, arr in (("state", self.state), ("action", self.action)):
            bad = ~np.isfinite(arr)
            if bad.any():
                tick, dim = np.argwhere(bad)[0]
                raise DatasetError(
                    f"episode {self.name}: non-finite {what} value {arr[tick, dim]} at tick {tick}, dim {dim}"
                )
        for cam, seq in self.cameras.items():
            if len(seq) != n:
                raise DatasetError(f"episode {self.name}: camera {cam} has {len(seq)} ticks, expected {n}")
        if not self.fps > 0:
            raise DatasetError(f"episode {self.name}: fps must be > 0, got {self.fps}")
        if self.timestamps_s is None:
            self.timestamps_s = np.arange(n, dtype=np.float64) / float(self.fps)

    def __len__(self) -> int:
        return int(len(self.state))

    @property
    def state_dim(self) -> int:
        return int(self.state.shape[1])

    @property
    def action_dim(self) -> int:
        return int(self.action.shape[1])
