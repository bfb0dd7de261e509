"""The parameter schemas of the three nodes (policy_node, controller_node, sim_node).

One source of truth: the shells declare exactly these parameters (names, types, defaults,
descriptions, ranges), ``config/towel_fold.yaml`` sets them, the README tables are generated from
them (:func:`markdown_table`), and the ROS-free cores read the same YAML through
:func:`fastwam_ros.runtime.params.load_resolved`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .params import ParamSpec, Schema

QOS_CHOICES = ("sensor_data", "reliable", "best_effort")
TRIGGER_MODES = ("continuous", "on_request", "rate")
OUTPUT_MODES = ("trajectory", "position", "joint_state")
SEED_POLICIES = ("fixed", "increment", "random")
DTYPES = ("bfloat16", "float16", "float32")
VARIANTS = ("fastwam", "joint", "idm")
TILING_LAYOUTS = ("robotwin", "horizontal", "grid")

TOWEL_PROMPT = "Fold the towel in half: grasp the two near corners and place them on the far corners."
DEFAULT_JOINTS = (
    [f"left_joint{i}" for i in range(1, 7)] + ["left_gripper"]
    + [f"right_joint{i}" for i in range(1, 7)] + ["right_gripper"]
)
ARM_JOINTS_TEMPLATE = [f"{{arm}}_joint{i}" for i in range(1, 7)] + ["{arm}_gripper"]


def _multiple_of(n: int):
    def check(v):
        return None if v % n == 0 else f"must be a multiple of {n} (VAE/patch stride), got {v}"

    return check


def _unique(v):
    dup = sorted({x for x in v if list(v).count(x) > 1})
    return f"duplicate entries {dup}" if dup else None


def _topic(v: str):
    if not v:
        return "empty topic name"
    if any(c.isspace() for c in v) or "//" in v:
        return f"{v!r} is not a valid ROS topic name"
    return None


def _arms_check(list_param: str, prefix: str, joints_param: str, joints_key: str):
    """Each group's joints are in ``joint_names``, and no joint is in two groups."""

    def check(p: Mapping[str, Any]) -> list[str]:
        errs = []
        names = list(p[joints_param])
        owner: dict[str, str] = {}
        for arm in p[list_param]:
            for j in p.get(f"{prefix}.{arm}.{joints_key}", []):
                if j not in names:
                    errs.append(f"{prefix}.{arm}.{joints_key}: joint {j!r} is not in {joints_param}")
                if j in owner:
                    errs.append(f"{prefix}.{arm}.{joints_key}: joint {j!r} is already in {owner[j]!r}")
                owner[j] = arm
        return errs

    return check


# ---------------------------------------------------------------------------------------------------
# policy_node
# ---------------------------------------------------------------------------------------------------

