"""Issue 13 item 8: on a slow machine the diagnostics say WHY the arms hold, and the demo is sized for a small
CPU (one torch thread: on 2 loaded cores more threads oversubscribe and inference gets several times slower)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastwam_ros.robot import load_robot
from fastwam_ros.runtime.chunks import chunk_fields
from fastwam_ros.runtime.controller_runtime import ControllerRuntime
from fastwam_ros.runtime.params import load_node_parameters, resolve
from fastwam_ros.runtime.schemas import CONTROLLER_SCHEMA, POLICY_SCHEMA

REPO = Path(__file__).resolve().parents[2]
TOWEL = REPO / "config" / "towel_fold.yaml"
DEMO = REPO / "config" / "demo.yaml"


def _demo(node, schema):
    o = load_node_parameters(TOWEL, node)
    o.update(load_node_parameters(DEMO, node))
    o["robot_file"] = "demo_aloha"  # what the launch file sets with demo:=true
    return resolve(schema, o, strict=False)


def _controller():
    p = _demo("controller_node", CONTROLLER_SCHEMA)
    return ControllerRuntime(p, load_robot(p["robot_file"]))


def _feed(rt, t0, t1, age_s, q, dt=0.01):
    """Joint states every tick; a chunk every 0.5 s whose observation is ``age_s`` old on arrival."""
    names = list(rt.config.joint_names)
    t, k = t0, 0
    while t < t1:
        rt.on_joint_state(t, names, q, t)
        if t >= t0 + 0.5 * k:
            f = chunk_fields(np.tile(q, (32, 1)), names, stamp_s=t - age_s, chunk_id=k, step_period_s=1 / 30,
                             latency_s=age_s)
            rt.on_chunk(t, stamp=f.stamp, chunk_id=k, step_period_s=f.step_period_s, joint_names=f.joint_names,
                        num_steps=f.num_steps, positions=f.positions, velocities=f.velocities,
                        latency_s=f.latency_s)
            k += 1
        rt.tick(t)
        t += dt
    return t


def test_holding_on_stale_chunks_says_why():
    rt = _controller()
    q = np.full(14, 0.1)
    stale = rt.config.stale_chunk_s
    t = _feed(rt, 10.0, 13.0, age_s=stale + 0.6, q=q)
    d = rt.diagnostics(t)[0]
    assert d.level == 1, d.message
    assert d.message.startswith("hold: chunks stale") and f"> stale_chunk_s {stale:g} s" in d.message
    assert f"chunk age p50 {stale + 0.6:.2f} s" in d.message and "num_threads" in d.message


def test_no_chunks_yet_is_explained():
    rt = _controller()
    names = list(rt.config.joint_names)
    t = 5.0
    for _ in range(50):
        rt.on_joint_state(t, names, np.zeros(14), t)
        rt.tick(t)
        t += 0.01
    d = rt.diagnostics(t)[0]  # groups wait (disabled) for the first chunk: the arms sit still, say why
    assert d.level == 1 and "no chunks received" in d.message


def test_fresh_chunks_do_not_blame_the_policy():
    rt = _controller()
    t = _feed(rt, 10.0, 12.0, age_s=0.1, q=np.full(14, 0.1))
    assert "stale" not in rt.diagnostics(t)[0].message


def test_demo_is_sized_for_a_small_cpu():
    import json

    p = _demo("policy_node", POLICY_SCHEMA)
    assert p["model.num_threads"] == 1
    robot = load_robot("demo_aloha")
    cfg = robot.controller_config()
    horizon = json.loads((REPO / "models" / "demo" / "config.json").read_text())["policy"]["action_horizon"]
    # a chunk is only useful while part of its horizon is ahead: the staleness bound must not exceed it
    assert cfg.stale_chunk_s <= horizon * robot.chunk_step_period_s + 1e-9
