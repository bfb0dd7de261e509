"""Real ROS 2 message definitions and wire format (pure-Python ``rosbags``), and the real sample recording."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from fastwam_ros.perception import (
    ObservationPipeline,
    PerceptionConfig,
    decode_message,
    preprocess_frames,
    stamp_to_seconds,
)

rosbags = pytest.importorskip("rosbags")
from rosbags.rosbag2 import Reader  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

TS = get_typestore(Stores.ROS2_JAZZY)
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
JOINT_STATE = "sensor_msgs/msg/JointState"


def header(sec: int, nanosec: int, frame_id: str = "cam"):
    Time = TS.types["builtin_interfaces/msg/Time"]
    Header = TS.types["std_msgs/msg/Header"]
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def wire(msg, msgtype):
    """Serialise to CDR bytes and back: what a subscriber or a bag reader gets."""
    raw = TS.serialize_cdr(msg, msgtype)
    assert isinstance(raw, (bytes, bytearray, memoryview, np.ndarray)) and len(raw) > 0
    return TS.deserialize_cdr(raw, msgtype)


def ros_image(payload_rows: list[bytes], width: int, encoding: str, pad: int = 0, bigendian: int = 0):
    step = len(payload_rows[0]) + pad
    blob = b"".join(r + b"\x5a" * pad for r in payload_rows)
    return TS.types[IMAGE](
        header=header(1_700_000_000, 123_456_789),
        height=len(payload_rows),
        width=width,
        encoding=encoding,
        is_bigendian=bigendian,
        step=step,
        data=np.frombuffer(blob, np.uint8),
    )


RGB = np.random.default_rng(11).integers(0, 256, (7, 10, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding,channels,pad", [("rgb8", [0, 1, 2], 0), ("rgb8", [0, 1, 2], 6),
                                                   ("bgr8", [2, 1, 0], 2), ("bgra8", [2, 1, 0, 0], 3)])
def test_image_through_cdr(encoding, channels, pad):
    rows = [bytes(RGB[y][:, channels].reshape(-1)) for y in range(RGB.shape[0])]
    back = wire(ros_image(rows, RGB.shape[1], encoding, pad), IMAGE)
    assert back.step == len(rows[0]) + pad
    np.testing.assert_array_equal(decode_message(back), RGB)
    assert stamp_to_seconds(back.header.stamp) == pytest.approx(1_700_000_000.123456789, abs=1e-6)


@pytest.mark.parametrize("bigendian", [0, 1])
def test_mono16_through_cdr(bigendian):
    vals = np.random.default_rng(12).integers(0, 65536, (6, 9)).tolist()
    rows = [b"".join(struct.pack(">H" if bigendian else "<H", v) for v in r) for r in vals]
    back = wire(ros_image(rows, 9, "mono16", pad=3, bigendian=bigendian), IMAGE)
    out = decode_message(back)
    np.testing.assert_array_equal(out[:, :, 1], np.array(vals) // 256)


def test_yuv422_and_bayer_through_cdr():
    pair = np.repeat(RGB[:, :5], 2, axis=1)  # chroma-constant pairs
    # BT.601 video range, computed here
    r, g, b = (pair[..., i].astype(float) for i in range(3))
    y = np.rint(16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255).astype(int)
    u = np.rint(128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255).astype(int)
    v = np.rint(128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255).astype(int)
    rows = [bytes(sum(([u[j, x], y[j, x], v[j, x], y[j, x + 1]] for x in range(0, 10, 2)), [])) for j in range(7)]
    out = decode_message(wire(ros_image(rows, 10, "yuv422", pad=4), IMAGE))
    assert np.abs(out.astype(int) - pair.astype(int)).max() <= 3

    flat = np.zeros((8, 8, 3), np.uint8)
    flat[:] = (200, 120, 40)
    mosaic = np.zeros((8, 8), np.uint8)
    mosaic[0::2, 0::2], mosaic[0::2, 1::2], mosaic[1::2, 0::2], mosaic[1::2, 1::2] = 200, 120, 120, 40  # RGGB
    out = decode_message(wire(ros_image([bytes(r) for r in mosaic], 8, "bayer_rggb8", pad=1), IMAGE))
    np.testing.assert_array_equal(out[2:-2, 2:-2], flat[2:-2, 2:-2])


@pytest.mark.parametrize("fmt,ext", [("rgb8; png compressed bgr8", ".png"), ("png", ".png"),
                                     ("rgb8; jpeg compressed bgr8", ".jpg"), ("jpeg", ".jpg")])
def test_compressed_through_cdr(fmt, ext):
    ok, enc = cv2.imencode(ext, np.ascontiguousarray(RGB[:, :, ::-1]))
    assert ok
    msg = TS.types[COMPRESSED](header=header(5, 0), format=fmt, data=enc.reshape(-1))
    back = wire(msg, COMPRESSED)
    out = decode_message(back)
    assert out.shape == RGB.shape
    if ext == ".png":
        np.testing.assert_array_equal(out, RGB)
    else:  # lossy: the bytes must survive the wire unchanged, so the pixels equal a direct decode of them
        ref = cv2.cvtColor(cv2.imdecode(enc, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(out, ref)


def test_pipeline_with_wire_messages():
    cfg = PerceptionConfig.from_dict({
        "cameras": [{"name": "a", "transport": "raw"}, {"name": "b", "transport": "compressed"}],
        "tile_hw": [8, 8], "joint_names": ["j2", "j1"], "slop_s": 0.01,
    })
    pipe = ObservationPipeline(cfg)
    rows = [bytes(RGB[y].reshape(-1)) for y in range(7)]
    img = wire(ros_image(rows, 10, "rgb8"), IMAGE)
    ok, enc = cv2.imencode(".png", np.ascontiguousarray(RGB[:, :, ::-1]))
    comp = wire(TS.types[COMPRESSED](header=img.header, format="png", data=enc.reshape(-1)), COMPRESSED)
    js = wire(TS.types[JOINT_STATE](header=header(1_700_000_000, 100_000_000), name=["j1", "j2", "j3"],
                                    position=np.array([0.1, 0.2, 0.3]), velocity=np.zeros(0),
                                    effort=np.zeros(0)), JOINT_STATE)
    assert pipe.add_image("a", img) and pipe.add_image("b", comp)  # stamps from the headers
    assert pipe.add_joint_state(stamp_to_seconds(js.header.stamp), js.name, js.position)
    obs = pipe.poll(1_700_000_000.2)
    assert obs is not None
    np.testing.assert_array_equal(obs.proprio, np.array([0.2, 0.1], np.float32))
    np.testing.assert_array_equal(obs.frame, preprocess_frames({"a": RGB, "b": RGB}, cfg))
    assert obs.stamp_s == pytest.approx(1_700_000_000.123456789)


# ---------------------------------------------------------------------------------------------------------------
# the real recording made by ros2 bag record (Jazzy)
# ---------------------------------------------------------------------------------------------------------------
CAM_TOPICS = {
    "head": "/cameras/head/image_raw/compressed",
    "left_wrist": "/cameras/left_wrist/image_raw/compressed",
    "right_wrist": "/cameras/right_wrist/image_raw/compressed",
}


@pytest.fixture(scope="module")
def bag_messages(sample_bag):
    if not sample_bag.is_dir():
        pytest.fail(f"sample recording missing at {sample_bag}")
    out = []
    with Reader(sample_bag) as reader:
        for conn, t_ns, raw in reader.messages():
            if conn.msgtype in (IMAGE, COMPRESSED, JOINT_STATE) and not conn.topic.startswith("/teleop"):
                out.append((conn.topic, t_ns, TS.deserialize_cdr(raw, conn.msgtype)))
    return out


def test_bag_compressed_head_matches_raw_head(bag_messages):
    raw, comp = {}, {}
    for topic, _, msg in bag_messages:
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        if topic == "/cameras/head/image_raw":
            assert msg.encoding == "rgb8"
            raw[key] = decode_message(msg)
        elif topic == CAM_TOPICS["head"]:
            assert msg.format == "rgb8; jpeg compressed bgr8"
            comp[key] = decode_message(msg)
    assert len(raw) == 55 and raw.keys() == comp.keys()
    for key in raw:
        a, b = raw[key].astype(float), comp[key].astype(float)
        assert a.shape == b.shape == (120, 160, 3)
        psnr = 10 * np.log10(255.0**2 / np.mean((a - b) ** 2))
        assert psnr > 30.0, f"frame {key}: PSNR {psnr:.1f} dB"
        assert np.abs(a - b).mean() < 2.0
        # colour order: per-channel means agree (swapped R/B would be off by tens of levels here)
        assert np.abs(a.mean((0, 1)) - b.mean((0, 1))).max() < 2.0


def test_bag_pipeline_produces_synchronised_observations(bag_messages):
    joint_names = None
    for topic, _, msg in bag_messages:
        if topic == "/joint_states":
            joint_names = list(msg.name)
            break
    assert joint_names is not None and len(joint_names) == 14
    cfg = PerceptionConfig.from_dict({
        "cameras": [{"name": n, "topic": t, "transport": "compressed"} for n, t in CAM_TOPICS.items()],
        "layout": "robotwin",
        "joint_names": list(reversed(joint_names)),  # config order, not message order
        "slop_s": 0.005,
        "max_age_s": 0.2,
        "joint_state_tolerance_s": 0.05,
    })
    pipe = ObservationPipeline(cfg)
    topic_to_cam = {t: n for n, t in CAM_TOPICS.items()}
    joints = []  # (stamp, positions) as recorded, for the independent as-of check
    decoded = {}
    observations = []
    for topic, t_ns, msg in bag_messages:
        now_s = t_ns * 1e-9  # the recorder's receive time plays the node clock
        if topic == "/joint_states":
            stamp = stamp_to_seconds(msg.header.stamp)
            joints.append((stamp, dict(zip(msg.name, msg.position))))
            pipe.add_joint_state(stamp, msg.name, msg.position)
        elif topic in topic_to_cam:
            cam = topic_to_cam[topic]
            assert pipe.add_image(cam, msg)
            decoded[(cam, stamp_to_seconds(msg.header.stamp))] = decode_message(msg)
        else:
            continue
        obs = pipe.poll(now_s)
        if obs is not None:
            observations.append(obs)

    stats = pipe.stats()
    assert stats["cameras"]["head"] == {"received": 55, "decoded": 55, "rejected": {}}
    assert stats["rejections"].get("joint_state_gap", 0) <= 1  # the first frame precedes the first joint state
    assert len(observations) >= 53
    stamps = [o.stamp_s for o in observations]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    for obs in observations:
        assert obs.frame.shape == (3, 384, 320) and obs.frame.dtype == np.float32
        assert obs.skew_s == 0.0  # all three cameras of one tick share a header stamp
        assert 0.0 <= obs.age_s < 0.2
        # as-of join, computed independently: newest joint state not later than the frame
        prior = [j for j in joints if j[0] <= obs.stamp_s]
        js_stamp, js = max(prior, key=lambda j: j[0])
        assert obs.joint_stamp_s == js_stamp and obs.stamp_s - js_stamp <= 0.05
        np.testing.assert_array_equal(obs.proprio, np.array([js[n] for n in cfg.joint_names], np.float32))
    # one preprocessing path: the observation frame is preprocess_frames of the decoded images
    last = observations[-1]
    images = {c: decoded[(c, last.camera_stamps_s[c])] for c in CAM_TOPICS}
    np.testing.assert_array_equal(last.frame, preprocess_frames(images, cfg))
