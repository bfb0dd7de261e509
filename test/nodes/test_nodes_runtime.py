"""The ROS-free runtimes behind the three node shells, the launch plan and the shipped YAML."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from fastwam_ros.robot import load_robot
from fastwam_ros.runtime.chunks import chunk_fields
from fastwam_ros.runtime.controller_runtime import ControllerRuntime
from fastwam_ros.runtime.launch_plan import LAUNCH_ARGS, parse_bool, plan
from fastwam_ros.runtime.params import ParameterError, load_node_parameters, load_resolved, resolve, validate
from fastwam_ros.runtime.policy_runtime import (
    PolicyRuntime,
    PolicyRuntimeConfig,
    TriggerPolicy,
    frame_to_rgb8,
    seed_for,
)
from fastwam_ros.runtime.schemas import (
    CONTROLLER_SCHEMA,
    POLICY_SCHEMA,
    SIM_SCHEMA,
    markdown_table,
    require_checkpoint,
)
from fastwam_ros.runtime.sim_runtime import SimBridge, sample_trajectory
from fastwam_ros.runtime.worker import PolicyWorker

REPO = Path(__file__).resolve().parents[2]
TOWEL = REPO / "config" / "towel_fold.yaml"
DEMO = REPO / "config" / "demo.yaml"


# ------------------------------------------------------------------------------------------ shipped YAML


@pytest.mark.parametrize("schema", [POLICY_SCHEMA, CONTROLLER_SCHEMA])
def test_towel_fold_yaml_is_valid_with_ros_types(schema):
    # strict: an int where ROS expects a double would make rclpy refuse the file
    p = load_resolved(schema, TOWEL, strict=True)
    assert validate(schema, p, strict=True) == []


def test_towel_fold_matches_robotwin_checkpoint():
    p = load_resolved(POLICY_SCHEMA, TOWEL, namespace="/robot1")
    robot = load_robot(p["robot_file"])
    pc = robot.perception_config()
    assert pc.layout == "robotwin" and pc.out_hw == (384, 320)
    assert len(robot.joints) == 14 and robot.camera_names == ("head", "left_wrist", "right_wrist")
    assert "towel" in p["instruction"].lower()
    assert require_checkpoint(p)  # the YAML leaves the checkpoint to the launch argument


@pytest.mark.parametrize("schema", [POLICY_SCHEMA, CONTROLLER_SCHEMA, SIM_SCHEMA])
def test_demo_overlay_is_valid(schema):
    o = load_node_parameters(TOWEL, schema.node)
    o.update(load_node_parameters(DEMO, schema.node))
    resolve(schema, o, strict=True)


def test_parameter_files_hold_no_robot_facts():
    """Robot facts live in config/robots/*.yaml only: no joint names, cameras, tiling, limits or rates here."""
    text = TOWEL.read_text() + DEMO.read_text()
    for fact in ("left_joint1", "left_waist", "image_raw", "top_hw", "slop_s", "max_acceleration",
                 "control_rate_hz", "step_period_s", "blend_window_s", "layout"):
        assert fact not in text, fact


def _walk(tree):
    for v in tree.values():
        if isinstance(v, dict):
            yield from _walk(v)
        else:
            yield v


@pytest.mark.parametrize("path", [TOWEL, DEMO])
def test_yaml_has_no_constructs_rcl_refuses(path):
    import yaml

    doc = yaml.safe_load(path.read_text())
    for v in _walk(doc):
        if isinstance(v, list):
            assert v, "rcl cannot type an empty list"
            assert len({type(x) for x in v}) == 1, f"mixed-type list {v}"
        assert v is not None, "null values are not parameters"


def test_bad_override_gives_named_error():
    with pytest.raises(ParameterError) as ei:
        load_resolved(POLICY_SCHEMA, TOWEL, extra={"trigger.mode": "sometimes", "model.device": "gpu0"})
    text = str(ei.value)
    assert "trigger.mode" in text and "model.device" in text
    with pytest.raises(ParameterError, match="unknown parameter"):  # a robot fact is not a parameter any more
        load_resolved(CONTROLLER_SCHEMA, TOWEL, extra={"groups.left.joints": ["x"]})
    with pytest.raises(ParameterError, match="model.joint_map"):
        load_resolved(POLICY_SCHEMA, TOWEL, extra={"model.joint_map": ["left_joint1"]})


def test_markdown_tables_list_every_parameter():
    for schema in (POLICY_SCHEMA, CONTROLLER_SCHEMA, SIM_SCHEMA):
        table = markdown_table(schema)
        for s in schema.specs:
            assert f"`{s.name}`" in table


# ------------------------------------------------------------------------------------------ launch plan


def test_launch_plan_demo_and_real(tmp_path):
    share = REPO
    lp = plan({"demo": "true", "rviz": "false"}, share)
    names = [n.name for n in lp.nodes]
    assert names == ["policy_node", "controller_node", "sim_node", "robot_state_publisher"]
    assert lp.autostart == ["policy_node", "controller_node"]
    # both are lifecycle nodes that activate themselves once (no launch event handler re-activating them)
    assert all(n.lifecycle and n.parameters[-1]["autostart"] is True for n in lp.nodes[:2])
    rsp = lp.nodes[3].parameters[0]["robot_description"]
    from fastwam_ros.control import parse_urdf_limits
    from fastwam_ros.sim import JOINT_NAMES

    assert set(parse_urdf_limits(rsp)) == set(JOINT_NAMES)  # the simulated robot's URDF, parseable
    pol = lp.nodes[0]
    assert pol.lifecycle and str(DEMO) in pol.parameters
    assert pol.parameters[-1]["model.checkpoint"].endswith("models/demo")
    assert all(n.parameters[-1]["robot_file"] == "demo_aloha" for n in lp.nodes[:3])  # one robot for every node
    lp = plan({"demo": "false", "rviz": "TRUE", "checkpoint": "/w/robotwin.pt", "device": "cuda:1",
               "namespace": "/robot1/", "use_sim_time": "true"}, share)
    assert [n.name for n in lp.nodes] == ["policy_node", "controller_node", "rviz2"]
    assert lp.namespace == "robot1"
    over = lp.nodes[0].parameters[-1]
    assert over == {"use_sim_time": True, "model.checkpoint": "/w/robotwin.pt", "model.device": "cuda:1",
                    "autostart": True}
    assert str(DEMO) not in lp.nodes[0].parameters
    lp = plan({"demo": "false", "robot": "/robots/mine.yaml"}, share)
    assert [n.parameters[-1]["robot_file"] for n in lp.nodes] == ["/robots/mine.yaml"] * 2
    with pytest.raises(ValueError, match="demo"):
        plan({"demo": "maybe"}, share)
    with pytest.raises(FileNotFoundError):
        plan({"config": str(tmp_path / "nope.yaml")}, share)
    assert parse_bool("x", " On ") is True
    assert all(desc for _, _, desc in LAUNCH_ARGS)


# ------------------------------------------------------------------------------------------ policy runtime


def test_trigger_modes():
    t = TriggerPolicy("continuous")
    assert t.should_submit(1.0, 0.9)
    t.submitted(1.0, 0.9)
    assert not t.should_submit(1.1, 0.9)  # same observation never twice
    t = TriggerPolicy("rate", 2.0)
    assert t.should_submit(1.0, 1.0)
    t.submitted(1.0, 1.0)
    assert not t.should_submit(1.3, 1.3) and t.should_submit(1.5, 1.5)
    t = TriggerPolicy("on_request")
    assert not t.should_submit(1.0, 1.0)
    t.request()
    assert t.should_submit(1.0, 1.0)
    t.submitted(1.0, 1.0)
    assert not t.should_submit(2.0, 2.0)
    with pytest.raises(ValueError):
        TriggerPolicy("sometimes")
    assert seed_for("fixed", 42, 5) == 42 and seed_for("increment", 42, 5) == 47 and seed_for("random", 42, 5) is None


def test_frame_to_rgb8():
    f = np.stack([np.full((2, 3), -1.0), np.zeros((2, 3)), np.ones((2, 3))]).astype(np.float32)
    rgb = frame_to_rgb8(f)
    assert rgb.shape == (2, 3, 3) and tuple(rgb[0, 0]) == (0, 128, 255)


class LinearPolicy:
    """A stand-in model: a chunk that ramps from the proprio by +0.01 per step."""

    def predict(self, frame, instruction, proprio, seed=None, prefix=None, prefix_weight=None,
                rtc_mode="inpaint", guidance_beta=5.0):
        return SimpleNamespace(actions=np.asarray(proprio)[None, :] + 0.01 * np.arange(8)[:, None],
                               timing_s={"sample": 0.001})


def _image(value, h=64, w=128):
    return SimpleNamespace(height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3,
                           data=np.full((h, w, 3), value, np.uint8).tobytes(), header=None)


def _wait(pred, timeout=5.0):
    t0 = time.monotonic()
    while not pred():
        assert time.monotonic() - t0 < timeout
        time.sleep(0.002)


def test_policy_runtime_end_to_end_with_real_pipeline():
    from fastwam_ros.perception import ObservationPipeline

    o = load_node_parameters(TOWEL, "policy_node")
    o.update(load_node_parameters(DEMO, "policy_node"))
    p = resolve(POLICY_SCHEMA, o, strict=True)
    robot = load_robot("demo_aloha")
    pipe = ObservationPipeline(robot.perception_config())
    worker = PolicyWorker(LinearPolicy)
    worker.start(timeout_s=5.0)
    rt = PolicyRuntime(PolicyRuntimeConfig.from_params(p, robot, "fastwam:test"), pipe, worker,
                       instruction=p["instruction"], enabled=True)
    try:
        names = list(robot.joints)
        q = np.linspace(-0.5, 0.5, 14)
        t = 100.0
        for k in range(3):
            ts = t + 0.1 * k
            rt.on_joint_state(ts, names, q, ts)
            for cam in robot.camera_names:
                assert rt.on_image(cam, _image(40 * k), ts, ts)
            rt.step(ts + 0.01)
        assert rt.on_image("head", SimpleNamespace(height=2, width=2, encoding="weird", is_bigendian=0, step=6,
                                                   data=b"\0" * 12, header=None), t, t) is False
        _wait(lambda: worker.completed >= 1)
        outs = rt.collect(t + 0.5)
        assert outs, rt.rejections.as_dict()
        o0 = outs[-1]
        assert o0.chunk.joint_names == names and o0.chunk.num_steps == 8
        np.testing.assert_allclose(o0.chunk.positions_array()[0], q, atol=1e-6)
        assert o0.chunk.model_id == "fastwam:test" and o0.latency_s > 0
        assert set(o0.previews) == {"left_arm", "left_gripper", "right_arm", "right_gripper"}
        assert o0.previews["left_arm"].joint_names == names[:6]
        assert len(o0.markers) == 14 and len(o0.ghost_positions) == 14
        img = rt.tiled_image_due(t + 0.5)
        assert img is not None and img.shape == (96, 128, 3) and img.dtype == np.uint8
        assert rt.tiled_image_due(t + 0.6) is None  # throttled at 2 Hz
        diags = {d.name: d for d in rt.diagnostics(t + 0.5, active=True)}
        keys = dict(diags["inference"].values)
        assert any(k.startswith("latency end_to_end") for k in keys)
        assert keys["chunks published"] == str(len(outs))
        cam_keys = dict(diags["cameras"].values)
        assert "head rate (Hz)" in cam_keys and any("decode" in k for k in cam_keys)
        # disabled: nothing submitted
        rt.set_enabled(False)
        rt.on_joint_state(t + 1.0, names, q, t + 1.0)
        for cam in robot.camera_names:
            rt.on_image(cam, _image(7), t + 1.0, t + 1.0)
        assert rt.step(t + 1.01) is False
        assert rt.on_instruction("   ") is not None and rt.instruction == p["instruction"]
        assert rt.on_instruction("unfold it") is None and rt.instruction == "unfold it"
        assert rt.on_committed_prefix(t, ["a"], np.zeros((2, 1)), t) is not None
        assert rt.on_committed_prefix(t, names[::-1], np.tile(np.arange(14.0)[::-1], (3, 1)), t) is None
        np.testing.assert_allclose(rt.prefix.positions[0], np.arange(14.0))
        rt.reset()
        assert rt.submissions == 0
    finally:
        worker.stop()


def test_policy_runtime_counts_dimension_mismatch():
    class WrongDim:
        def predict(self, frame, instruction, proprio, seed=None, prefix=None, prefix_weight=None,
                rtc_mode="inpaint", guidance_beta=5.0):
            return np.zeros((4, 3))

    p = resolve(POLICY_SCHEMA, {})
    w = PolicyWorker(WrongDim)
    w.start(timeout_s=5.0)
    rt = PolicyRuntime(PolicyRuntimeConfig.from_params(p, load_robot(p["robot_file"])), SimpleNamespace(), w,
                       instruction="x", enabled=True)
    from fastwam_ros.runtime.worker import InferenceJob

    w.submit(InferenceJob(np.zeros((3, 2, 2), np.float32), None, 1.0, "x"))
    _wait(lambda: w.completed == 1)
    assert rt.collect(2.0) == [] and rt.rejections.as_dict() == {"chunk:action_dim": 1}
    w.stop()


# ------------------------------------------------------------------------------------------ controller runtime


def _ctrl(output="trajectory"):
    import yaml

    doc = yaml.safe_load((REPO / "config" / "robots" / "towel_fold_bimanual.yaml").read_text())
    for g in doc["groups"]:
        g["command"]["output"] = output
    o = load_node_parameters(TOWEL, "controller_node")
    return ControllerRuntime(resolve(CONTROLLER_SCHEMA, o, strict=True), load_robot(doc))


def _run(rt, names, t0, t1, q, dt=0.01):
    outs = []
    t = t0
    while t < t1:
        rt.on_joint_state(t, names, q, t)
        outs.append(rt.tick(t))
        t += dt
    return outs, t


@pytest.mark.parametrize("mode", ["trajectory", "position", "joint_state"])
def test_controller_runtime_modes_and_estop(mode):
    rt = _ctrl(mode)
    names = list(rt.config.joint_names)
    q = np.full(14, 0.1)
    _, t = _run(rt, names, 10.0, 10.05, q)
    f = chunk_fields(np.full((32, 14), 0.3), names, stamp_s=t, chunk_id=0, step_period_s=1 / 30)
    assert rt.on_chunk(t, stamp=f.stamp, chunk_id=0, step_period_s=f.step_period_s, joint_names=f.joint_names,
                       num_steps=f.num_steps, positions=f.positions, velocities=f.velocities) is None
    outs, t = _run(rt, names, t, t + 0.5, q)
    cmds = outs[-1].commands
    assert {c.group for c in cmds} == {"left_arm", "right_arm"}
    c = cmds[0]
    if mode == "trajectory":
        assert c.trajectory is not None and len(c.trajectory.positions[0]) == 7
        assert len(c.trajectory.velocities[0]) == 7
    elif mode == "position":
        assert len(c.positions) == 7 and not c.joint_names
    else:
        assert c.joint_names == names[:7] and len(c.velocities) == 7
    assert any(o.prefix is not None for o in outs)
    # e-stop latches; False does not release it; commands come to rest
    assert "latched" in rt.on_estop(True, t)
    assert "latched" in rt.on_estop(False, t)
    outs, t = _run(rt, names, t, t + 1.5, q)
    assert all(m == "estop" for m in outs[-1].modes.values())

    def pos(o):
        c = o.commands[0]
        return np.array(c.trajectory.positions[0] if c.trajectory else c.positions)

    if outs[-1].commands:
        np.testing.assert_allclose(pos(outs[-1]), pos(outs[-5]), atol=1e-9)
    assert rt.diagnostics(t)[0].level == 2
    assert rt.set_enabled(True, t)[0] is False
    g = rt.on_chunk(t, stamp=f.stamp, chunk_id=1, step_period_s=f.step_period_s, joint_names=f.joint_names,
                    num_steps=f.num_steps, positions=f.positions)
    assert g is not None
    rt.reset(t)
    assert not rt.estop_latched and rt.diagnostics(t)[0].level < 2


def test_controller_runtime_rejects_bad_chunks_and_merges_urdf():
    rt = _ctrl()
    assert "bad_shape" in rt.on_chunk(1.0, stamp=(1, 0), chunk_id=0, step_period_s=0.1, joint_names=["a"],
                                      num_steps=2, positions=[0.0])
    assert rt.rejections.as_dict() == {"chunk:bad_shape": 1}
    urdf = ("<robot name='r'>" + "".join(
        f"<joint name='{j}' type='revolute'><limit lower='-0.5' upper='0.5' velocity='1.0' effort='1'/></joint>"
        for j in rt.config.joint_names) + "</robot>")
    assert rt.on_robot_description(urdf, 1.0) is None
    lim = rt.config.limits["left_joint1"]
    assert (lim.lower, lim.upper, lim.max_velocity) == (-0.5, 0.5, 1.0) and rt.urdf_used
    assert "ignored" in rt.on_robot_description("<robot", 1.0)


# ------------------------------------------------------------------------------------------ sim runtime


def test_sim_bridge():
    names = ["a1", "a2", "b1"]
    b = SimBridge(names, {"a": ["a1", "a2"], "b": ["b1"]}, np.zeros(3))
    b.on_positions("a", [1.0, 2.0])
    b.on_positions("a", [1.0])
    np.testing.assert_allclose(b.command_at(0.0), [1.0, 2.0, 0.0])
    b.on_trajectory("b", ["b1"], 10.0, [0.1, 0.2], np.array([[1.0], [3.0]]), now_s=9.0)
    assert b.command_at(10.15)[2] == pytest.approx(2.0)
    assert b.command_at(11.0)[2] == pytest.approx(3.0)
    b.on_trajectory("a", ["a1"], 0.0, [0.1], np.array([[5.0]]), now_s=20.0)  # zero stamp = now
    assert b.command_at(20.5)[0] == 5.0
    b.on_joint_state(["b1", "zz"], [7.0, 1.0])
    assert b.command[2] == 7.0 and b.rejections.as_dict()["command:unknown_joint"] == 1
    b.on_trajectory("a", ["a1"], 0.0, [0.1], np.array([[np.nan]]), now_s=21.0)
    assert b.rejections.as_dict()["command:bad_values"] == 1
    assert b.camera_due(0.0, 10.0) and not b.camera_due(0.05, 10.0) and b.camera_due(0.1, 10.0)
    with pytest.raises(ValueError):
        SimBridge(names, {"a": ["zz"]}, np.zeros(3))
    np.testing.assert_allclose(sample_trajectory(0.0, 1.0, [0.1], np.array([[4.0]])), [4.0])
