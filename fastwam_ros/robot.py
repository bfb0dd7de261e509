"""The robot file: every fact about one robot, written once (``config/robots/<name>.yaml``).

``load_robot(path_or_name)`` reads and validates it into a :class:`RobotSpec`; ``spec.perception_config()`` and
``spec.controller_config()`` build the cores' existing :class:`~fastwam_ros.perception.PerceptionConfig` and
:class:`~fastwam_ros.control.ControllerConfig`. The nodes (``robot_file`` parameter, ``robot:=`` launch
argument), the simulator, the ROS-free demo, training (``data.perception: <robot file>``) and the checkpoint
contract (:mod:`fastwam_ros.contract`) all read robots through this one loader. Shape::

    robot: demo_aloha                         # name
    cameras:                                  # order = tiling order = the checkpoint's camera order
      - {name: head, topic: cameras/head/image_raw, transport: raw, qos: sensor_data, transform: none,
         pre_resize_hw: null}
    tiling: {layout: robotwin, top_hw: [64, 128], bottom_tile_hw: [32, 64], output_hw: [96, 128]}
                                              # + resize: training | deploy, fit: stretch | crop (PerceptionConfig)
    sync: {slop_s: 0.02, max_age_s: 0.5, joint_state_tolerance_s: 0.05}   # PerceptionConfig field names
    joints: [left_waist, ..., right_gripper]  # proprio and action column order
    state: null                               # optional: proprio columns when they are not `joints` (LIBERO:
                                              #   end-effector pose + finger positions, 8, vs 7 action columns)
    joint_states: {topic: joint_states, qos: sensor_data}
    groups:                                   # what the controller commands, one command output each
      - name: left_arm
        kind: arm                             # arm | gripper
        joints: [left_waist, ...]
        limits: {lower: [...], upper: [...], max_velocity: 2.0, max_acceleration: 12.0}  # scalar or per joint
        command: {topic: left_arm_controller/joint_trajectory, output: trajectory}  # trajectory|position|
                                              #   joint_state (controller_node) | rows (row_executor_node: one
                                              #   chunk row per step; groups sharing a topic share one message)
    control: {control_rate_hz: 60.0, chunk_step_period_s: 0.0333333333, blend_window_s: 0.1}  # ControllerConfig
    urdf: sim                                 # optional: sim (the built-in simulator's URDF) | a file path
    sim: {camera_hw: {head: [64, 128]}}       # optional: simulator settings (fastwam_ros.sim.SimConfig)

A limit absent from the file comes from the URDF (``urdf:`` here, or the robot_description the controller
receives); where both give one, the tighter wins. Units: seconds, hertz, pixels ([H, W]), rad / m.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

__all__ = ["CameraSpec", "GroupSpec", "RobotSpec", "load_robot", "resolve_robot_path", "ROBOTS_DIR"]

ROBOTS_DIR = ("config", "robots")
QOS_CHOICES = ("sensor_data", "reliable", "best_effort")
OUTPUT_KINDS = ("trajectory", "position", "joint_state", "rows")
TILING_KEYS = ("layout", "tile_hw", "top_hw", "bottom_tile_hw", "grid_rows", "grid_cols", "output_hw", "resize", "fit")
LIMIT_KEYS = ("lower", "upper", "max_velocity", "max_acceleration", "max_jerk")
GROUP_WATCHDOG_KEYS = ("tracking_error_rad", "tracking_error_s")  # per-group overrides of ControllerConfig's
TOP_KEYS = ("robot", "cameras", "tiling", "sync", "joints", "state", "joint_states", "groups", "control", "urdf",
            "sim")
CAMERA_KEYS = ("name", "topic", "transport", "qos", "transform", "pre_resize_hw")
DEFAULT_STEP_PERIOD_S = 1.0 / 30.0  # the one default of the chunk step period (the training data's period)


def _sync_keys() -> tuple[str, ...]:
    from dataclasses import fields

    from .perception.config import PerceptionConfig

    skip = {"cameras", "joint_names", *TILING_KEYS}
    return tuple(f.name for f in fields(PerceptionConfig) if not f.name.startswith("_") and f.name not in skip)


def _control_keys() -> tuple[str, ...]:
    from dataclasses import fields

    from .control.config import ControllerConfig

    return tuple(f.name for f in fields(ControllerConfig) if f.name not in ("groups", "limits"))


@dataclass(frozen=True)
class CameraSpec:
    """One camera: what the perception core needs plus its ROS subscription (topic, QoS)."""

    name: str
    topic: str
    transport: str = "raw"
    qos: str = "sensor_data"
    transform: str = "none"
    pre_resize_hw: tuple[int, int] | None = None

    def perception_dict(self) -> dict[str, Any]:
        return {"name": self.name, "topic": self.topic, "transport": self.transport, "transform": self.transform,
                "pre_resize_hw": None if self.pre_resize_hw is None else list(self.pre_resize_hw)}


@dataclass(frozen=True)
class GroupSpec:
    """One commanded group (an arm or a gripper): joints, limits (scalar or per joint), command output."""

    name: str
    kind: str
    joints: tuple[str, ...]
    limits: Mapping[str, Any] = field(default_factory=dict)
    command_topic: str = ""
    output: str = "trajectory"
    watchdog: Mapping[str, Any] = field(default_factory=dict)  # tracking_error_rad / tracking_error_s (JointGroup)


@dataclass(frozen=True)
class RobotSpec:
    """A validated robot file. Build the cores' configs with :meth:`perception_config` / :meth:`controller_config`."""

    name: str
    cameras: tuple[CameraSpec, ...]
    tiling: Mapping[str, Any]
    sync: Mapping[str, Any]
    joints: tuple[str, ...]
    groups: tuple[GroupSpec, ...]
    control: Mapping[str, Any]
    chunk_step_period_s: float = DEFAULT_STEP_PERIOD_S
    joint_states_topic: str = "joint_states"
    joint_states_qos: str = "sensor_data"
    urdf: str | None = None
    sim: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<dict>"
    state: tuple[str, ...] = ()  # proprio columns when they differ from `joints` (empty: the same)

    # -- views ---------------------------------------------------------------------------------------------
    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cameras)

    @property
    def joint_names(self) -> tuple[str, ...]:
        """Action column order (the checkpoint's); also the proprio order unless the file gives ``state``."""
        return self.joints

    @property
    def state_names(self) -> tuple[str, ...]:
        """Proprio column order (the JointState names the observation reads): ``state``, else ``joints``."""
        return self.state or self.joints

    @property
    def output_mode(self) -> str:
        """The command output kind shared by every group."""
        return self.groups[0].output

    def camera(self, name: str) -> CameraSpec:
        for c in self.cameras:
            if c.name == name:
                return c
        raise KeyError(f"robot {self.name}: no camera {name!r}; cameras: {list(self.camera_names)}")

    def group(self, name: str) -> GroupSpec:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(f"robot {self.name}: no group {name!r}; groups: {[g.name for g in self.groups]}")

    # -- the cores' configs --------------------------------------------------------------------------------
    def perception_dict(self) -> dict[str, Any]:
        """The mapping ``PerceptionConfig.from_dict`` takes."""
        d: dict[str, Any] = {"cameras": [c.perception_dict() for c in self.cameras],
                             "joint_names": list(self.state_names)}
        d.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in self.tiling.items()})
        d.update(self.sync)
        return d

    def perception_config(self):
        """The perception core's :class:`PerceptionConfig` (cameras, tiling, sync tolerances, joint order)."""
        from .perception.config import PerceptionConfig

        try:
            return PerceptionConfig.from_dict(self.perception_dict())
        except ConfigError as exc:
            raise ConfigError(f"{self.source}: {exc}") from None

    def controller_dict(self) -> dict[str, Any]:
        """The mapping ``ControllerConfig.from_dict`` takes (per-joint limit lists become ``joint_limits``)."""
        groups, joint_limits = [], {}
        for g in self.groups:
            scalar = {k: v for k, v in g.limits.items() if not isinstance(v, (list, tuple))}
            entry: dict[str, Any] = {"name": g.name, "joints": list(g.joints), "kind": g.kind, **g.watchdog}
            if scalar:
                entry["limits"] = scalar
            groups.append(entry)
            for k, v in g.limits.items():
                if isinstance(v, (list, tuple)):
                    for j, x in zip(g.joints, v):
                        joint_limits.setdefault(j, {})[k] = x
        d: dict[str, Any] = {"groups": groups, **dict(self.control)}
        if joint_limits:
            d["joint_limits"] = joint_limits
        return d

    def controller_config(self, urdf_xml: str | None = None):
        """The controller core's :class:`ControllerConfig`. ``urdf_xml`` (a robot_description) narrows the
        limits; default: the file's ``urdf:`` (None when it has none)."""
        from .control.config import ControllerConfig

        if urdf_xml is None:
            urdf_xml = self.urdf_xml()
        try:
            return ControllerConfig.from_dict(self.controller_dict(), urdf_xml=urdf_xml)
        except ConfigError as exc:
            raise ConfigError(f"{self.source}: {exc}") from None

    def urdf_xml(self) -> str | None:
        """The URDF named by ``urdf:`` (``sim`` = the built-in simulator's), or None."""
        if not self.urdf:
            return None
        if self.urdf == "sim":
            from .sim.robot import urdf_string

            return urdf_string()
        p = Path(self.urdf).expanduser()
        if not p.is_absolute() and self.source not in ("<dict>", ""):
            p = Path(self.source).parent / p
        if not p.is_file():
            raise ConfigError("urdf", f"{p} not found (robot file {self.source})")
        return p.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------------ loading
