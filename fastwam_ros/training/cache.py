"""Training-ready episode cache written by ``fastwam convert``: one ``.npz`` per episode.

Each file holds the resampled arrays (state, action, timestamps, instruction, fps) and, per camera, the distinct
frames of the episode as lossless-or-original encoded bytes (the recording's own JPEG/PNG payloads are kept as
they are; raw ``Image`` frames are decoded once and stored as PNG, which is lossless), concatenated into one
uint8 buffer with offsets, plus the per-tick frame index. Loading needs no bag reader, no message parsing and
no resampling, and decoding still goes through the perception decoder, so cached and live samples are
bit-identical. No pickled objects: files load with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .episode import Episode, FrameSequence
from .errors import DatasetError
from .lerobot_source import decode_image_bytes

CACHE_VERSION = 1
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


def _encoded_bytes(item, decoder) -> bytes:
    """Original JPEG/PNG payload when the item carries one, else the decoded frame as PNG (lossless)."""
    import cv2

    from .rosbag_source import typestore

    if isinstance(item, tuple) and len(item) == 2 and item[0] == "sensor_msgs/msg/CompressedImage":
        data = bytes(typestore().deserialize_cdr(item[1], item[0]).data)
        if data.startswith(_JPEG_MAGIC) or data.startswith(_PNG_MAGIC):
            return data
    if isinstance(item, (bytes, bytearray)) and (bytes(item[:8]).startswith(_PNG_MAGIC)
                                                 or bytes(item[:3]) == _JPEG_MAGIC):
        return bytes(item)
    rgb = np.asarray(decoder(item))
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise DatasetError("PNG encoding of a cached frame failed")
    return buf.tobytes()


def save_episode_cache(episode: Episode, path: str | Path) -> Path:
    """Write ``episode`` to ``path`` (``.npz``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {
        "state": episode.state,
        "action": episode.action,
        "timestamps_s": np.asarray(episode.timestamps_s, dtype=np.float64),
        "fps": np.asarray(episode.fps, dtype=np.float64),
        "header": np.frombuffer(json.dumps({
            "version": CACHE_VERSION,
            "name": episode.name,
            "instruction": episode.instruction,
            "cameras": list(episode.cameras),
            "meta": {k: v for k, v in episode.meta.items() if isinstance(v, (str, int, float, list))},
        }).encode("utf-8"), dtype=np.uint8),
    }
    for cam, seq in episode.cameras.items():
        blobs = [_encoded_bytes(item, seq.decoder) for item in seq.items]
        offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(b) for b in blobs])
        arrays[f"cam.{cam}.data"] = np.frombuffer(b"".join(blobs), dtype=np.uint8)
        arrays[f"cam.{cam}.offsets"] = offsets
        arrays[f"cam.{cam}.index"] = np.asarray(seq.index, dtype=np.int64)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return path


def load_episode_cache(path: str | Path, load_images: bool = True) -> Episode:
    """Read an episode written by :func:`save_episode_cache`."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(bytes(z["header"]).decode("utf-8"))
            if header.get("version") != CACHE_VERSION:
                raise DatasetError(f"{path}: cache version {header.get('version')}, expected {CACHE_VERSION}; "
                                   "re-run fastwam convert")
            cameras = {}
            if load_images:
                for cam in header["cameras"]:
                    data = z[f"cam.{cam}.data"]
                    off = z[f"cam.{cam}.offsets"]
                    items = [data[off[i]:off[i + 1]].tobytes() for i in range(len(off) - 1)]
                    cameras[cam] = FrameSequence(items=items, index=z[f"cam.{cam}.index"],
                                                 decoder=decode_image_bytes, source=f"{path.name}:{cam}")
            return Episode(name=header["name"], fps=float(z["fps"]), state=z["state"], action=z["action"],
                           instruction=header["instruction"], cameras=cameras, timestamps_s=z["timestamps_s"],
                           meta=dict(header.get("meta", {}), cache=str(path)))
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - zip / key / JSON errors of a damaged file
        raise DatasetError(f"cannot read episode cache {path}: {type(exc).__name__}: {exc}") from exc


def find_cache_files(root: str | Path) -> list[Path]:
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(root.rglob("*.npz"))
