"""Episodes from LeRobot-format datasets (codebase v2.x and v3.0) read with pyarrow.

* ``meta/info.json``: fps, features, ``data_path`` / ``video_path`` templates, ``chunks_size``.
* tasks: ``meta/tasks.jsonl`` (v2: {"task_index", "task"}) or ``meta/tasks.parquet`` (v3).
* frames: every ``data/**/*.parquet`` (v2: one episode per file, v3: several), grouped by ``episode_index``.
* cameras: ``dtype: image`` features (PNG/JPEG bytes in the parquet, decoded by the perception decoder) or
  ``dtype: video`` features (MP4 files, any codec FFmpeg decodes -- AV1 included -- through PyAV, an optional
  dependency; for v3 each episode's clip starts at ``videos/<key>/from_timestamp`` of
  ``meta/episodes/**/*.parquet``).

LeRobot frames are already on the dataset's fps timeline, so no resampling is needed. Video frames are decoded
one at a time when a sample needs them (:mod:`.video`); nothing is decoded when the episode is loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .episode import Episode, FrameSequence
from .errors import DatasetError


@dataclass
class LeRobotSpec:
    """Which features of a LeRobot dataset make an episode.

    cameras:     camera name (as in the perception config) -> image/video feature key; a bare key ``cam_high``
                 means ``observation.images.cam_high``.
    state_key / action_key: float vector features ("default" means ``observation.state`` / ``action``).
    instruction: fixed instruction overriding the dataset's tasks.
    episodes:    subset of episode indices (default: all).
    """

    cameras: dict[str, str]
    state_key: str = "observation.state"
    action_key: str = "action"
    instruction: str | None = None
    episodes: list[int] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LeRobotSpec:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise DatasetError(f"lerobot spec: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**d)


def _feature_key(key: str, kind: str) -> str:
    if kind == "image":
        return key if key.startswith("observation.") else f"observation.images.{key}"
    if key == "default":
        return "observation.state" if kind == "state" else "action"
    return key


def decode_image_bytes(data: bytes) -> np.ndarray:
    """PNG/JPEG bytes → uint8 HxWx3 RGB through the perception decoder."""
    from .frames import decode_compressed_bytes

    return decode_compressed_bytes(bytes(data))


def _column_matrix(table, key: str, where: str) -> np.ndarray:
    import pyarrow as pa

    if key not in table.column_names:
        raise DatasetError(f"{where}: column {key!r} missing; columns: {table.column_names}")
    col = table.column(key).combine_chunks()
    if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        n = len(col)
        flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
        if n and flat.size % n:
            raise DatasetError(f"{where}: column {key!r} has rows of different lengths")
        return flat.reshape(n, -1 if n else 0)
    return col.to_numpy(zero_copy_only=False).astype(np.float64).reshape(len(col), -1)


def _read_tasks(root: Path) -> dict[int, str]:
    jsonl = root / "meta" / "tasks.jsonl"
    pq = root / "meta" / "tasks.parquet"
    tasks: dict[int, str] = {}
    if jsonl.is_file():
        for line in jsonl.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                tasks[int(row["task_index"])] = str(row["task"])
    elif pq.is_file():
        import pyarrow.parquet as papq

        t = papq.read_table(pq).to_pydict()
        text_col = next((c for c in ("task", "__index_level_0__") if c in t), None)
        if text_col is None or "task_index" not in t:
            raise DatasetError(f"{pq}: expected columns task_index and task, got {list(t)}")
        tasks = {int(i): str(s) for i, s in zip(t["task_index"], t[text_col])}
    return tasks


def _read_v3_episode_meta(root: Path) -> dict[int, dict[str, Any]]:
    import pyarrow.parquet as papq

    files = sorted((root / "meta" / "episodes").rglob("*.parquet"))
    out: dict[int, dict[str, Any]] = {}
    for f in files:
        d = papq.read_table(f).to_pydict()
        for row in range(len(d.get("episode_index", []))):
            out[int(d["episode_index"][row])] = {k: v[row] for k, v in d.items()}
    return out


def read_lerobot_dataset(root: str | Path, spec: LeRobotSpec, load_images: bool = True) -> list[Episode]:
    """Read every (or the selected) episode of a LeRobot dataset at ``root``."""
    import pyarrow as pa
    import pyarrow.parquet as papq

    root = Path(root)
    info_path = root / "meta" / "info.json"
    if not info_path.is_file():
        raise DatasetError(f"{root} is not a LeRobot dataset: {info_path} missing")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    version = str(info.get("codebase_version", "v2.0"))
    fps = float(info.get("fps", 0) or 0)
    if fps <= 0:
        raise DatasetError(f"{info_path}: fps missing or not positive")
    features = info.get("features", {})
    state_key = _feature_key(spec.state_key, "state")
    action_key = _feature_key(spec.action_key, "action")
    cam_keys = {cam: _feature_key(k, "image") for cam, k in spec.cameras.items()}
    for k in [state_key, action_key, *cam_keys.values()]:
        if features and k not in features:
            raise DatasetError(f"{info_path}: feature {k!r} not in the dataset; features: {sorted(features)}")
    cam_kind = {cam: features.get(k, {}).get("dtype", "image") for cam, k in cam_keys.items()}

    data_files = sorted((root / "data").rglob("*.parquet"))
    if not data_files:
        raise DatasetError(f"{root}/data holds no parquet file")
    columns = ["episode_index", "frame_index", state_key, action_key]
    image_cols = [k for cam, k in cam_keys.items() if cam_kind[cam] == "image"] if load_images else []
    tables = []
    for f in data_files:
        schema = papq.read_schema(f)
        cols = columns + [c for c in ("task_index", "timestamp") if c in schema.names] + image_cols
        missing = [c for c in cols if c not in schema.names]
        if missing:
            raise DatasetError(f"{f}: columns {missing} missing; has {schema.names}")
        tables.append(papq.read_table(f, columns=cols))
    try:
        table = pa.concat_tables(tables, promote_options="default")
    except TypeError:  # pyarrow < 14
        table = pa.concat_tables(tables, promote=True)

    ep_col = table.column("episode_index").to_numpy()
    frame_col = table.column("frame_index").to_numpy()
    tasks = _read_tasks(root)
    v3_meta = _read_v3_episode_meta(root) if version.startswith("v3") else {}
    wanted = sorted(set(ep_col.tolist())) if spec.episodes is None else list(spec.episodes)
    chunks_size = int(info.get("chunks_size", 1000))
    video_frames: dict[Path, int] = {}  # frame count per video file
    episodes: list[Episode] = []
    for ep in wanted:
        rows = np.nonzero(ep_col == ep)[0]
        if len(rows) == 0:
            raise DatasetError(f"{root}: episode {ep} has no frame in data/")
        rows = rows[np.argsort(frame_col[rows], kind="stable")]
        sub = table.take(pa.array(rows))
        where = f"{root} episode {ep}"
        state = _column_matrix(sub, state_key, where)
        action = _column_matrix(sub, action_key, where)
        timestamps = (sub.column("timestamp").to_numpy().astype(np.float64) if "timestamp" in sub.column_names
                      else np.arange(len(rows)) / fps)
        if spec.instruction is not None:
            instruction = spec.instruction
        else:
            if "task_index" not in sub.column_names:
                raise DatasetError(f"{where}: no task_index column; set a fixed instruction")
            ti = int(sub.column("task_index").to_numpy()[0])
            if ti not in tasks:
                raise DatasetError(f"{where}: task_index {ti} not in meta/tasks.*")
            instruction = tasks[ti]
        cameras: dict[str, FrameSequence] = {}
        if load_images:
            for cam, key in cam_keys.items():
                if cam_kind[cam] == "image":
                    items = []
                    for k, cell in enumerate(sub.column(key).to_pylist()):
                        data = cell.get("bytes") if isinstance(cell, dict) else cell
                        if not data and isinstance(cell, dict) and cell.get("path"):
                            data = (root / cell["path"]).read_bytes()
                        if not data:
                            raise DatasetError(f"{where}: frame {k} of {key} holds no image bytes")
                        items.append(data)
                    cameras[cam] = FrameSequence(items=items, index=np.arange(len(items)),
                                                 decoder=decode_image_bytes, source=f"{where}:{key}")
                else:
                    cameras[cam] = _video_frames(root, info, version, ep, key, chunks_size, v3_meta, timestamps,
                                                 fps, video_frames, where)
        episodes.append(Episode(name=f"episode_{ep:06d}", fps=fps, state=state, action=action,
                                instruction=instruction, cameras=cameras, timestamps_s=timestamps - timestamps[0],
                                meta={"source": str(root), "episode_index": int(ep)}))
    return episodes


def _video_frames(root: Path, info: dict, version: str, ep: int, key: str, chunks_size: int,
                  v3_meta: dict[int, dict[str, Any]], timestamps: np.ndarray, fps: float,
                  counts: dict[Path, int], where: str) -> FrameSequence:
    template = info.get("video_path")
    if not template:
        raise DatasetError(f"{root}/meta/info.json: feature {key} is a video but video_path is not set")
    if version.startswith("v3"):
        m = v3_meta.get(ep)
        if m is None:
            raise DatasetError(f"{where}: not listed in meta/episodes/")
        path = root / template.format(video_key=key, chunk_index=int(m[f"videos/{key}/chunk_index"]),
                                      file_index=int(m[f"videos/{key}/file_index"]))
        start_s = float(m.get(f"videos/{key}/from_timestamp", 0.0))
    else:
        path = root / template.format(video_key=key, episode_chunk=ep // chunks_size, episode_index=ep)
        start_s = 0.0
    from .video import decode_video_frame, video_num_frames

    if path not in counts:
        counts[path] = video_num_frames(path)
    idx = np.round((start_s + timestamps) * fps).astype(np.int64)
    if idx.min() < 0 or idx.max() >= counts[path]:
        raise DatasetError(
            f"{where}: {key} needs video frames {idx.min()}..{idx.max()} but {path} has {counts[path]}"
        )
    used = np.unique(idx)
    remap = np.full(int(idx.max()) + 1, -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return FrameSequence(items=[(str(path), int(i), float(fps)) for i in used], index=remap[idx],
                         decoder=decode_video_frame, source=f"{where}:{key}")
