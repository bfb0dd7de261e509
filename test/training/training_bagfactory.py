"""Builds small synthetic rosbag2 recordings (with rosbags' Writer) whose contents are known tick by tick.

Timeline (seconds from BASE_S):
* cameras (head, left_wrist: CompressedImage PNG; right_wrist: raw rgb8 Image) at 15 Hz from 0.02 s, frame k at
  0.02 + k/15, ``num_frames`` frames; frame k of camera c is :func:`camera_frame` (c, k);
* /joint_states at 50 Hz from 0.0 s, message j at j/50 with position[d] = :func:`state_value` (j, d), the names
  written in reverse order (the reader must map by name);
* /teleop/joint_command at 30 Hz from 0.001 s, message i at 0.001 + i/30, position[d] = :func:`command_value`;
* /instruction once at 0.0 s.
Header stamps are the times above; the bag receive time is 3 ms later.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

BASE_S = 1_700_000_000
JOINTS = [f"left_joint{i}" for i in range(1, 7)] + ["left_gripper"] + [f"right_joint{i}" for i in range(1, 7)] + [
    "right_gripper"
]
CAMERAS = {
    "head": "/cameras/head/image_raw/compressed",
    "left_wrist": "/cameras/left_wrist/image_raw/compressed",
    "right_wrist": "/cameras/right_wrist/image_raw",
}
INSTRUCTION = "fold the towel in half"
CAM_H, CAM_W = 24, 32


def camera_frame(cam_index: int, k: int) -> np.ndarray:
    """uint8 [24, 32, 3]: a gradient whose level encodes (camera, frame)."""
    yy, xx = np.mgrid[0:CAM_H, 0:CAM_W]
    base = (7 * k + 60 * cam_index) % 200
    img = np.stack([base + yy, base + xx, np.full_like(xx, 30 * cam_index + k % 7)], axis=-1)
    return img.astype(np.uint8)


def state_value(j: int, d: int) -> float:
    return 0.01 * j + d


def command_value(i: int, d: int) -> float:
    return -0.01 * i - 0.5 * d


def _ns(t_s: float) -> int:
    return int(BASE_S * 1_000_000_000 + round(t_s * 1e9))


def write_bag(path: Path, num_frames: int = 23, storage: str = "mcap", nan_at: int | None = None,
              drop_head_frames: range = range(0), trajectory_commands: bool = False,
              duration_s: float = 1.6, instruction: str | None = INSTRUCTION) -> Path:
    """Write the recording described in the module doc to ``path`` (a new directory)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_JAZZY)
    T = ts.types
    Time = T["builtin_interfaces/msg/Time"]
    Header = T["std_msgs/msg/Header"]

    def header(t_s: float):
        ns = _ns(t_s)
        return Header(stamp=Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000), frame_id="")

    msgs: list[tuple[int, str, str, object]] = []  # (receive ns, topic, type, msg)
    for ci, (cam, topic) in enumerate(CAMERAS.items()):
        for k in range(num_frames):
            if cam == "head" and k in drop_head_frames:
                continue  # a hole in the head stream
            t = 0.02 + k / 15
            img = camera_frame(ci, k)
            if topic.endswith("compressed"):
                ok, buf = cv2.imencode(".png", img[:, :, ::-1])
                assert ok
                msg = T["sensor_msgs/msg/CompressedImage"](header=header(t), format="rgb8; png compressed bgr8",
                                                           data=buf.reshape(-1))
                mt = "sensor_msgs/msg/CompressedImage"
            else:
                msg = T["sensor_msgs/msg/Image"](header=header(t), height=CAM_H, width=CAM_W, encoding="rgb8",
                                                 is_bigendian=0, step=CAM_W * 3, data=img.reshape(-1))
                mt = "sensor_msgs/msg/Image"
            msgs.append((_ns(t) + 3_000_000, topic, mt, msg))
    names_rev = JOINTS[::-1]
    j = 0
    while j / 50 <= duration_s:
        pos = np.array([state_value(j, JOINTS.index(n)) for n in names_rev], dtype=np.float64)
        if nan_at is not None and j == nan_at:
            pos[2] = np.nan
        msgs.append((_ns(j / 50) + 3_000_000, "/joint_states", "sensor_msgs/msg/JointState",
                     T["sensor_msgs/msg/JointState"](header=header(j / 50), name=names_rev, position=pos,
                                                     velocity=np.zeros(0), effort=np.zeros(0))))
        j += 1
    i = 0
    while 0.001 + i / 30 <= duration_s:
        t = 0.001 + i / 30
        pos = np.array([command_value(i, d) for d in range(len(JOINTS))], dtype=np.float64)
        if trajectory_commands:
            Pt = T["trajectory_msgs/msg/JointTrajectoryPoint"]
            Dur = T["builtin_interfaces/msg/Duration"]
            pts = [Pt(positions=pos, velocities=np.zeros(0), accelerations=np.zeros(0), effort=np.zeros(0),
                      time_from_start=Dur(sec=0, nanosec=0)),
                   Pt(positions=pos + 100.0, velocities=np.zeros(0), accelerations=np.zeros(0), effort=np.zeros(0),
                      time_from_start=Dur(sec=0, nanosec=100_000_000))]
            msg = T["trajectory_msgs/msg/JointTrajectory"](header=header(t), joint_names=list(JOINTS), points=pts)
            msgs.append((_ns(t) + 3_000_000, "/teleop/joint_command", "trajectory_msgs/msg/JointTrajectory", msg))
        else:
            msgs.append((_ns(t) + 3_000_000, "/teleop/joint_command", "sensor_msgs/msg/JointState",
                         T["sensor_msgs/msg/JointState"](header=header(t), name=list(JOINTS), position=pos,
                                                         velocity=np.zeros(0), effort=np.zeros(0))))
        i += 1
    if instruction is not None:
        msgs.append((_ns(0.0), "/instruction", "std_msgs/msg/String", T["std_msgs/msg/String"](data=instruction)))
    msgs.sort(key=lambda m: m[0])

    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conns = {}
        for _, topic, mt, _ in msgs:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, mt, typestore=ts)
        for ns, topic, mt, msg in msgs:
            writer.write(conns[topic], ns, ts.serialize_cdr(msg, mt))
    return path


def perception_dict(top_hw=(32, 96), bottom_hw=(32, 48)) -> dict:
    """Perception config for these cameras: RoboTwin layout at the tiny model's 64 x 96 (H x W)."""
    return {
        "cameras": [{"name": c, "topic": t, "transport": "compressed" if t.endswith("compressed") else "raw"}
                    for c, t in CAMERAS.items()],
        "layout": "robotwin",
        "top_hw": list(top_hw),
        "bottom_tile_hw": list(bottom_hw),
        "joint_names": list(JOINTS),
    }


def write_recordings(root: Path, second_instruction: str | None = INSTRUCTION) -> Path:
    """A folder of two recordings: ``ep_a`` (MCAP, 23 camera frames -> 45 ticks) and ``ep_b`` (sqlite3, 14 -> 27)."""
    write_bag(root / "ep_a", num_frames=23)
    write_bag(root / "ep_b", num_frames=14, storage="sqlite3", instruction=second_instruction)
    return root


def write_robot_yaml(path: Path) -> Path:
    """A robot YAML holding :func:`perception_dict` under ``perception:``."""
    import yaml

    path.write_text(yaml.safe_dump({"perception": perception_dict()}))
    return path
