"""The parameter schemas of the nodes (policy_node, controller_node, row_executor_node, sim_node).

ROS parameters hold deployment knobs only (checkpoint, device, dtype, trigger, topics of the node's own
outputs, debug). Every robot fact (cameras, tiling, joints, groups, limits, rates, step period) is in the
robot file named by ``robot_file`` (:mod:`fastwam_ros.robot`). The shells declare exactly these parameters,
``config/towel_fold.yaml`` sets them, the README tables are generated from them (:func:`markdown_table`), and
the ROS-free cores read the same YAML through :func:`fastwam_ros.runtime.params.load_resolved`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fastwam_ros.model.network.rtc import DEFAULT_GUIDANCE_BETA, RTC_MASKS, RTC_MODES

from .params import ParamSpec, Schema

QOS_CHOICES = ("sensor_data", "reliable", "best_effort")
TRIGGER_MODES = ("continuous", "on_request", "rate")
OUTPUT_MODES = ("trajectory", "position", "joint_state")
SEED_POLICIES = ("fixed", "increment", "random")
DTYPES = ("bfloat16", "float16", "float32")
VARIANTS = ("fastwam", "joint", "idm")
TILING_LAYOUTS = ("robotwin", "horizontal", "grid")

TOWEL_PROMPT = "Fold the towel in half: grasp the two near corners and place them on the far corners."
DEFAULT_ROBOT = "towel_fold_bimanual"
DEMO_ROBOT = "demo_aloha"


def _robot_file(v: str):
    return None if v.strip() else "empty: a robot file path or a name under config/robots"


def _joint_map(v):
    bad = [e for e in v if e.count(":") != 1 or not all(x.strip() for x in e.split(":"))]
    return f"entries {bad} are not 'checkpoint_joint:robot_joint'" if bad else None


def _robot_spec(name: str):
    return ParamSpec("robot_file", "string", name,
                     "Robot file (config/robots/<name>.yaml, or a path): cameras, tiling, joints, groups, limits, "
                     "rates and the chunk step period. The launch argument robot:= sets it.", read_only=True,
                     check=_robot_file)


def _topic(v: str):
    if not v:
        return "empty topic name"
    if any(c.isspace() for c in v) or "//" in v:
        return f"{v!r} is not a valid ROS topic name"
    return None


# ---------------------------------------------------------------------------------------------------
# policy_node
# ---------------------------------------------------------------------------------------------------

POLICY_SCHEMA = Schema(
    node="policy_node",
    specs=[
        _robot_spec(DEFAULT_ROBOT),
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
                  "Attention-mask variant the checkpoint must have been trained with (checked at configure; only "
                  "fastwam weights are public).", choices=VARIANTS),
        ParamSpec("model.joint_map", "string_array", [],
                  "Deliberate joint renames, checkpoint joint -> robot joint ('ckpt_name:robot_name'; logged). "
                  "Without it the checkpoint's joints must equal the robot file's, in order.", check=_joint_map),
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
        ParamSpec("trigger.mode", "string", "continuous",
                  "When to run inference: continuous (whenever the worker is free, newest observation), "
                  "on_request (once per ~/request_chunk call), rate (at trigger.rate_hz).", choices=TRIGGER_MODES),
        ParamSpec("trigger.rate_hz", "double", 2.0, "Inference rate in mode rate, Hz.", min=0.01, max=1000.0),
        ParamSpec("rtc.mode", "string", "inpaint",
                  "Real-time chunking: off (plain sampler), inpaint (per-step inpainting of the executing plan "
                  "with the RTC soft mask) or guided (the RTC paper's VJP guidance; eager action steps, no CUDA "
                  "graphs for them). Default from benchmarks/bench_rtc.py.", choices=RTC_MODES),
        ParamSpec("rtc.mask", "string", "soft",
                  "Weights over the executing plan: soft (1 over the estimated delay d, then the paper's "
                  "exponentially decaying weights to the end of the plan) or hard (1 over d, 0 after).",
                  choices=RTC_MASKS),
        ParamSpec("rtc.guidance_beta", "double", DEFAULT_GUIDANCE_BETA,
                  "Guided mode: clip of the guidance weight (the paper's beta).", min=1e-3, max=1000.0),
        ParamSpec("rtc.delay_percentile", "double", 90.0,
                  "The delay d is this percentile of the recent end-to-end latencies (capture stamp to chunk "
                  "publication), in chunk steps, rounded up.", min=0.0, max=100.0),
        ParamSpec("rtc.delay_window", "int", 20, "Number of recent replans the delay percentile is taken over.",
                  min=1, max=10000),
        ParamSpec("rtc.delay_margin_s", "double", 0.02,
                  "Added to the latency percentile before converting to steps (the controller's hand-off "
                  "margin), seconds.", min=0.0, max=10.0),
        ParamSpec("rtc.plan_wait_s", "double", 0.1,
                  "After publishing a chunk, wait at most this long for the controller's plan that contains it "
                  "before the next inference starts (inpaint / guided modes), seconds.", min=0.0, max=10.0),
        ParamSpec("rtc.prefix_topic", "string", "committed_prefix",
                  "fastwam_ros/ActionChunk topic with the plan the controller is executing (whole remaining "
                  "plan).", read_only=True, check=_topic),
        ParamSpec("rtc.max_prefix_age_s", "double", 0.5,
                  "An executing-plan message older than this is ignored, seconds.", min=0.0, max=60.0),
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


def _policy_cross(p: Mapping[str, Any]) -> list[str]:
    if len(p["instruction"]) > p["max_instruction_chars"]:
        return [f"instruction: {len(p['instruction'])} characters > max_instruction_chars "
                f"{p['max_instruction_chars']}"]
    return []


POLICY_SCHEMA.cross_checks.append(_policy_cross)


def require_checkpoint(p: Mapping[str, Any], exists: Callable[[str], bool] | None = None) -> list[str]:
    """Configure-time check (not at declaration: the node must come up to say what is missing). ``exists``
    (default: the path exists on disk) tells whether a checkpoint path can be found; a missing path shaped like
    a Hub id (``org/name[@revision]``) passes here and is resolved (or refused) by the loader."""
    path = p["model.checkpoint"]
    if not path:
        return ["model.checkpoint: required (a checkpoint directory or file; the launch file's "
                "`checkpoint:=` argument sets it, `demo:=true` uses the bundled demo model)"]
    exists = exists or (lambda s: Path(s).expanduser().exists())
    if not exists(path):
        from fastwam_ros.hub import is_hub_id  # light (no torch): Hub ids are resolved by the loader

        if is_hub_id(path):
            return []
        return [f"model.checkpoint: {path} not found (no such file or directory, nor an org/name Hub id)"]
    return []


# ---------------------------------------------------------------------------------------------------
# controller_node
# ---------------------------------------------------------------------------------------------------

CONTROLLER_SCHEMA = Schema(
    node="controller_node",
    specs=[
        _robot_spec(DEFAULT_ROBOT),
        ParamSpec("autostart", "bool", False,
                  "Configure and activate once, by the node itself, right after start (the launch file sets it); "
                  "later transitions are left to the operator (ros2 lifecycle set).", read_only=True),
        ParamSpec("chunk_topic", "string", "action_chunk", "fastwam_ros/ActionChunk input topic.",
                  read_only=True, check=_topic),
        ParamSpec("estop_topic", "string", "e_stop",
                  "std_msgs/Bool; true latches the e-stop (every group brakes to a hold and stays there; chunks "
                  "and enables refused) until ~/reset; false does not release it. Reliable, volatile, depth 1.", read_only=True, check=_topic),
        ParamSpec("committed_prefix_topic", "string", "committed_prefix",
                  "fastwam_ros/ActionChunk with the whole remaining plan the controller is executing, from now "
                  "(real-time chunking; at most 20 Hz).",
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
    ],
)


def _controller_cross(p: Mapping[str, Any]) -> list[str]:
    if p["robot_description.source"] == "parameter" and not p["robot_description.urdf"]:
        return ["robot_description.urdf: required when robot_description.source=parameter"]
    return []


CONTROLLER_SCHEMA.cross_checks.append(_controller_cross)


# ---------------------------------------------------------------------------------------------------
# row_executor_node
# ---------------------------------------------------------------------------------------------------


def _service(v: str):
    return None if not v else _topic(v)


ROW_EXECUTOR_SCHEMA = Schema(
    node="row_executor_node",
    specs=[
        _robot_spec("libero_franka"),
        ParamSpec("chunk_topic", "string", "action_chunk", "fastwam_ros/ActionChunk input topic.",
                  read_only=True, check=_topic),
        ParamSpec("estop_topic", "string", "e_stop",
                  "std_msgs/Bool; true latches the e-stop (idle rows only, chunks refused) until ~/reset.",
                  read_only=True, check=_topic),
        ParamSpec("request_service", "string", "policy_node/request_chunk",
                  "std_srvs/Trigger called when the executor needs a chunk (the policy node's ~/request_chunk, "
                  "with its trigger.mode on_request); empty = never call (trigger.mode continuous or rate: the "
                  "first chunk observed after the last executed row is taken).", read_only=True, check=_service),
        ParamSpec("request_retry_s", "double", 2.0,
                  "While waiting for a chunk, call request_service again after this long, seconds (0 = once).",
                  min=0.0, max=3600.0),
        ParamSpec("publish_idle", "bool", True,
                  "Publish the idle action (ee_delta: zero deltas, gripper held) on steps without a fresh row; "
                  "false = publish nothing then (a bridge that steps its simulator per message then pauses "
                  "during inference, like the official evaluations)."),
    ],
)


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
        _robot_spec(DEMO_ROBOT),
        ParamSpec("follow_joint_states", "bool", False,
                  "Cameras only: follow the measured joint states on the robot's joint_states topic (e.g. "
                  "ros2_control mock hardware) instead of commands, and publish no joint states.", read_only=True),
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
                         ("row_executor_node", ROW_EXECUTOR_SCHEMA), ("sim_node", SIM_SCHEMA)):
        parts.append(f"#### `{node}`\n{markdown_table(schema)}\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(readme_tables())
