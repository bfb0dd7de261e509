"""The one bridge from training to the perception package: decode and tile exactly as deployment does.

Nothing here re-implements image handling: decoding is ``fastwam_ros.perception.decode.decode_message`` and tiling
/ normalisation is the perception package's ``preprocess_frames(images, config)``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from .errors import DatasetError


def decode_image_message(msg: Any) -> np.ndarray:
    """A deserialised sensor_msgs/Image or CompressedImage → uint8 HxWx3 RGB (perception decoder)."""
    from fastwam_ros.perception.decode import decode_message

    return decode_message(msg)


def decode_compressed_bytes(data: bytes) -> np.ndarray:
    """PNG / JPEG bytes (codec sniffed from the magic bytes) → uint8 HxWx3 RGB (perception decoder)."""
    from fastwam_ros.perception.decode import decode_compressed

    return decode_compressed(SimpleNamespace(format="", data=data))


def _find(name: str) -> Any:
    for mod in ("fastwam_ros.perception", "fastwam_ros.perception.preprocess", "fastwam_ros.perception.pipeline",
                "fastwam_ros.perception.observation", "fastwam_ros.perception.tiling", "fastwam_ros.perception.config"):
        try:
            m = importlib.import_module(mod)
        except ImportError:
            continue
        if hasattr(m, name):
            return getattr(m, name)
    raise ImportError(f"fastwam_ros.perception provides no {name}")


def preprocess_frames_fn():
    """The perception package's ``preprocess_frames(images, config) -> float32 [3, H, W]``."""
    return _find("preprocess_frames")


def perception_config_cls():
    """The perception package's ``PerceptionConfig`` class."""
    return _find("PerceptionConfig")


def camera_names(config: Any) -> list[str]:
    """Camera names of a perception config, in its order."""
    cams = getattr(config, "cameras", None)
    if cams is None:
        raise DatasetError("perception config has no cameras")
    if isinstance(cams, dict):
        return list(cams)
    names = []
    for c in cams:
        names.append(c if isinstance(c, str) else c.name)
    return names


def tile(images: dict[str, np.ndarray], config: Any) -> np.ndarray:
    """float32 [3, H, W] in [-1, 1] from per-camera uint8 HxWx3 RGB frames (perception preprocessing)."""
    out = np.asarray(preprocess_frames_fn()(images, config), dtype=np.float32)
    if out.ndim != 3 or out.shape[0] != 3:
        raise DatasetError(f"preprocess_frames returned shape {out.shape}, expected [3, H, W]")
    return out


def is_robot_file(doc: Any) -> bool:
    """True for a parsed robot file (``config/robots/*.yaml``: ``robot``, ``cameras``, ``joints`` at the top)."""
    return isinstance(doc, dict) and all(k in doc for k in ("robot", "cameras", "joints"))


def robot_of(value: Any) -> Any | None:
    """The robot (``fastwam_ros.robot.Robot``) when ``data.perception`` is a robot file (path or bare name),
    else None."""
    if not isinstance(value, (str, Path)):
        return None
    try:
        from fastwam_ros.robot import load_robot

        return load_robot(value)
    except ValueError:
        return None


def robot_name(value: Any) -> str:
    """The robot's name when ``data.perception`` is a robot file (path or bare name), else ""."""
    robot = robot_of(value)
    return "" if robot is None else robot.name


def load_perception_config(value: Any) -> Any:
    """A perception config from a mapping, an existing PerceptionConfig, a robot file (``config/robots/*.yaml``,
    path or bare name), or a YAML file (its ``perception:`` section if it has one, else the whole document)."""
    import yaml

    cls = perception_config_cls()
    if value is None:
        raise DatasetError("data.perception is not set: give the perception config (cameras, layout, tile sizes, "
                           "joint names) or the robot YAML that holds it")
    if isinstance(value, cls):
        return value
    if isinstance(value, str) and "/" not in value and not value.endswith((".yaml", ".yml")):
        from fastwam_ros.robot import load_robot  # a bare robot name: config/robots/<name>.yaml

        try:
            return load_robot(value).perception_config()
        except ValueError as exc:
            raise DatasetError(f"data.perception: {exc}") from exc
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_file():
            raise DatasetError(f"perception config file {path} not found")
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if is_robot_file(doc):
            from fastwam_ros.robot import load_robot

            try:
                return load_robot(path).perception_config()
            except ValueError as exc:
                raise DatasetError(f"{path}: invalid robot file: {exc}") from exc
        if isinstance(doc, dict) and isinstance(doc.get("perception"), dict) and "cameras" not in doc:
            doc = doc["perception"]
        value = doc
    if not isinstance(value, dict):
        raise DatasetError(f"perception config must be a mapping, got {type(value).__name__}")
    try:
        return cls.from_dict(value)
    except ValueError as exc:
        raise DatasetError(f"invalid perception config: {exc}") from exc


def perception_config_dict(config: Any) -> dict:
    """JSON-able dict of a perception config (saved with checkpoints)."""
    import json

    return json.loads(json.dumps(config.to_dict()))
