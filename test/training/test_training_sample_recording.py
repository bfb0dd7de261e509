"""The repository's own sample recording (data/sample_episode): small, the README's topics, regenerable by its
script, and the README's training smoke test config trains on it from a clone (no ../shared needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags")
from rosbags.rosbag2 import Reader  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from fastwam_ros.sim.robot import CAMERAS, JOINT_NAMES  # noqa: E402
from fastwam_ros.sim.scripted import INSTRUCTION  # noqa: E402
from fastwam_ros.training.config import load_train_config  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample_episode"
SMOKE_CONFIG = REPO / "config" / "train_tiny_sample.yaml"
TOPICS = {
    **{f"/cameras/{c}/image_raw/compressed": "sensor_msgs/msg/CompressedImage" for c in CAMERAS},
    "/joint_states": "sensor_msgs/msg/JointState",
    "/teleop/joint_command": "sensor_msgs/msg/JointState",
    "/instruction": "std_msgs/msg/String",
}


def _messages(bag: Path, topics: tuple[str, ...]) -> list[tuple[str, int, object]]:
    ts = get_typestore(Stores.ROS2_JAZZY)
    with Reader(bag) as r:
        conns = [c for c in r.connections if c.topic in topics]
        return [(c.topic, t, ts.deserialize_cdr(raw, c.msgtype)) for c, t, raw in r.messages(connections=conns)]


def test_sample_recording_is_small_and_has_the_readme_topics():
    size = sum(f.stat().st_size for f in SAMPLE.rglob("*") if f.is_file())
    assert size < 3_000_000, f"{size} bytes"
    with Reader(SAMPLE) as r:
        assert {c.topic: c.msgtype for c in r.connections} == TOPICS
        assert "storage_identifier: mcap" in (SAMPLE / "metadata.yaml").read_text()
        assert r.duration > 4e9  # a whole fold (ns)
    (_, _, ins), = _messages(SAMPLE, ("/instruction",))
    assert ins.data == INSTRUCTION
    js = _messages(SAMPLE, ("/joint_states",))
    assert list(js[0][2].name) == list(JOINT_NAMES)
    pos = np.stack([np.asarray(m.position) for _, _, m in js])
    assert np.abs(pos - pos[0]).max() > 0.1 and np.abs(pos[-1] - pos[0]).max() < 0.01  # a fold, back home


def test_script_regenerates_the_committed_recording(tmp_path):
    spec = importlib.util.spec_from_file_location("make_sample_recording", REPO / "scripts" / "make_sample_recording.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--out", str(tmp_path / "again")]) == 0
    topics = ("/joint_states", "/teleop/joint_command")
    new, old = _messages(tmp_path / "again", topics), _messages(SAMPLE, topics)
    assert len(new) == len(old)
    for (ta, sa, ma), (tb, sb, mb) in zip(new, old):
        assert (ta, sa) == (tb, sb)
        np.testing.assert_allclose(ma.position, mb.position, rtol=0, atol=1e-9)
    with Reader(tmp_path / "again") as a, Reader(SAMPLE) as b:
        assert {c.topic: n for c, n in ((c, c.msgcount) for c in a.connections)} == \
            {c.topic: n for c, n in ((c, c.msgcount) for c in b.connections)}


def test_smoke_config_trains_on_the_sample_from_the_repo_root(tmp_path, monkeypatch):
    from fastwam_ros.training.trainer import Trainer

    monkeypatch.chdir(REPO)  # the README runs it from the repository root
    cfg = load_train_config(SMOKE_CONFIG, [f"output_dir={tmp_path / 'run'}", f"data.stats={tmp_path / 'stats.json'}",
                                           "train.max_steps=1", "train.save_every=1", "train.progress=false"])
    assert cfg.data.paths == ["data/sample_episode"]
    trainer = Trainer(cfg)
    ep = trainer.dataset.episodes[0]
    assert ep.instruction == INSTRUCTION and len(ep) > 100  # ~5.5 s at 30 Hz
    assert list(trainer.perception_config.joint_names) == list(JOINT_NAMES)
    hist = trainer.train()
    assert len(hist) == 1 and np.isfinite(hist[0]["loss"])
    assert (tmp_path / "run" / "checkpoints" / "step_00000001" / "policy" / "model.safetensors").is_file()
