"""msg/ActionChunk.msg is a valid ROS 2 message definition: it parses with the pure-Python
rosbags type system (real std_msgs/Header from the Jazzy store) and round-trips through CDR."""

from __future__ import annotations

import numpy as np
import pytest
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from conftest import REPO_ROOT

MSG_NAME = "fastwam_ros/msg/ActionChunk"


@pytest.fixture(scope="module")
def store():
    ts = get_typestore(Stores.ROS2_JAZZY)
    text = (REPO_ROOT / "msg" / "ActionChunk.msg").read_text()
    ts.register(get_types_from_msg(text, MSG_NAME))
    return ts


def test_fields_required_by_the_design(store):
    fields = {name for name, _ in store.fielddefs[MSG_NAME][1]}
    required = {
        "header", "chunk_id", "step_period_s", "joint_names", "num_steps", "positions",
        "velocities", "committed_steps", "latency_s", "inference_s", "model_id", "rtc_mode", "guided_steps",
    }
    assert required <= fields, required - fields


def test_cdr_round_trip(store):
    Chunk = store.types[MSG_NAME]
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    rng = np.random.default_rng(0)
    h, j = 32, 14
    pos = rng.normal(size=(h, j))
    msg = Chunk(
        header=Header(stamp=Time(sec=12, nanosec=345), frame_id="base"),
        chunk_id=7,
        step_period_s=1 / 30,
        joint_names=[f"j{i}" for i in range(j)],
        num_steps=h,
        positions=pos.ravel(),
        velocities=np.zeros(0),
        committed_steps=5,
        latency_s=0.021,
        inference_s=0.015,
        model_id="fastwam:demo",
        rtc_mode="guided",
        guided_steps=17,
    )
    raw = store.serialize_cdr(msg, MSG_NAME)
    back = store.deserialize_cdr(raw, MSG_NAME)
    assert back.chunk_id == 7 and back.committed_steps == 5 and back.num_steps == h
    assert back.header.stamp.sec == 12 and back.header.stamp.nanosec == 345
    assert list(back.joint_names) == msg.joint_names
    np.testing.assert_array_equal(np.asarray(back.positions).reshape(h, j), pos)
    assert back.model_id == "fastwam:demo"
    assert back.rtc_mode == "guided" and back.guided_steps == 17