POLICY_SCHEMA = Schema(
    node="policy_node",
    specs=[
        # cameras
        ParamSpec("camera_names", "string_array", ["head", "left_wrist", "right_wrist"],
                  "Camera names, in the order the tiling layout expects (robotwin: head, left wrist, right wrist).",
                  min_len=1, read_only=True, check=_unique),
        ParamSpec("cameras.{camera}.topic", "string", "cameras/{camera}/image_raw",
                  "Image topic of camera {camera} (sensor_msgs/Image). With transport=compressed the node "
                  "subscribes to <topic>/compressed (sensor_msgs/CompressedImage).",
                  over="camera_names", read_only=True, check=_topic),
        ParamSpec("cameras.{camera}.transport", "string", "raw", "Transport of camera {camera}.",
                  choices=("raw", "compressed"), over="camera_names", read_only=True),
        ParamSpec("cameras.{camera}.qos", "string", "sensor_data",
                  "Subscription QoS of camera {camera}: sensor_data (best effort, depth 5; matches any "
                  "publisher), reliable (depth 5), best_effort (depth 1).",
                  choices=QOS_CHOICES, over="camera_names", read_only=True),
        ParamSpec("cameras.{camera}.transform", "string", "none",
                  "Image transform of camera {camera} before tiling (e.g. rot180 for a mounted-upside-down camera).",
                  choices=("none", "rot90", "rot180", "rot270", "flip_h", "flip_v"), over="camera_names", read_only=True),
        ParamSpec("cameras.{camera}.pre_resize_hw", "int_array", [0, 0],
                  "Resize camera {camera} to [H, W] pixels before tiling ([0, 0] = no pre-resize; RoboTwin "
                  "training resized every camera to [240, 320] first).", over="camera_names", length=2, min=0,
                  read_only=True),
        # perception (fastwam_ros.perception.PerceptionConfig fields)
        ParamSpec("perception.layout", "string", "robotwin",
                  "How camera images are tiled into the single model frame: robotwin (head on top of "
                  "[left | right]), horizontal, grid.", choices=TILING_LAYOUTS, read_only=True),
        ParamSpec("perception.output_hw", "int_array", [384, 320],
                  "Expected [H, W] of the tiled model input, pixels (checked against the layout).", length=2,
                  min=16, read_only=True),
        ParamSpec("perception.top_hw", "int_array", [256, 320], "robotwin: head tile [H, W], pixels.", length=2,
                  min=1, read_only=True),
        ParamSpec("perception.bottom_tile_hw", "int_array", [128, 160], "robotwin: each wrist tile [H, W], pixels.",
                  length=2, min=1, read_only=True),
        ParamSpec("perception.tile_hw", "int_array", [224, 224], "horizontal / grid: cell size [H, W], pixels.",
                  length=2, min=1, read_only=True),
        ParamSpec("perception.grid_rows", "int", 0, "grid: rows (0 = derived).", min=0, read_only=True),
        ParamSpec("perception.grid_cols", "int", 0, "grid: columns (0 = derived).", min=0, read_only=True),
        ParamSpec("perception.slop_s", "double", 0.05,
                  "Largest capture-stamp spread between the cameras of one observation, seconds.", min=0.0,
                  max=5.0),
        ParamSpec("perception.max_age_s", "double", 0.5,
                  "Observations older than this (ROS time minus capture stamp) are rejected, seconds.",
                  min=0.001, max=60.0),
        ParamSpec("perception.max_future_s", "double", 0.5,
                  "Observations stamped further than this in the future are rejected, seconds.", min=0.0, max=60.0),
        ParamSpec("perception.joint_state_tolerance_s", "double", 0.05,
                  "Largest gap between the frame stamp and the joint state joined to it, seconds.", min=0.0,
                  max=5.0),
        ParamSpec("perception.stream_timeout_s", "double", 1.0,
                  "A camera silent for longer than this is reported as stopped, seconds.", min=0.01, max=60.0),
        ParamSpec("joint_states.topic", "string", "joint_states",
                  "sensor_msgs/JointState topic giving the proprio state.", read_only=True, check=_topic),
        ParamSpec("joint_states.qos", "string", "sensor_data", "Joint-state subscription QoS.",
                  choices=QOS_CHOICES, read_only=True),
        ParamSpec("joint_names", "string_array", DEFAULT_JOINTS,
                  "Joint order of the model's action and proprio vectors (14 for two 6-DoF arms + grippers).",
                  min_len=1, read_only=True, check=_unique),
        # instruction
        ParamSpec("instruction", "string", TOWEL_PROMPT,
                  "Task instruction given to the model; can be changed at run time (ros2 param set).",
                  check=lambda v: None if v.strip() else "must not be empty"),
        ParamSpec("instruction_topic", "string", "instruction",
                  "std_msgs/String topic that replaces the instruction at run time.", read_only=True, check=_topic),
        ParamSpec("instruction_qos", "string", "volatile",
                  "Durability of the instruction subscription: volatile (matches every publisher) or "
                  "transient_local (receives a latched instruction; needs a transient-local publisher).",
                  choices=("volatile", "transient_local"), read_only=True),
        # model
        ParamSpec("model.checkpoint", "string", "",
                  "Checkpoint: a directory (model config + weights + dataset stats) or a .pt/.safetensors "
                  "file. Required."),
        ParamSpec("model.config", "string", "",
                  "Model config YAML (path, or a name under share/fastwam_ros/models such as tiny or "
                  "wan22_5b); empty = the one inside the checkpoint directory."),
        ParamSpec("model.stats", "string", "",
                  "Dataset statistics JSON (z-score mean/std); empty = found next to the checkpoint."),
        ParamSpec("model.vae_dir", "string", "",
                  "Local Wan2.2 VAE (diffusers vae/ or pipeline root); required with an official checkpoint file."),
        ParamSpec("model.text_encoder_dir", "string", "",
                  "Local UMT5 text encoder; empty = bundled one or the cached instruction embeddings only."),
        ParamSpec("model.tokenizer_dir", "string", "", "Local UMT5 tokenizer; empty = next to the text encoder."),
        ParamSpec("model.cache_dir", "string", "", "Disk cache of instruction embeddings; empty = none."),
        ParamSpec("model.device", "string", "cuda", "Torch device: cuda, cuda:N or cpu.",
                  check=lambda v: None if v == "cpu" or v == "cuda" or (v.startswith("cuda:") and v[5:].isdigit())
                  else "expected cpu, cuda or cuda:N"),
        ParamSpec("model.dtype", "string", "bfloat16", "Inference dtype.", choices=DTYPES),
        ParamSpec("model.variant", "string", "fastwam",
                  "Attention-mask variant of the checkpoint (only fastwam weights are public).", choices=VARIANTS),
        ParamSpec("model.num_inference_steps", "int", 10, "Flow-matching Euler steps per chunk.", min=1, max=1000),
        ParamSpec("model.seed_policy", "string", "fixed",
                  "Sampler noise seed per chunk: fixed (= model.seed), increment (seed + chunk index), "
                  "random (fresh noise).", choices=SEED_POLICIES),
        ParamSpec("model.seed", "int", 42, "Base seed for the sampler noise.", min=0, max=2**31 - 1),
        ParamSpec("model.warmup", "bool", True, "Run one dummy inference at configure time (compiles / caches)."),
        ParamSpec("model.load_timeout_s", "double", 900.0,
                  "Longest time configure waits for model load + warm-up, seconds.", min=1.0, max=36000.0),
        # chunks and triggering
        ParamSpec("chunk.topic", "string", "action_chunk", "fastwam_ros/ActionChunk output topic.",
                  read_only=True, check=_topic),
        ParamSpec("chunk.step_period_s", "double", 1.0 / 30.0,
                  "Time between chunk steps, seconds (the training data's control period).", min=1e-4, max=10.0),
        ParamSpec("trigger.mode", "string", "continuous",
                  "When to run inference: continuous (whenever the worker is free, newest observation), "
                  "on_request (once per ~/request_chunk call), rate (at trigger.rate_hz).", choices=TRIGGER_MODES),
        ParamSpec("trigger.rate_hz", "double", 2.0, "Inference rate in mode rate, Hz.", min=0.01, max=1000.0),
        ParamSpec("rtc.enabled", "bool", True,
                  "Pass the controller's committed prefix to the sampler (real-time chunking) when the model "
                  "supports it."),
        ParamSpec("rtc.prefix_topic", "string", "committed_prefix",
                  "fastwam_ros/ActionChunk topic with the controller's committed prefix.", read_only=True,
                  check=_topic),
        ParamSpec("rtc.max_prefix_age_s", "double", 0.5,
                  "A committed prefix older than this is ignored, seconds.", min=0.0, max=60.0),
        ParamSpec("enable_on_activate", "bool", True,
                  "Start inferring as soon as the node is activated (otherwise wait for ~/enable)."),
        ParamSpec("autostart", "bool", False,
                  "Configure and activate once, by the node itself, right after start (the launch file sets it); "
                  "later transitions are left to the operator (ros2 lifecycle set).", read_only=True),
        ParamSpec("max_instruction_chars", "int", 512,
                  "Longest accepted instruction, characters (longer ones are refused and counted).",
                  min=1, max=100000, read_only=True),
        ParamSpec("model.num_threads", "int", 0,
                  "torch intra-op CPU threads (torch.set_num_threads); 0 = torch's default. On a small CPU-only "
                  "machine fewer threads leave cores for perception and control.", min=0, max=1024, read_only=True),
        # worker supervision and output plausibility
        ParamSpec("inference_timeout_s", "double", 10.0,
                  "A replan running longer than this is counted as a timeout, makes the inference diagnostic "
                  "ERROR and its late result is dropped, seconds (0 = no check).", min=0.0, max=3600.0),
        ParamSpec("worker.max_restarts", "int", 5,
                  "Restarts of a dead worker thread in a row before giving up (ERROR).", min=0, max=1000,
                  read_only=True),
        ParamSpec("worker.restart_backoff_s", "double", 0.5,
                  "Wait before the first restart; doubles per attempt (at most 30 s), seconds.", min=0.0,
                  max=60.0, read_only=True),
        ParamSpec("output.max_first_step_distance", "double", 1.0,
                  "Refuse a chunk whose first step is farther than this from the joint state it was predicted "
                  "from, on any joint (rad, or the joint's unit; 0 = no check).", min=0.0, max=100.0),
        ParamSpec("output.max_abs_action", "double", 1000.0,
                  "Refuse a chunk with any |action| above this, and a checkpoint whose normalisation statistics "
                  "can produce one (the joint's unit).", min=1e-3, max=1e9, read_only=True),
        ParamSpec("tick_rate_hz", "double", 100.0,
                  "Rate of the node's internal timer (observation hand-over, chunk publication), Hz.",
                  min=1.0, max=2000.0),
        # per-arm previews
        ParamSpec("arm_names", "string_array", ["left", "right"], "Arm names (one JointTrajectory preview each).",
                  min_len=1, read_only=True, check=_unique),
        ParamSpec("arms.{arm}.joints", "string_array", ARM_JOINTS_TEMPLATE, "Joints of arm {arm}.",
                  over="arm_names", min_len=1, read_only=True, check=_unique),
        ParamSpec("arms.{arm}.preview_topic", "string", "~/preview/{arm}",
                  "trajectory_msgs/JointTrajectory preview of each chunk for arm {arm}.", over="arm_names",
                  read_only=True, check=_topic),
        # debug outputs
        ParamSpec("debug.tiled_image_topic", "string", "~/tiled_input",
                  "sensor_msgs/Image (rgb8) of the tiled model input.", read_only=True, check=_topic),
        ParamSpec("debug.tiled_image_rate_hz", "double", 2.0, "Throttle of the tiled-input image, Hz (0 = off).",
                  min=0.0, max=100.0),
        ParamSpec("debug.markers", "bool", True,
                  "Publish ~/chunk_markers (visualization_msgs/MarkerArray: the chunk as a strip chart)."),
        ParamSpec("debug.marker_frame", "string", "world", "Frame of the chunk markers."),
        ParamSpec("debug.ghost_joint_state", "bool", True,
                  "Publish ~/predicted_end_state (sensor_msgs/JointState, last chunk step) for a ghost robot."),
        ParamSpec("debug.ghost_prefix", "string", "", "Prefix added to the ghost joint names."),
    ],
)


