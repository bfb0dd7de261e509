"""Episodes from rosbag2 recordings (MCAP or sqlite3) through the pure-Python ``rosbags`` package (no ROS needed).

A recording is resampled onto a fixed control-rate timeline (``fps``, e.g. 30 Hz) starting when every required
stream has published and ending when the first of them stops. At each tick every stream contributes its latest
message stamped at or before the tick ("as-of" join); a stream whose latest message is older than
``max_gap_s`` at some tick is an error (a dropped camera must not silently freeze the video).

Camera frames stay CDR-encoded in memory and are decoded by the perception package when a sample needs them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .episode import Episode, FrameSequence
from .errors import DatasetError

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
JOINT_STATE = "sensor_msgs/msg/JointState"
JOINT_TRAJECTORY = "trajectory_msgs/msg/JointTrajectory"
STRING = "std_msgs/msg/String"


@dataclass
class RosbagSpec:
    """Which topics of a recording make an episode, and how to resample it.

    cameras:            camera name (as in the perception config) -> topic (Image or CompressedImage).
    joint_names:        order of the state vector (names looked up in each JointState message).
    action_joint_names: order of the action vector (default: ``joint_names``).
    joint_state_topic:  sensor_msgs/JointState with the measured positions (rad / m).
    action_topic:       commanded positions: a JointState or JointTrajectory topic; ``None`` → "next state"
                        fallback (action[t] = state[t+1], the last one repeated).
    trajectory_point:   which point of a JointTrajectory is the command (0 = the first).
    instruction_topic:  std_msgs/String topic with the task instruction, or ``None``.
    instruction:        fixed instruction; overrides the topic when set.
    fps:                control rate of the resampled timeline (Hz).
    stamp:              "header" (message header stamps, falling back to the receive time where a message has no
                        header or a zero stamp) or "receive" (bag receive time).
    max_gap_s:          largest allowed age (s) of a stream's latest message at any tick.
    """

    cameras: dict[str, str]
    joint_names: list[str]
    joint_state_topic: str = "/joint_states"
    action_topic: str | None = "/teleop/joint_command"
    action_joint_names: list[str] | None = None
    trajectory_point: int = 0
    instruction_topic: str | None = "/instruction"
    instruction: str | None = None
    fps: float = 30.0
    stamp: str = "header"
    max_gap_s: float = 0.5
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.cameras:
            raise DatasetError("rosbag spec: at least one camera topic is required")
        if not self.joint_names:
            raise DatasetError("rosbag spec: joint_names is empty")
        if self.stamp not in ("header", "receive"):
            raise DatasetError(f"rosbag spec: stamp must be 'header' or 'receive', got {self.stamp!r}")
        if not self.fps > 0:
            raise DatasetError(f"rosbag spec: fps must be > 0, got {self.fps}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RosbagSpec:
        known = set(cls.__dataclass_fields__) - {"extra"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DatasetError(f"rosbag spec: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**d)


@lru_cache(maxsize=1)
def typestore():
    """The ROS 2 Jazzy type store of ``rosbags`` (standard message definitions)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


def decode_image_cdr(item: tuple[str, bytes]) -> np.ndarray:
    """Decode a CDR-serialised Image / CompressedImage with the perception decoder → uint8 HxWx3 RGB."""
    from .frames import decode_image_message

    msgtype, raw = item
    return decode_image_message(typestore().deserialize_cdr(raw, msgtype))


def find_bags(root: str | Path) -> list[Path]:
    """rosbag2 directories (holding ``metadata.yaml``) at or below ``root``, sorted by path."""
    root = Path(root)
    if (root / "metadata.yaml").is_file():
        return [root]
    bags = sorted(p.parent for p in root.rglob("metadata.yaml"))
    return bags


def _stamp_ns(msg: Any, receive_ns: int, mode: str) -> int:
    if mode == "header":
        header = getattr(msg, "header", None)
        if header is not None:
            ns = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
            if ns > 0:
                return ns
    return int(receive_ns)


