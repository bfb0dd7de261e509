"""Training samples (reference spec §3.1) from :class:`~fastwam_ros.training.episode.Episode` objects.

One sample per episode tick t. Camera frames of the 9 video ticks go through the perception package's
``preprocess_frames`` (the same decode → tile → [-1, 1] path as deployment). Actions and state are returned in
robot units; the trainer normalises them with the checkpoint's normaliser.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .episode import Episode
from .errors import DatasetError
from .sampling import WindowSpec, window_indices


class FastWAMDataset(Dataset):
    """Map-style dataset over the ticks of a list of episodes.

    Item ``i`` is a dict:

    * ``video``          float32 [3, 9, H, W] in [-1, 1] (tiled cameras of ticks t, t+4, ..., t+32, clamped);
    * ``actions``        float32 [32, A] commanded actions of ticks t..t+31 (clamped), robot units;
    * ``state``          float32 [P] joint state at t, robot units;
    * ``action_is_pad``  bool [32]; ``image_is_pad`` bool [9];
    * ``instruction``    str; ``index`` int (the sample index, for latent caching).

    ``perception_config`` is the perception package's config; ``with_video=False`` skips the cameras (stats,
    action-only checks). ``window_stride`` k > 1 keeps only the windows that start at ticks 0, k, 2k, ... of each
    episode (k times fewer distinct windows: fewer VAE encodings to cache on a CPU).
    """

    def __init__(
        self,
        episodes: Sequence[Episode],
        perception_config: Any = None,
        spec: WindowSpec = WindowSpec(),
        with_video: bool = True,
        window_stride: int = 1,
    ) -> None:
        if not episodes:
            raise DatasetError("no episodes")
        if int(window_stride) < 1:
            raise DatasetError(f"window_stride must be >= 1, got {window_stride}")
        self.window_stride = int(window_stride)
        # index -> cached VAE latent or None (set by the trainer once every sample's latent is cached): items then
        # carry ``latent`` instead of ``video`` and no camera frame is decoded or tiled
        self.latent_source = None
        self.episodes = list(episodes)
        self.spec = spec
        self.perception_config = perception_config
        self.with_video = with_video
        p, a = self.episodes[0].state_dim, self.episodes[0].action_dim
        for ep in self.episodes:
            if ep.state_dim != p or ep.action_dim != a:
                raise DatasetError(
                    f"episode {ep.name}: state/action dims {ep.state_dim}/{ep.action_dim} differ from "
                    f"{self.episodes[0].name}'s {p}/{a}"
                )
        if with_video:
            if perception_config is None:
                raise DatasetError("a perception config is needed to tile camera frames")
            cams = self.camera_names
            for ep in self.episodes:
                missing = [c for c in cams if c not in ep.cameras]
                if missing:
                    raise DatasetError(f"episode {ep.name} lacks camera(s) {missing}; it has {sorted(ep.cameras)}")
        k = self.window_stride
        lengths = np.array([(len(ep) + k - 1) // k for ep in self.episodes], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(lengths)])

    @property
    def camera_names(self) -> list[str]:
        from .frames import camera_names

        return camera_names(self.perception_config)

    @property
    def instructions(self) -> list[str]:
        """Distinct instructions, in first-seen order."""
        return list(dict.fromkeys(ep.instruction for ep in self.episodes))

    @property
    def state_dim(self) -> int:
        return self.episodes[0].state_dim

    @property
    def action_dim(self) -> int:
        return self.episodes[0].action_dim

    def __len__(self) -> int:
        return int(self._starts[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """(episode number, tick) of sample ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} outside [0, {len(self) - 1}]")
        e = int(np.searchsorted(self._starts, index, side="right") - 1)
        return e, int(index - self._starts[e]) * self.window_stride

    def tiled_frame(self, episode: Episode, tick: int) -> np.ndarray:
        """float32 [3, H, W] in [-1, 1]: the cameras of ``tick`` through the perception preprocessing."""
        from .frames import tile

        images = {cam: episode.cameras[cam].frame(tick) for cam in self.camera_names}
        return tile(images, self.perception_config)

    def __getitem__(self, index: int) -> dict[str, Any]:
        e, t = self.locate(int(index))
        ep = self.episodes[e]
        w = window_indices(t, len(ep), self.spec)
        item: dict[str, Any] = {
            "actions": torch.from_numpy(ep.action[w.action_index]),
            "state": torch.from_numpy(ep.state[w.state_index].copy()),
            "action_is_pad": torch.from_numpy(w.action_is_pad),
            "image_is_pad": torch.from_numpy(w.image_is_pad),
            "instruction": ep.instruction,
            "index": int(index),
        }
        z = self.latent_source(int(index)) if (self.with_video and self.latent_source is not None) else None
        if z is not None:
            item["latent"] = z
        elif self.with_video:
            tiles: dict[int, np.ndarray] = {}
            for tick in w.video_index.tolist():
                if tick not in tiles:
                    tiles[tick] = self.tiled_frame(ep, tick)
            video = np.stack([tiles[k] for k in w.video_index.tolist()], axis=1)  # [3, 9, H, W]
            item["video"] = torch.from_numpy(np.ascontiguousarray(video, dtype=np.float32))
        return item
