"""Episodes (e.g. from rosbag2 recordings) -> a LeRobot v3.0 dataset, so recordings can be shared and viewed with
LeRobot's tools (``fastwam convert --to lerobot``).

Frames come from the same :class:`~.episode.FrameSequence` decoders the training samples use (the perception
decoder), one per control tick, so reading the export back with :mod:`.lerobot_source` gives the same samples as
the recordings up to the video codec's loss. Layout (LeRobot codebase v3.0)::

    meta/info.json                          fps, features (shapes, names, video info), path templates, totals
    meta/stats.json                         per-feature min / max / mean / std / count (+ q01 / q99 for vectors)
    meta/tasks.parquet                      task (index) -> task_index
    meta/episodes/chunk-000/file-000.parquet  per episode: length, tasks, data / video file + time ranges, stats
    data/chunk-000/file-000.parquet         one row per frame: observation.state, action, timestamp, indices
    videos/observation.images.<cam>/chunk-000/file-000.mp4   every episode of one camera, back to back
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .episode import Episode
from .errors import DatasetError

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
CODEC_NAMES = {"libsvtav1": "av1", "libaom-av1": "av1", "libdav1d": "av1", "libx264": "h264", "h264": "h264",
               "libx265": "hevc", "mpeg4": "mpeg4"}


def _vector_stats(x: np.ndarray) -> dict[str, list]:
    x = x.astype(np.float64)
    return {"min": x.min(0).tolist(), "max": x.max(0).tolist(), "mean": x.mean(0).tolist(),
            "std": x.std(0).tolist(), "count": [int(len(x))], "q01": np.quantile(x, 0.01, axis=0).tolist(),
            "q99": np.quantile(x, 0.99, axis=0).tolist()}


class _ImageStats:
    """Per-channel min / max / mean / std of frames in [0, 1], as LeRobot stores them ([3, 1, 1])."""

    def __init__(self) -> None:
        self.n = 0
        self.s = np.zeros(3)
        self.s2 = np.zeros(3)
        self.lo = np.full(3, np.inf)
        self.hi = np.full(3, -np.inf)
        self.frames = 0

    def add(self, rgb: np.ndarray) -> None:
        x = rgb.reshape(-1, 3).astype(np.float64) / 255.0
        self.n += len(x)
        self.s += x.sum(0)
        self.s2 += (x**2).sum(0)
        self.lo = np.minimum(self.lo, x.min(0))
        self.hi = np.maximum(self.hi, x.max(0))
        self.frames += 1

    def result(self) -> dict[str, list]:
        mean = self.s / max(self.n, 1)
        std = np.sqrt(np.maximum(self.s2 / max(self.n, 1) - mean**2, 0.0))

        def c(v):
            return [[[float(a)]] for a in v]

        return {"min": c(self.lo), "max": c(self.hi), "mean": c(mean), "std": c(std), "count": [self.frames]}


def _tasks_table(tasks: list[str]):
    """meta/tasks.parquet with pandas metadata making ``task`` the index (what LeRobot reads)."""
    import pyarrow as pa

    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())})
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def _check(episodes: Sequence[Episode]) -> tuple[float, list[str]]:
    if not episodes:
        raise DatasetError("no episodes to export")
    fps = float(episodes[0].fps)
    cams = list(episodes[0].cameras)
    for ep in episodes:
        if abs(float(ep.fps) - fps) > 1e-9:
            raise DatasetError(f"episode {ep.name} is at {ep.fps} Hz, the first at {fps} Hz: one fps per dataset")
        if list(ep.cameras) != cams:
            raise DatasetError(f"episode {ep.name} has cameras {list(ep.cameras)}, the first {cams}")
        if ep.state_dim != episodes[0].state_dim or ep.action_dim != episodes[0].action_dim:
            raise DatasetError(f"episode {ep.name}: state/action dims differ from the first episode")
    if not cams:
        raise DatasetError("the episodes hold no camera frames (load them with images)")
    return fps, cams


def export_lerobot(episodes: Sequence[Episode], out: str | Path, *, codec: str = "libsvtav1", crf: int | None = 30,
                   repo_id: str | None = None, joint_names: list[str] | None = None,
                   action_names: list[str] | None = None, robot_type: str | None = None) -> Path:
    """Write ``episodes`` as a LeRobot v3.0 dataset at ``out`` (a new or empty directory); returns ``out``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .video import VideoWriter

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out} exists and is not empty; choose a new output directory")
    fps, cams = _check(episodes)
    keys = {cam: f"observation.images.{cam}" for cam in cams}
    tasks = list(dict.fromkeys(ep.instruction for ep in episodes))
    task_index = {t: i for i, t in enumerate(tasks)}

    writers: dict[str, VideoWriter] = {}
    shapes: dict[str, tuple[int, int, int]] = {}
    img_stats = {cam: _ImageStats() for cam in cams}
    rows: dict[str, list] = {k: [] for k in ("episode_index", "frame_index", "index", "timestamp", "task_index")}
    states, actions, ep_rows = [], [], []
    start = 0
    try:
        for e, ep in enumerate(episodes):
            n = len(ep)
            for cam in cams:
                seq = ep.cameras[cam]
                last_item, rgb = None, None
                for k in range(n):
                    item = int(seq.index[k])
                    if item != last_item:  # a camera slower than the control rate repeats its frame
                        rgb = seq.frame(k)
                        last_item = item
                    if cam not in writers:
                        shapes[cam] = tuple(int(v) for v in rgb.shape)
                        writers[cam] = VideoWriter(out / VIDEO_PATH.format(video_key=keys[cam], chunk_index=0,
                                                                           file_index=0),
                                                   fps, rgb.shape[0], rgb.shape[1], codec=codec, crf=crf)
                    if tuple(rgb.shape) != shapes[cam]:
                        raise DatasetError(f"episode {ep.name}: camera {cam} frame {k} is {rgb.shape}, earlier "
                                           f"frames {shapes[cam]}; a video needs one size")
                    writers[cam].write(rgb)
                    img_stats[cam].add(rgb)
            rows["episode_index"] += [e] * n
            rows["frame_index"] += list(range(n))
            rows["index"] += list(range(start, start + n))
            rows["timestamp"] += (np.arange(n) / fps).tolist()
            rows["task_index"] += [task_index[ep.instruction]] * n
            states.append(ep.state)
            actions.append(ep.action)
            row: dict[str, Any] = {"episode_index": e, "tasks": [ep.instruction], "length": n,
                                   "data/chunk_index": 0, "data/file_index": 0, "dataset_from_index": start,
                                   "dataset_to_index": start + n, "meta/episodes/chunk_index": 0,
                                   "meta/episodes/file_index": 0}
            for cam in cams:
                row.update({f"videos/{keys[cam]}/chunk_index": 0, f"videos/{keys[cam]}/file_index": 0,
                            f"videos/{keys[cam]}/from_timestamp": start / fps,
                            f"videos/{keys[cam]}/to_timestamp": (start + n) / fps})
            for name, arr in (("observation.state", ep.state), ("action", ep.action)):
                for stat, v in _vector_stats(arr).items():
                    row[f"stats/{name}/{stat}"] = v
            ep_rows.append(row)
            start += n
    finally:
        for w in writers.values():
            w.close()

    state, action = np.concatenate(states), np.concatenate(actions)
    p, a = state.shape[1], action.shape[1]
    (out / "data" / "chunk-000").mkdir(parents=True, exist_ok=True)
    table = pa.table({
        "observation.state": pa.FixedSizeListArray.from_arrays(pa.array(state.reshape(-1), pa.float32()), p),
        "action": pa.FixedSizeListArray.from_arrays(pa.array(action.reshape(-1), pa.float32()), a),
        "timestamp": pa.array(rows["timestamp"], pa.float32()),
        "frame_index": pa.array(rows["frame_index"], pa.int64()),
        "episode_index": pa.array(rows["episode_index"], pa.int64()),
        "index": pa.array(rows["index"], pa.int64()),
        "task_index": pa.array(rows["task_index"], pa.int64()),
    })
    pq.write_table(table, out / DATA_PATH.format(chunk_index=0, file_index=0))
    (out / "meta" / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(ep_rows), out / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    pq.write_table(_tasks_table(tasks), out / "meta" / "tasks.parquet")

    def vec_feature(n: int, names: list[str] | None) -> dict[str, Any]:
        return {"dtype": "float32", "shape": [n], "names": list(names) if names and len(names) == n else
                [f"dim_{i}" for i in range(n)]}

    features: dict[str, Any] = {
        "observation.state": vec_feature(p, joint_names),
        "action": vec_feature(a, action_names or joint_names),
    }
    for cam in cams:
        h, w, c = shapes[cam]
        features[keys[cam]] = {"dtype": "video", "shape": [h, w, c], "names": ["height", "width", "channels"],
                               "info": {"video.height": h, "video.width": w,
                                        "video.codec": CODEC_NAMES.get(codec, codec), "video.pix_fmt": "yuv420p",
                                        "video.is_depth_map": False, "video.fps": fps, "video.channels": c,
                                        "has_audio": False}}
    for name, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                        ("index", "int64"), ("task_index", "int64")):
        features[name] = {"dtype": dtype, "shape": [1], "names": None}
    info = {
        "codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": len(episodes),
        "total_frames": int(start), "total_tasks": len(tasks), "chunks_size": 1000, "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 500, "fps": fps, "splits": {"train": f"0:{len(episodes)}"},
        "data_path": DATA_PATH, "video_path": VIDEO_PATH, "features": features,
    }
    if repo_id:
        info["repo_id"] = repo_id
    (out / "meta" / "info.json").write_text(json.dumps(info, indent=4), encoding="utf-8")
    stats = {"observation.state": _vector_stats(state), "action": _vector_stats(action)}
    stats.update({keys[cam]: img_stats[cam].result() for cam in cams})
    (out / "meta" / "stats.json").write_text(json.dumps(stats, indent=4), encoding="utf-8")
    return out