class _Stream:
    """Messages of one topic sorted by stamp."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.stamps: list[int] = []
        self.values: list[Any] = []

    def add(self, stamp: int, value: Any) -> None:
        self.stamps.append(stamp)
        self.values.append(value)

    def finish(self) -> tuple[np.ndarray, list[Any]]:
        stamps = np.asarray(self.stamps, dtype=np.int64)
        order = np.argsort(stamps, kind="stable")
        return stamps[order], [self.values[i] for i in order]


def _vector(names: Sequence[str], values: Sequence[float], wanted: Sequence[str], known: dict[str, float],
            topic: str, stamp: int, what: str) -> np.ndarray | None:
    """Merge one message into ``known`` (name -> value); return the full vector once every wanted joint is known."""
    names = list(names)
    values = np.asarray(values, dtype=np.float64)
    if len(values) != len(names):
        raise DatasetError(f"{topic}: message at {stamp} ns has {len(names)} names but {len(values)} {what} values")
    for n, v in zip(names, values):
        if n in wanted and not np.isfinite(v):
            raise DatasetError(f"{topic}: joint {n!r} has non-finite {what} {v} in the message stamped {stamp} ns")
        known[n] = float(v)
    if all(n in known for n in wanted):
        return np.array([known[n] for n in wanted], dtype=np.float64)
    return None


def _asof(stamps: np.ndarray, ticks: np.ndarray, topic: str, max_gap_ns: int, t0: int) -> np.ndarray:
    idx = np.searchsorted(stamps, ticks, side="right") - 1
    if (idx < 0).any():  # cannot happen when ticks start at the latest first stamp
        raise DatasetError(f"{topic}: no message before tick {int(np.argmax(idx < 0))}")
    age = ticks - stamps[idx]
    if (age > max_gap_ns).any():
        k = int(np.argmax(age > max_gap_ns))
        raise DatasetError(
            f"{topic}: no message for {age[k] / 1e9:.3f} s at {(ticks[k] - t0) / 1e9:.3f} s into the episode "
            f"(max_gap_s = {max_gap_ns / 1e9}); the stream dropped out"
        )
    return idx


def read_rosbag_episode(path: str | Path, spec: RosbagSpec, load_images: bool = True) -> Episode:
    """Read one rosbag2 recording into an :class:`Episode` at ``spec.fps``.

    ``load_images=False`` skips the camera payloads (for statistics) but still uses the camera stamps to
    define the timeline, so the state/action rows are identical to those of a full read.
    """
    from rosbags.rosbag2 import Reader

    path = Path(path)
    if not path.exists():
        raise DatasetError(f"recording {path} does not exist")
    store = typestore()
    action_names = list(spec.action_joint_names or spec.joint_names)
    cam_topics = dict(spec.cameras)
    wanted_topics = set(cam_topics.values()) | {spec.joint_state_topic}
    if spec.action_topic:
        wanted_topics.add(spec.action_topic)
    if spec.instruction_topic and spec.instruction is None:
        wanted_topics.add(spec.instruction_topic)

    streams = {t: _Stream(t) for t in wanted_topics}
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # noqa: BLE001 - any reader failure means an unreadable recording
        raise DatasetError(f"cannot open rosbag2 recording {path}: {type(exc).__name__}: {exc}") from exc
    try:
        by_topic = {c.topic: c for c in reader.connections}
        for topic in sorted(wanted_topics):
            if topic not in by_topic:
                raise DatasetError(
                    f"{path}: topic {topic} not in the recording; it has: {sorted(by_topic)}"
                )
        types = {t: by_topic[t].msgtype for t in wanted_topics}
        for cam, topic in cam_topics.items():
            if types[topic] not in IMAGE_TYPES:
                raise DatasetError(f"{path}: camera {cam} topic {topic} is {types[topic]}, expected one of {IMAGE_TYPES}")
        if types[spec.joint_state_topic] != JOINT_STATE:
            raise DatasetError(f"{path}: joint state topic {spec.joint_state_topic} is {types[spec.joint_state_topic]}")
        if spec.action_topic and types[spec.action_topic] not in (JOINT_STATE, JOINT_TRAJECTORY):
            raise DatasetError(
                f"{path}: action topic {spec.action_topic} is {types[spec.action_topic]}, "
                f"expected {JOINT_STATE} or {JOINT_TRAJECTORY}"
            )
        if spec.instruction_topic in streams and types[spec.instruction_topic] != STRING:
            raise DatasetError(f"{path}: instruction topic {spec.instruction_topic} is {types[spec.instruction_topic]}")

        known_state: dict[str, float] = {}
        known_action: dict[str, float] = {}
        conns = [by_topic[t] for t in sorted(wanted_topics)]
        for conn, receive_ns, raw in reader.messages(connections=conns):
            topic = conn.topic
            try:
                msg = store.deserialize_cdr(raw, conn.msgtype)
            except Exception as exc:  # noqa: BLE001
                raise DatasetError(f"{path}: cannot deserialise a {conn.msgtype} message on {topic}: {exc}") from exc
            stamp = _stamp_ns(msg, receive_ns, spec.stamp)
            if topic in cam_topics.values():
                streams[topic].add(stamp, (conn.msgtype, bytes(raw)) if load_images else None)
            elif topic == spec.joint_state_topic:
                vec = _vector(msg.name, msg.position, spec.joint_names, known_state, topic, stamp, "position")
                if vec is not None:
                    streams[topic].add(stamp, vec)
            elif topic == spec.action_topic:
                if conn.msgtype == JOINT_STATE:
                    vec = _vector(msg.name, msg.position, action_names, known_action, topic, stamp, "position")
                else:
                    if not msg.points:
                        continue
                    k = min(spec.trajectory_point, len(msg.points) - 1)
                    vec = _vector(msg.joint_names, msg.points[k].positions, action_names, known_action, topic,
                                  stamp, "position")
                if vec is not None:
                    streams[topic].add(stamp, vec)
            else:  # instruction
                streams[topic].add(stamp, str(msg.data))
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - a truncated / corrupt chunk surfaces here
        raise DatasetError(f"cannot read rosbag2 recording {path}: {type(exc).__name__}: {exc}") from exc
    finally:
        try:
            reader.close()
        except Exception:  # noqa: BLE001
            pass

    # Timeline: from the latest first message to the earliest last message of the required streams.
    required = list(cam_topics.values()) + [spec.joint_state_topic] + ([spec.action_topic] if spec.action_topic else [])
    sorted_streams = {t: streams[t].finish() for t in wanted_topics}
    for t in required:
        if len(sorted_streams[t][0]) == 0:
            hint = ""
            if t == spec.joint_state_topic:
                hint = f" carrying all of {spec.joint_names}"
            elif t == spec.action_topic:
                hint = f" carrying all of {action_names}"
            raise DatasetError(f"{path}: no usable message on {t}{hint}")
    t0 = max(int(sorted_streams[t][0][0]) for t in required)
    t1 = min(int(sorted_streams[t][0][-1]) for t in required)
    period_ns = 1e9 / float(spec.fps)
    if t1 < t0:
        raise DatasetError(f"{path}: the required streams {required} never overlap in time")
    n_ticks = int(np.floor((t1 - t0) / period_ns + 1e-9)) + 1
    ticks = t0 + np.round(np.arange(n_ticks) * period_ns).astype(np.int64)
    max_gap_ns = int(spec.max_gap_s * 1e9)

    js_stamps, js_values = sorted_streams[spec.joint_state_topic]
    state = np.stack(js_values)[_asof(js_stamps, ticks, spec.joint_state_topic, max_gap_ns, t0)]
    if spec.action_topic:
        a_stamps, a_values = sorted_streams[spec.action_topic]
        action = np.stack(a_values)[_asof(a_stamps, ticks, spec.action_topic, max_gap_ns, t0)]
    else:
        action = np.concatenate([state[1:], state[-1:]], axis=0)

    cameras: dict[str, FrameSequence] = {}
    for cam, topic in cam_topics.items():
        c_stamps, c_values = sorted_streams[topic]
        idx = _asof(c_stamps, ticks, topic, max_gap_ns, t0)
        if load_images:
            used = np.unique(idx)
            remap = np.full(len(c_values), -1, dtype=np.int64)
            remap[used] = np.arange(len(used))
            cameras[cam] = FrameSequence(items=[c_values[i] for i in used], index=remap[idx],
                                         decoder=decode_image_cdr, source=f"{path.name}:{topic}")

    instruction = spec.instruction
    if instruction is None:
        if not spec.instruction_topic:
            raise DatasetError(f"{path}: no instruction: set instruction_topic or a fixed instruction")
        i_stamps, i_values = sorted_streams[spec.instruction_topic]
        if not i_values:
            raise DatasetError(f"{path}: no message on the instruction topic {spec.instruction_topic}")
        k = max(int(np.searchsorted(i_stamps, t0, side="right")) - 1, 0)
        instruction = i_values[k]
        if len(set(i_values)) > 1:
            warnings.warn(
                f"{path}: {spec.instruction_topic} carries {len(set(i_values))} different instructions; "
                f"using {instruction!r} (the one in force at the episode start)",
                stacklevel=2,
            )
    instruction = instruction.strip()
    if not instruction:
        raise DatasetError(f"{path}: the instruction is empty")

    return Episode(
        name=path.name,
        fps=float(spec.fps),
        state=state.astype(np.float32),
        action=action.astype(np.float32),
        instruction=instruction,
        cameras=cameras,
        timestamps_s=(ticks - t0) / 1e9,
        meta={"source": str(path), "start_ns": t0, "joint_names": list(spec.joint_names),
              "action_joint_names": action_names},
    )


def read_rosbag_episodes(paths: Iterable[str | Path], spec: RosbagSpec, load_images: bool = True) -> list[Episode]:
    """Every recording under each path (a bag directory or a folder of bags), one episode per recording."""
    episodes = []
    for p in paths:
        bags = find_bags(p)
        if not bags:
            raise DatasetError(f"no rosbag2 recording (metadata.yaml) found at or below {p}")
        episodes.extend(read_rosbag_episode(b, spec, load_images=load_images) for b in bags)
    return episodes