def perception_dict(p: Mapping[str, Any]) -> dict[str, Any]:
    """Policy-node parameters → the dict ``PerceptionConfig.from_dict`` takes."""
    cams = []
    for c in p["camera_names"]:
        pre = list(p[f"cameras.{c}.pre_resize_hw"])
        cams.append({
            "name": c,
            "topic": p[f"cameras.{c}.topic"],
            "transport": p[f"cameras.{c}.transport"],
            "transform": p[f"cameras.{c}.transform"],
            "pre_resize_hw": None if pre == [0, 0] else pre,
        })
    d: dict[str, Any] = {"cameras": cams, "joint_names": list(p["joint_names"])}
    for k in ("layout", "slop_s", "max_age_s", "max_future_s", "joint_state_tolerance_s", "stream_timeout_s"):
        d[k] = p[f"perception.{k}"]
    for k in ("output_hw", "top_hw", "bottom_tile_hw", "tile_hw"):
        d[k] = list(p[f"perception.{k}"])
    for k in ("grid_rows", "grid_cols"):
        d[k] = p[f"perception.{k}"] or None
    return d


def _policy_cross(p: Mapping[str, Any]) -> list[str]:
    errs = _arms_check("arm_names", "arms", "joint_names", "joints")(p)
    for c in p["camera_names"]:
        pre = list(p[f"cameras.{c}.pre_resize_hw"])
        if (pre[0] == 0) != (pre[1] == 0):
            errs.append(f"cameras.{c}.pre_resize_hw: both sizes must be > 0, or both 0 (no pre-resize)")
    if len(p["instruction"]) > p["max_instruction_chars"]:
        errs.append(f"instruction: {len(p['instruction'])} characters > max_instruction_chars "
                    f"{p['max_instruction_chars']}")
    if errs:
        return errs
    try:
        from fastwam_ros.perception.config import PerceptionConfig
        from fastwam_ros.perception.errors import ConfigError
    except ImportError:  # pragma: no cover - perception core always ships with the package
        return errs
    try:
        PerceptionConfig.from_dict(perception_dict(p))
    except ConfigError as exc:
        errs.append(f"perception ({exc})")
    return errs


