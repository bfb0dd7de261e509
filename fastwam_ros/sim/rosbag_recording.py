"""Record a scripted episode of the simulated demo robot as a rosbag2 (MCAP) recording, like a teleoperation bag.

Topics (those the README's "Train on your robot's data" section names; no ROS needed, written with the pure-Python
``rosbags`` writer and its ROS 2 Jazzy message definitions):

    /cameras/<camera>/image_raw/compressed   sensor_msgs/CompressedImage (JPEG), camera_rate_hz
    /joint_states                            sensor_msgs/JointState, measured positions (rad; grippers 0..1), sim rate
    /teleop/joint_command                    sensor_msgs/JointState, the scripted position command, command_rate_hz
    /instruction                             std_msgs/String, once at the start

Header stamps are sim time plus ``base_time_s`` (a fixed epoch, so a regenerated recording is identical in
content); receive times are the stamps plus ``transport_delay_s``. Nothing reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .robot import CAMERAS, JOINT_NAMES
from .scripted import INSTRUCTION, make_folder
from .sim import BimanualSim

JOINT_STATE_TOPIC = "/joint_states"
COMMAND_TOPIC = "/teleop/joint_command"
INSTRUCTION_TOPIC = "/instruction"


def camera_topic(camera: str) -> str:
    return f"/cameras/{camera}/image_raw/compressed"


@dataclass
class RecordingSpec:
    """What to record. Rates in Hz, times in seconds; the sim steps at ``sim_rate_hz`` (a multiple of the
    camera and command rates)."""

    seed: int = 0
    sim_rate_hz: float = 60.0
    camera_rate_hz: float = 30.0
    command_rate_hz: float = 30.0
    duration_s: float | None = None  # None: the scripted fold plus ``tail_s``
    tail_s: float = 0.3
    jpeg_quality: int = 85
    base_time_s: int = 1_767_225_600  # 2026-01-01T00:00:00Z
    transport_delay_s: float = 0.002
    instruction: str = INSTRUCTION


def record_episode_bag(sim: BimanualSim, out: str | Path, spec: RecordingSpec = RecordingSpec()) -> dict:
    """Run one scripted fold in ``sim`` and write it to the new rosbag2 directory ``out``; returns a summary
    (message counts per topic, duration_s, final fold fraction)."""
    import cv2
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_JAZZY)
    T = ts.types
    sim.reset(seed=spec.seed)
    folder = make_folder(sim.towel, np.random.default_rng(spec.seed + 100_000))
    dt_s = 1.0 / spec.sim_rate_hz
    cam_every = max(1, round(spec.sim_rate_hz / spec.camera_rate_hz))
    cmd_every = max(1, round(spec.sim_rate_hz / spec.command_rate_hz))
    duration = folder.duration_s + spec.tail_s if spec.duration_s is None else spec.duration_s
    n_steps = int(np.ceil(duration * spec.sim_rate_hz))

    def stamp(t_s: float):
        ns = spec.base_time_s * 1_000_000_000 + round(t_s * 1e9)
        return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000,
                                                                                nanosec=ns % 1_000_000_000),
                                        frame_id=""), ns + round(spec.transport_delay_s * 1e9)

    def joint_state(t_s: float, positions: np.ndarray, velocities: np.ndarray | None = None):
        h, ns = stamp(t_s)
        vel = np.zeros(0) if velocities is None else np.asarray(velocities, np.float64)
        return ns, T["sensor_msgs/msg/JointState"](header=h, name=list(JOINT_NAMES),
                                                   position=np.asarray(positions, np.float64), velocity=vel,
                                                   effort=np.zeros(0))

    counts: dict[str, int] = {}
    out = Path(out)
    with Writer(out, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {INSTRUCTION_TOPIC: writer.add_connection(INSTRUCTION_TOPIC, "std_msgs/msg/String", typestore=ts),
                 JOINT_STATE_TOPIC: writer.add_connection(JOINT_STATE_TOPIC, "sensor_msgs/msg/JointState",
                                                          typestore=ts),
                 COMMAND_TOPIC: writer.add_connection(COMMAND_TOPIC, "sensor_msgs/msg/JointState", typestore=ts)}
        for cam in CAMERAS:
            conns[camera_topic(cam)] = writer.add_connection(camera_topic(cam), "sensor_msgs/msg/CompressedImage",
                                                             typestore=ts)

        def write(topic: str, ns: int, msg, msgtype: str) -> None:
            writer.write(conns[topic], ns, ts.serialize_cdr(msg, msgtype))
            counts[topic] = counts.get(topic, 0) + 1

        _, ns0 = stamp(0.0)
        write(INSTRUCTION_TOPIC, ns0, T["std_msgs/msg/String"](data=spec.instruction), "std_msgs/msg/String")
        cmd = folder.command(0.0)
        for k in range(n_steps + 1):
            t = k * dt_s
            ns, msg = joint_state(t, sim.joint_positions(), sim.joint_velocities())
            write(JOINT_STATE_TOPIC, ns, msg, "sensor_msgs/msg/JointState")
            if k % cam_every == 0:
                for cam in CAMERAS:
                    rgb = sim.render(cam)
                    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]),
                                           [cv2.IMWRITE_JPEG_QUALITY, int(spec.jpeg_quality)])
                    if not ok:
                        raise RuntimeError(f"JPEG encoding of camera {cam} failed")
                    h, ns = stamp(t)
                    write(camera_topic(cam), ns, T["sensor_msgs/msg/CompressedImage"](
                        header=h, format="rgb8; jpeg compressed bgr8", data=buf.reshape(-1)),
                        "sensor_msgs/msg/CompressedImage")
            if k % cmd_every == 0:
                cmd = folder.command(t + cmd_every * dt_s)  # the pose the script wants by the next command
                ns, msg = joint_state(t, cmd)
                write(COMMAND_TOPIC, ns, msg, "sensor_msgs/msg/JointState")
            if k < n_steps:
                sim.step(cmd, dt_s)
    return {"messages": counts, "duration_s": n_steps * dt_s, "final_fold_fraction": float(sim.fold_fraction())}


__all__ = ["COMMAND_TOPIC", "INSTRUCTION_TOPIC", "JOINT_STATE_TOPIC", "RecordingSpec", "camera_topic",
           "record_episode_bag"]