def resolve_robot_path(path_or_name: str | Path) -> Path:
    """A robot file path; a bare name (``demo_aloha``) resolves to ``config/robots/<name>.yaml`` in the
    package's share directories (the source checkout, ``share/fastwam_ros``, the ament index)."""
    s = str(path_or_name).strip()
    if not s:
        raise ConfigError("robot_file", "empty: give a robot file path or a name under config/robots")
    p = Path(s).expanduser()
    if p.is_file():
        return p
    if "/" not in s and "\\" not in s:
        from .resources import find_share_file

        name = s if s.endswith((".yaml", ".yml")) else f"{s}.yaml"
        try:
            return find_share_file(*ROBOTS_DIR, name)
        except FileNotFoundError as exc:
            raise ConfigError("robot_file", f"no robot file {s!r}: {exc}") from None
    raise ConfigError("robot_file", f"{p} not found")


def load_robot(path_or_name: str | Path | Mapping[str, Any] | RobotSpec) -> RobotSpec:
    """Read and validate a robot file (path, bare name, or an already-parsed mapping)."""
    if isinstance(path_or_name, RobotSpec):
        return path_or_name
    if isinstance(path_or_name, Mapping):
        return robot_from_dict(path_or_name)
    path = resolve_robot_path(path_or_name)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    return robot_from_dict(doc, source=str(path))