POLICY_SCHEMA.cross_checks.append(_policy_cross)


def require_checkpoint(p: Mapping[str, Any], exists: Callable[[str], bool] | None = None) -> list[str]:
    """Configure-time check (not at declaration: the node must come up to say what is missing). ``exists``
    (default: the path exists on disk) tells whether a checkpoint path can be found."""
    path = p["model.checkpoint"]
    if not path:
        return ["model.checkpoint: required (a checkpoint directory or file; the launch file's "
                "`checkpoint:=` argument sets it, `demo:=true` uses the bundled demo model)"]
    exists = exists or (lambda s: Path(s).expanduser().exists())
    if not exists(path):
        return [f"model.checkpoint: {path} not found (no such file or directory)"]
    return []


# ---------------------------------------------------------------------------------------------------
# controller_node
# ---------------------------------------------------------------------------------------------------

CONTROLLER_SCHEMA = Schema(
    node="controller_node",
    specs=[
        ParamSpec("autostart", "bool", False,
                  "Configure and activate once, by the node itself, right after start (the launch file sets it); "
                  "later transitions are left to the operator (ros2 lifecycle set).", read_only=True),
        ParamSpec("control_rate_hz", "double", 100.0, "Control loop (timer) rate, Hz.", min=1.0, max=2000.0,
                  read_only=True),
        ParamSpec("joint_names", "string_array", DEFAULT_JOINTS,
                  "Joint order of the incoming chunks (must cover every group's joints).", min_len=1,
                  read_only=True, check=_unique),
        ParamSpec("group_names", "string_array", ["left", "right"],
                  "Joint groups, one command output each (typically one per arm, gripper included).",
                  min_len=1, read_only=True, check=_unique),
        ParamSpec("groups.{group}.joints", "string_array", ARM_JOINTS_TEMPLATE, "Joints of group {group}.",
                  over="group_names", min_len=1, read_only=True, check=_unique),
        ParamSpec("groups.{group}.kind", "string", "arm", "Kind of group {group}.", choices=("arm", "gripper"),
                  over="group_names", read_only=True),
        ParamSpec("groups.{group}.command_topic", "string", "{group}_arm_controller/joint_trajectory",
                  "Command topic of group {group} (type per output_mode).", over="group_names", read_only=True,
                  check=_topic),
        ParamSpec("groups.{group}.lower", "double_array", [-3.14] * 6 + [0.0],
                  "Lower position limits of group {group}'s joints (rad / m); narrowed by robot_description.",
                  over="group_names", read_only=True),
        ParamSpec("groups.{group}.upper", "double_array", [3.14] * 6 + [1.0],
                  "Upper position limits of group {group}'s joints (rad / m); narrowed by robot_description.",
                  over="group_names", read_only=True),
        ParamSpec("groups.{group}.max_velocity", "double_array", [2.0] * 6 + [4.0],
                  "Velocity limits of group {group}'s joints (rad/s, m/s).", over="group_names", min=1e-6,
                  read_only=True),
        ParamSpec("groups.{group}.max_acceleration", "double_array", [8.0] * 6 + [20.0],
                  "Acceleration limits of group {group}'s joints (rad/s², m/s²); URDF has none.", over="group_names",
                  min=1e-6, read_only=True),
        ParamSpec("output_mode", "string", "trajectory",
                  "Command type: trajectory (trajectory_msgs/JointTrajectory with velocities, for "
                  "joint_trajectory_controller), position (std_msgs/Float64MultiArray, for forward position "
                  "controllers), joint_state (sensor_msgs/JointState).", choices=OUTPUT_MODES, read_only=True),
        ParamSpec("chunk_topic", "string", "action_chunk", "fastwam_ros/ActionChunk input topic.",
                  read_only=True, check=_topic),
        ParamSpec("joint_states.topic", "string", "joint_states", "Measured joint states.", read_only=True,
                  check=_topic),
        ParamSpec("joint_states.qos", "string", "sensor_data", "Joint-state subscription QoS.",
                  choices=QOS_CHOICES, read_only=True),
        ParamSpec("estop_topic", "string", "e_stop",
                  "std_msgs/Bool; true latches the e-stop (every group brakes to a hold and stays there; chunks "
                  "and enables refused) until ~/reset; false does not release it. Reliable, volatile, depth 1.", read_only=True, check=_topic),
        ParamSpec("committed_prefix_topic", "string", "committed_prefix",
                  "fastwam_ros/ActionChunk with the steps the controller has committed to (real-time chunking).",
                  read_only=True, check=_topic),
        ParamSpec("robot_description.source", "string", "topic",
                  "Where URDF limits come from: topic (transient-local robot_description), parameter "
                  "(robot_description.urdf) or none (parameters only).", choices=("topic", "parameter", "none"),
                  read_only=True),
        ParamSpec("robot_description.topic", "string", "robot_description",
                  "std_msgs/String URDF topic (transient local).", read_only=True, check=_topic),
        ParamSpec("robot_description.urdf", "string", "", "URDF text when robot_description.source=parameter.",
                  read_only=True),
        ParamSpec("enable_on_start", "bool", True,
                  "Enable motion when the first chunk and joint state are there (otherwise wait for ~/enable)."),
        # control core (ControllerConfig scalars)
        ParamSpec("control.splice_mode", "string", "splice",
                  "splice (blend the new chunk in), ensemble (ACT-style averaging) or replace.",
                  choices=("splice", "ensemble", "replace"), read_only=True),
        ParamSpec("control.blend_window_s", "double", 0.1, "Blend duration when splicing, seconds.", min=0.0,
                  read_only=True),
        ParamSpec("control.handoff_margin_s", "double", 0.02,
                  "A new chunk takes over no earlier than now + this (>= one control period), seconds.", min=0.0,
                  read_only=True),
        ParamSpec("control.stale_chunk_s", "double", 1.0, "Hold when the newest chunk is older than this, seconds.",
                  min=1e-3, read_only=True),
        ParamSpec("control.stale_state_s", "double", 0.25,
                  "Hold a group whose joint state is older than this, seconds.", min=1e-3, read_only=True),
        ParamSpec("control.enable_ramp_s", "double", 1.0, "Blend-in time after enable, seconds.", min=0.0,
                  read_only=True),
        ParamSpec("control.trajectory_horizon_s", "double", 0.2,
                  "Length of the short per-group trajectory published each tick, seconds.", min=0.0, read_only=True),
        ParamSpec("control.trajectory_point_period_s", "double", 0.02, "Point spacing of that trajectory, seconds.",
                  min=1e-4, read_only=True),
        ParamSpec("control.rtc_prefix_s", "double", 0.2, "Duration of the committed prefix, seconds.", min=0.0,
                  read_only=True),
        ParamSpec("control.max_future_s", "double", 0.5,
                  "Chunks stamped further than this in the future are rejected, seconds.", min=0.0, read_only=True),
    ],
)


