"""LeRobot datasets: v2.1 with image features (PNG bytes in parquet), v3.0 with a multi-episode mp4."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fastwam_ros.training.errors import DatasetError
from fastwam_ros.training.lerobot_source import LeRobotSpec, read_lerobot_dataset

FPS = 10
H, W = 16, 24


def frame(ep: int, k: int, cam: int) -> np.ndarray:
    """Flat grey level encoding (episode, frame, camera), far apart so a lossy codec keeps them distinct."""
    return np.full((H, W, 3), 20 + 40 * cam + 12 * k + 3 * ep, dtype=np.uint8)


def _vec(rows: np.ndarray):
    return pa.array(rows.tolist(), type=pa.list_(pa.float32()))


def write_v2(root: Path, lengths=(5, 7)) -> None:
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps({
        "codebase_version": "v2.1", "fps": FPS, "chunks_size": 1000,
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet", "video_path": None,
        "features": {"observation.images.cam_high": {"dtype": "image"}, "observation.state": {"dtype": "float32"},
                     "action": {"dtype": "float32"}},
    }))
    (root / "meta" / "tasks.jsonl").write_text('{"task_index": 0, "task": "pick the cube"}\n'
                                               '{"task_index": 1, "task": "open the drawer"}\n')
    (root / "data" / "chunk-000").mkdir(parents=True)
    for ep, n in enumerate(lengths):
        imgs = [{"bytes": cv2.imencode(".png", frame(ep, k, 0)[:, :, ::-1])[1].tobytes(), "path": None}
                for k in range(n)]
        order = np.arange(n)[::-1]  # rows stored out of order: the reader must sort by frame_index
        t = pa.table({
            "observation.images.cam_high": pa.array([imgs[i] for i in order]),
            "observation.state": _vec(np.stack([np.full(3, 100 * ep + k, np.float32) for k in order])),
            "action": _vec(np.stack([np.full(2, -(100 * ep + k), np.float32) for k in order])),
            "timestamp": pa.array((order / FPS).astype(np.float32)),
            "frame_index": pa.array(order.astype(np.int64)),
            "episode_index": pa.array(np.full(n, ep, np.int64)),
            "task_index": pa.array(np.full(n, ep, np.int64)),
        })
        pq.write_table(t, root / "data" / "chunk-000" / f"episode_{ep:06d}.parquet")


def test_lerobot_v2_image_features(tmp_path):
    write_v2(tmp_path / "ds")
    eps = read_lerobot_dataset(tmp_path / "ds", LeRobotSpec(cameras={"head": "cam_high"}))
    assert [len(e) for e in eps] == [5, 7]
    assert [e.instruction for e in eps] == ["pick the cube", "open the drawer"]
    for ep_i, e in enumerate(eps):
        np.testing.assert_array_equal(e.state[:, 0], 100 * ep_i + np.arange(len(e)))
        np.testing.assert_array_equal(e.action[:, 1], -(100 * ep_i + np.arange(len(e))))
        for k in (0, len(e) - 1):
            np.testing.assert_array_equal(e.cameras["head"].frame(k), frame(ep_i, k, 0))
    only = read_lerobot_dataset(tmp_path / "ds", LeRobotSpec(cameras={}, episodes=[1], instruction="x"),
                                load_images=False)
    assert len(only) == 1 and len(only[0]) == 7 and only[0].instruction == "x"
    with pytest.raises(DatasetError, match="cam_low"):
        read_lerobot_dataset(tmp_path / "ds", LeRobotSpec(cameras={"head": "cam_low"}))


def test_lerobot_v3_video(tmp_path):
    root = tmp_path / "v3"
    lengths = (6, 4)
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps({
        "codebase_version": "v3.0", "fps": FPS, "chunks_size": 1000,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": {"observation.images.top": {"dtype": "video"}, "observation.state": {"dtype": "float32"},
                     "action": {"dtype": "float32"}},
    }))
    pq.write_table(pa.table({"task_index": [0], "task": ["stack the cups"]}), root / "meta" / "tasks.parquet")
    vdir = root / "videos" / "observation.images.top" / "chunk-000"
    vdir.mkdir(parents=True)
    writer = cv2.VideoWriter(str(vdir / "file-000.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    if not writer.isOpened():
        pytest.skip("OpenCV cannot write mp4 here")
    for ep, n in enumerate(lengths):
        for k in range(n):
            writer.write(frame(ep, k, 1)[:, :, ::-1])
    writer.release()
    rows = {"episode_index": [], "frame_index": [], "timestamp": [], "task_index": [], "s": [], "a": []}
    for ep, n in enumerate(lengths):
        for k in range(n):
            rows["episode_index"].append(ep)
            rows["frame_index"].append(k)
            rows["timestamp"].append(k / FPS)
            rows["task_index"].append(0)
            rows["s"].append([float(ep), float(k)])
            rows["a"].append([float(k)])
    (root / "data" / "chunk-000").mkdir(parents=True)
    pq.write_table(pa.table({"episode_index": rows["episode_index"], "frame_index": rows["frame_index"],
                             "timestamp": rows["timestamp"], "task_index": rows["task_index"],
                             "observation.state": rows["s"], "action": rows["a"]}),
                   root / "data" / "chunk-000" / "file-000.parquet")
    pq.write_table(pa.table({
        "episode_index": [0, 1], "length": list(lengths),
        "videos/observation.images.top/chunk_index": [0, 0], "videos/observation.images.top/file_index": [0, 0],
        "videos/observation.images.top/from_timestamp": [0.0, lengths[0] / FPS],
        "videos/observation.images.top/to_timestamp": [lengths[0] / FPS, sum(lengths) / FPS],
    }), root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")

    eps = read_lerobot_dataset(root, LeRobotSpec(cameras={"top": "top"}))
    assert [len(e) for e in eps] == list(lengths) and eps[1].instruction == "stack the cups"
    np.testing.assert_array_equal(eps[1].state[:, 1], np.arange(4))
    for ep, e in enumerate(eps):
        for k in range(len(e)):
            got = e.cameras["top"].frame(k).astype(float).mean()
            assert abs(got - frame(ep, k, 1).mean()) < 5.0, (ep, k, got)  # mp4v is lossy; levels 12 apart