def _mapping(v: Any, where: str) -> Mapping[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise ConfigError(where, f"must be a mapping, got {type(v).__name__}")
    return v


def _names(v: Any, where: str) -> tuple[str, ...]:
    if not isinstance(v, (list, tuple)) or not v or not all(isinstance(n, str) and n.strip() for n in v):
        raise ConfigError(where, f"must be a non-empty list of names, got {v!r}")
    dup = sorted({n for n in v if list(v).count(n) > 1})
    if dup:
        raise ConfigError(where, f"duplicate names {dup}")
    return tuple(v)


def _topic(v: Any, where: str) -> str:
    if not isinstance(v, str) or not v or any(c.isspace() for c in v) or "//" in v:
        raise ConfigError(where, f"must be a ROS topic name, got {v!r}")
    return v


def _choice(v: Any, choices: tuple[str, ...], where: str) -> str:
    if v not in choices:
        raise ConfigError(where, f"must be one of {list(choices)}, got {v!r}")
    return v


def _unknown(d: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    bad = sorted(str(k) for k in d if k not in known)
    if bad:
        raise ConfigError(f"{where}.{bad[0]}" if where else bad[0], f"unknown key (known: {sorted(known)})")


def _camera(d: Any, where: str) -> CameraSpec:
    d = _mapping(d, where)
    _unknown(d, CAMERA_KEYS, where)
    name = d.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}.name", f"must be a non-empty string, got {name!r}")
    pre = d.get("pre_resize_hw")
    if pre is not None and (not isinstance(pre, (list, tuple)) or len(pre) != 2):
        raise ConfigError(f"{where}.pre_resize_hw", f"must be [H, W] or null, got {pre!r}")
    return CameraSpec(
        name=name, topic=_topic(d.get("topic", f"cameras/{name}/image_raw"), f"{where}.topic"),
        transport=d.get("transport", "raw"), qos=_choice(d.get("qos", "sensor_data"), QOS_CHOICES, f"{where}.qos"),
        transform=d.get("transform") or "none", pre_resize_hw=None if pre is None else (int(pre[0]), int(pre[1])),
    )


def _group(d: Any, where: str, joints: tuple[str, ...]) -> GroupSpec:
    d = _mapping(d, where)
    _unknown(d, ("name", "kind", "joints", "limits", "command", *GROUP_WATCHDOG_KEYS), where)
    name = d.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}.name", f"must be a non-empty string, got {name!r}")
    gj = _names(d.get("joints"), f"{where}.joints")
    for j in gj:
        if j not in joints:
            raise ConfigError(f"{where}.joints", f"joint {j!r} is not in `joints` {list(joints)}")
    limits = dict(_mapping(d.get("limits"), f"{where}.limits"))
    _unknown(limits, LIMIT_KEYS, f"{where}.limits")
    for k, v in limits.items():
        vals = v if isinstance(v, (list, tuple)) else [v]
        if isinstance(v, (list, tuple)) and len(v) != len(gj):
            raise ConfigError(f"{where}.limits.{k}", f"needs one value per joint ({len(gj)}), got {len(v)}")
        for x in vals:
            if x is not None and (isinstance(x, bool) or not isinstance(x, (int, float)) or math.isnan(x)):
                raise ConfigError(f"{where}.limits.{k}", f"must be a number or a list of numbers, got {v!r}")
        limits[k] = [None if x is None else float(x) for x in v] if isinstance(v, (list, tuple)) else v
    cmd = _mapping(d.get("command"), f"{where}.command")
    _unknown(cmd, ("topic", "output"), f"{where}.command")
    return GroupSpec(
        name=name, kind=_choice(d.get("kind", "arm"), ("arm", "gripper"), f"{where}.kind"), joints=gj,
        limits=limits, command_topic=_topic(cmd.get("topic", f"{name}_controller/joint_trajectory"),
                                            f"{where}.command.topic"),
        output=_choice(cmd.get("output", "trajectory"), OUTPUT_KINDS, f"{where}.command.output"),
        watchdog={k: d[k] for k in GROUP_WATCHDOG_KEYS if k in d},  # validated by ControllerConfig
    )