CONTROL_SCALARS = ("splice_mode", "blend_window_s", "handoff_margin_s", "stale_chunk_s", "stale_state_s",
                   "enable_ramp_s", "trajectory_horizon_s", "trajectory_point_period_s", "rtc_prefix_s",
                   "max_future_s")


def controller_dict(p: Mapping[str, Any]) -> dict[str, Any]:
    """Controller-node parameters → the dict ``ControllerConfig.from_dict`` takes."""
    groups, limits = [], {}
    for g in p["group_names"]:
        joints = list(p[f"groups.{g}.joints"])
        groups.append({"name": g, "joints": joints, "kind": p[f"groups.{g}.kind"]})
        for i, j in enumerate(joints):
            limits[j] = {k: float(p[f"groups.{g}.{k}"][i])
                         for k in ("lower", "upper", "max_velocity", "max_acceleration")}
    d: dict[str, Any] = {"groups": groups, "joint_limits": limits, "control_rate_hz": p["control_rate_hz"]}
    for k in CONTROL_SCALARS:
        d[k] = p[f"control.{k}"]
    return d


def _controller_cross(p: Mapping[str, Any]) -> list[str]:
    errs = _arms_check("group_names", "groups", "joint_names", "joints")(p)
    for g in p["group_names"]:
        n = len(p[f"groups.{g}.joints"])
        for k in ("lower", "upper", "max_velocity", "max_acceleration"):
            if len(p[f"groups.{g}.{k}"]) != n:
                errs.append(f"groups.{g}.{k}: needs {n} entries (one per joint of the group), "
                            f"got {len(p[f'groups.{g}.{k}'])}")
        for i, (lo, hi) in enumerate(zip(p[f"groups.{g}.lower"], p[f"groups.{g}.upper"])):
            if not lo < hi:
                errs.append(f"groups.{g}.lower: entry {i} ({lo}) must be < upper ({hi})")
    if p["robot_description.source"] == "parameter" and not p["robot_description.urdf"]:
        errs.append("robot_description.urdf: required when robot_description.source=parameter")
    if p["control.handoff_margin_s"] < 1.0 / p["control_rate_hz"] - 1e-12:
        errs.append(f"control.handoff_margin_s: must be at least one control period "
                    f"({1.0 / p['control_rate_hz']:.4g} s)")
    if errs:
        return errs
    try:
        from fastwam_ros.control.config import ConfigError, ControllerConfig
    except ImportError:  # pragma: no cover - control core always ships with the package
        return errs
    try:
        ControllerConfig.from_dict(controller_dict(p))
    except ConfigError as exc:
        errs.append(f"control ({exc})")
    return errs


