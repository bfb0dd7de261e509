"""Build the list of episodes a training run uses from the ``data`` section of a training config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .cache import find_cache_files, load_episode_cache
from .episode import Episode
from .errors import DatasetError
from .lerobot_source import LeRobotSpec, read_lerobot_dataset
from .rosbag_source import RosbagSpec, read_rosbag_episodes


def rosbag_spec(settings: dict[str, Any], perception_config: Any = None) -> RosbagSpec:
    """RosbagSpec from config settings; cameras (name → topic) and joint names default to the perception
    config's, so one robot YAML drives both deployment and training."""
    d = dict(settings or {})
    if perception_config is not None:
        if "cameras" not in d:
            cams = {}
            for c in perception_config.cameras:
                if not c.topic:
                    raise DatasetError(f"perception camera {c.name} has no topic; set data.rosbag.cameras")
                topic = c.topic if c.topic.startswith("/") else "/" + c.topic
                if c.transport == "compressed" and not topic.endswith("/compressed"):
                    topic += "/compressed"  # image_transport naming, as the policy node subscribes
                cams[c.name] = topic
            d["cameras"] = cams
        if "joint_names" not in d and perception_config.joint_names:
            d["joint_names"] = list(perception_config.joint_names)
    for key in ("cameras", "joint_names"):
        if key not in d:
            raise DatasetError(f"data.rosbag.{key} is not set and the perception config does not provide it")
    return RosbagSpec.from_dict(d)


def lerobot_spec(settings: dict[str, Any], perception_config: Any = None) -> LeRobotSpec:
    """LeRobotSpec from config settings; cameras default to the perception camera names (as feature keys)."""
    d = dict(settings or {})
    if "cameras" not in d:
        if perception_config is None:
            raise DatasetError("data.lerobot.cameras is not set")
        d["cameras"] = {c.name: c.name for c in perception_config.cameras}
    return LeRobotSpec.from_dict(d)


def load_episodes(fmt: str, paths: list[str | Path], settings: dict[str, Any] | None = None,
                  perception_config: Any = None, load_images: bool = True) -> list[Episode]:
    """Episodes of every path. ``fmt``: ``rosbag``, ``lerobot`` or ``cache``."""
    if not paths:
        raise DatasetError("no data paths given")
    if fmt == "rosbag":
        return read_rosbag_episodes(paths, rosbag_spec(settings or {}, perception_config), load_images=load_images)
    if fmt == "lerobot":
        spec = lerobot_spec(settings or {}, perception_config)
        return [ep for p in paths for ep in read_lerobot_dataset(p, spec, load_images=load_images)]
    if fmt == "cache":
        files = [f for p in paths for f in find_cache_files(p)]
        if not files:
            raise DatasetError(f"no .npz episode cache under {list(map(str, paths))}; run `fastwam convert CONFIG --out DIR` first")
        return [load_episode_cache(f, load_images=load_images) for f in files]
    raise DatasetError(f"unknown data format {fmt!r} (rosbag, lerobot or cache)")


def detect_format(path: str | Path) -> str:
    """Guess the format of a dataset path: ``lerobot`` (meta/info.json), ``rosbag`` (metadata.yaml) or ``cache``."""
    p = Path(path)
    if (p / "meta" / "info.json").is_file():
        return "lerobot"
    if (p / "metadata.yaml").is_file() or any(p.rglob("metadata.yaml")):
        return "rosbag"
    if p.suffix == ".npz" or any(p.rglob("*.npz")):
        return "cache"
    raise DatasetError(f"cannot tell the format of {p}: no meta/info.json, metadata.yaml or .npz episode")