def robot_from_dict(doc: Any, source: str = "<dict>") -> RobotSpec:
    """Validate a parsed robot file; errors name the file and the field. The cores' configs are built once
    here too, so every cross-field error (tiling sizes, limits) surfaces at load time."""
    try:
        doc = _mapping(doc, "<root>")
        _unknown(doc, TOP_KEYS, "")
        name = doc.get("robot")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("robot", f"must be the robot's name, got {name!r}")
        cams_in = doc.get("cameras")
        if not isinstance(cams_in, (list, tuple)) or not cams_in:
            raise ConfigError("cameras", "must be a non-empty list (order = tiling order)")
        cameras = tuple(_camera(c, f"cameras[{i}]") for i, c in enumerate(cams_in))
        _names([c.name for c in cameras], "cameras")
        tiling = dict(_mapping(doc.get("tiling"), "tiling"))
        _unknown(tiling, TILING_KEYS, "tiling")
        sync = dict(_mapping(doc.get("sync"), "sync"))
        _unknown(sync, _sync_keys(), "sync")
        joints = _names(doc.get("joints"), "joints")
        state = () if doc.get("state") is None else _names(doc.get("state"), "state")
        js = _mapping(doc.get("joint_states"), "joint_states")
        _unknown(js, ("topic", "qos"), "joint_states")
        groups_in = doc.get("groups")
        if not isinstance(groups_in, (list, tuple)) or not groups_in:
            raise ConfigError("groups", "must be a non-empty list of {name, kind, joints, limits, command}")
        groups = tuple(_group(g, f"groups[{i}]", joints) for i, g in enumerate(groups_in))
        _names([g.name for g in groups], "groups")
        outputs = sorted({g.output for g in groups})
        if len(outputs) > 1:
            raise ConfigError("groups", f"every group must use the same command output, got {outputs}")
        control = dict(_mapping(doc.get("control"), "control"))
        _unknown(control, (*_control_keys(), "chunk_step_period_s"), "control")
        if control.get("action_space") == "ee_delta" and outputs != ["rows"]:
            raise ConfigError("control.action_space", "ee_delta actions must not be interpolated or held: they are "
                                                      "executed row by row (set every group's command.output: rows)")
        step = control.pop("chunk_step_period_s", DEFAULT_STEP_PERIOD_S)
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not (0 < step < 10):
            raise ConfigError("control.chunk_step_period_s", f"must be a period in (0, 10) s, got {step!r}")
        urdf = doc.get("urdf")
        if urdf is not None and not isinstance(urdf, str):
            raise ConfigError("urdf", f"must be `sim`, a file path or null, got {urdf!r}")
        spec = RobotSpec(
            name=name, cameras=cameras, tiling=tiling, sync=sync, joints=joints, groups=groups, control=control,
            chunk_step_period_s=float(step), joint_states_topic=_topic(js.get("topic", "joint_states"),
                                                                         "joint_states.topic"),
            joint_states_qos=_choice(js.get("qos", "sensor_data"), QOS_CHOICES, "joint_states.qos"),
            urdf=urdf, sim=dict(_mapping(doc.get("sim"), "sim")), source=source, state=state,
        )
    except ConfigError as exc:
        raise ConfigError(f"robot file {source}: {exc}") from None
    spec.perception_config()
    spec.controller_config()
    return spec