CONTROLLER_SCHEMA.cross_checks.append(_controller_cross)


# ---------------------------------------------------------------------------------------------------
# sim_node
# ---------------------------------------------------------------------------------------------------

SIM_SCHEMA = Schema(
    node="sim_node",
    specs=[
        ParamSpec("mode", "string", "kinematic", "Simulator physics: auto, mujoco or kinematic.",
                  choices=("auto", "mujoco", "kinematic"), read_only=True),
        ParamSpec("seed", "int", 0, "Scene seed (towel pose).", min=0),
        ParamSpec("physics_rate_hz", "double", 100.0, "Simulation step / joint-state rate, Hz.", min=1.0, max=2000.0,
                  read_only=True),
        ParamSpec("camera_rate_hz", "double", 15.0, "Camera frame rate, Hz.", min=0.1, max=120.0, read_only=True),
        ParamSpec("robot_config", "string", "",
                  "Robot YAML whose `sim:` section configures the simulator (cameras sizes, tracking); empty = "
                  "the bundled config/demo_robot.yaml.", read_only=True),
        ParamSpec("camera_topic_prefix", "string", "cameras",
                  "Images go to <prefix>/<camera>/image_raw (sensor_msgs/Image, rgb8).", read_only=True,
                  check=_topic),
        ParamSpec("joint_states_topic", "string", "joint_states", "sensor_msgs/JointState output.", read_only=True,
                  check=_topic),
        ParamSpec("command_mode", "string", "trajectory",
                  "Type of the command topics it follows (the controller's output_mode).", choices=OUTPUT_MODES,
                  read_only=True),
        ParamSpec("group_names", "string_array", ["left", "right"], "Command groups (as the controller's).", min_len=1,
                  read_only=True, check=_unique),
        ParamSpec("groups.{group}.joints", "string_array", ARM_JOINTS_TEMPLATE, "Joints of group {group}.",
                  over="group_names", read_only=True),
        ParamSpec("groups.{group}.command_topic", "string", "{group}_arm_controller/joint_trajectory",
                  "Command topic followed for group {group}.", over="group_names", read_only=True, check=_topic),
        ParamSpec("follow_joint_states", "bool", False,
                  "Cameras only: follow the measured joint states on joint_states_topic (e.g. ros2_control mock "
                  "hardware) instead of commands, and publish no joint states.", read_only=True),
        ParamSpec("publish_clock", "bool", False,
                  "Publish /clock from sim time (then run every node with use_sim_time:=true).", read_only=True),
        ParamSpec("publish_robot_description", "bool", True,
                  "Publish the simulated robot's URDF on robot_description (transient local).", read_only=True),
    ],
)


def markdown_table(schema: Schema) -> str:
    """README table of a schema (templates shown with their placeholder)."""
    rows = ["| parameter | type | default | description |", "|---|---|---|---|"]
    for s in schema.specs:
        default = f"{s.default:.6g}" if isinstance(s.default, float) else repr(s.default)
        c = s.constraint_text()
        desc = s.description + (f" ({c})" if c else "") + (" Read-only." if s.read_only else "")
        rows.append(f"| `{s.name}` | {s.type} | `{default}` | {desc.replace('|', '/')} |")
    return "\n".join(rows)


def readme_tables() -> str:
    """The README's parameter tables (one per node), generated from the schemas."""
    parts = []
    for node, schema in (("policy_node", POLICY_SCHEMA), ("controller_node", CONTROLLER_SCHEMA),
                         ("sim_node", SIM_SCHEMA)):
        parts.append(f"#### `{node}`\n{markdown_table(schema)}\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(readme_tables())
