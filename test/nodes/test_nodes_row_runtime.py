"""The ROS-free runtime behind row_executor_node: one message per command topic per step, the row kind as its
label, chunk requests, idle publication, and which node serves which robot file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from fastwam_ros.errors import ConfigError
from fastwam_ros.robot import load_robot, robot_from_dict
from fastwam_ros.runtime.chunks import chunk_fields
from fastwam_ros.runtime.controller_runtime import ControllerRuntime
from fastwam_ros.runtime.params import resolve
from fastwam_ros.runtime.row_runtime import RowRuntime
from fastwam_ros.runtime.schemas import CONTROLLER_SCHEMA, ROW_EXECUTOR_SCHEMA

REPO = Path(__file__).resolve().parents[2]
LIBERO = REPO / "config" / "robots" / "libero_franka.yaml"
DT = 0.05


def _chunk_kwargs(positions, names, stamp_s, chunk_id=0, step_period_s=DT):
    f = chunk_fields(positions, names, stamp_s=stamp_s, chunk_id=chunk_id, step_period_s=step_period_s)
    return dict(stamp=f.stamp, chunk_id=f.chunk_id, step_period_s=f.step_period_s, joint_names=f.joint_names,
                num_steps=f.num_steps, positions=f.positions, velocities=f.velocities)


def _runtime(**params) -> RowRuntime:
    return RowRuntime(resolve(ROW_EXECUTOR_SCHEMA, params), load_robot("libero_franka"))


def test_libero_episode_one_seven_value_message_per_step():
    rt = _runtime()
    names = list(rt.config.joint_names)
    assert list(rt.topics) == ["libero/action"] and names[-1] == "gripper_command"
    for k in range(30):
        out = rt.step(k * DT)
        assert [(m.topic, m.label, m.values) for m in out.messages] == \
            [("libero/action", "warmup", [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0])]
        assert not out.request
    out = rt.step(30 * DT)  # the first chunk is asked for one step after the warm-up (its last observation)
    assert out.request and out.row.kind == "idle" and out.messages[0].values == [0.0] * 6 + [-1.0]
    pos = np.tile([0.1, -0.2, 0.3, 0.0, 0.05, -0.05, 0.2], (32, 1))  # gripper 0.2 (closed in the data)
    assert rt.on_chunk(1.55, **_chunk_kwargs(pos, names, stamp_s=29 * DT + 0.01, chunk_id=4)) is None
    msgs = [rt.step((31 + k) * DT).messages[0] for k in range(11)]
    assert [m.label for m in msgs] == ["row"] * 10 + ["idle"]
    np.testing.assert_allclose(msgs[0].values, [0.1, -0.2, 0.3, 0.0, 0.05, -0.05, 1.0])  # +1 = close
    assert msgs[10].values == [0.0] * 6 + [1.0]
    d = dict(rt.diagnostics(3.0)[0].values)
    assert d["rows"] == "10" and d["blocks completed"] == "1" and d["idle steps waiting_chunk"] == "2"


def test_publish_idle_false_sends_nothing_while_waiting_but_keeps_the_warmup():
    rt = _runtime(publish_idle=False)
    assert all(rt.step(k * DT).messages for k in range(30))
    out = rt.step(30 * DT)
    assert out.row.kind == "idle" and out.messages == []


def test_malformed_and_mistimed_chunks_are_counted_with_a_reason():
    rt = _runtime()
    names = list(rt.config.joint_names)
    bad = _chunk_kwargs(np.zeros((32, 7)), names, stamp_s=0.0)
    bad["positions"] = bad["positions"][:-1]
    assert "bad_shape" in rt.on_chunk(0.0, **bad)
    assert "busy" in rt.on_chunk(0.0, **_chunk_kwargs(np.zeros((32, 7)), names, stamp_s=0.0))  # warming up
    assert "bad_step_period" in rt.on_chunk(0.0, **_chunk_kwargs(np.zeros((32, 7)), names, stamp_s=0.0,
                                                                  step_period_s=1 / 30))
    d = dict(rt.diagnostics(0.0)[0].values)
    assert d["rejected chunk:bad_shape"] == "1" and d["core refused busy"] == "1"
    assert d["core refused bad_step_period"] == "1"


def test_groups_on_separate_topics_get_separate_messages():
    doc = yaml.safe_load(LIBERO.read_text())
    doc["groups"][1]["command"]["topic"] = "libero/gripper_action"
    rt = RowRuntime(resolve(ROW_EXECUTOR_SCHEMA, {}), robot_from_dict(doc))
    out = rt.step(0.0)
    assert {m.topic: m.values for m in out.messages} == {"libero/action": [0.0] * 6, "libero/gripper_action": [-1.0]}


def test_each_node_refuses_the_other_nodes_robot_files():
    with pytest.raises(ConfigError, match="row_executor_node"):
        ControllerRuntime(resolve(CONTROLLER_SCHEMA, {}), load_robot("libero_franka"))
    with pytest.raises(ConfigError, match="controller_node"):
        RowRuntime(resolve(ROW_EXECUTOR_SCHEMA, {}), load_robot("demo_aloha"))


def test_ee_delta_actions_need_row_output():
    doc = yaml.safe_load(LIBERO.read_text())
    for g in doc["groups"]:
        g["command"]["output"] = "position"
    with pytest.raises(ConfigError, match="action_space"):
        robot_from_dict(doc)


def test_request_retry_zero_means_once():
    rt = _runtime(request_retry_s=0.0)
    assert rt.core.request_retry_s is None
    requests = [rt.step(k * DT).request for k in range(200)]
    assert requests.count(True) == 1


def test_launch_plan_runs_the_row_executor_for_row_robots():
    from fastwam_ros.runtime.launch_plan import executor_for, plan

    assert executor_for("libero_franka") == "row_executor_node"
    assert executor_for("robotwin_aloha_agilex") == "controller_node"
    assert executor_for("/nowhere/robot.yaml") == "controller_node"  # that node reports the missing file
    lp = plan({"demo": "false", "robot": "libero_franka", "checkpoint": "/w/libero.pt"}, REPO)
    assert [n.executable for n in lp.nodes] == ["policy_node", "row_executor_node"]
    assert lp.nodes[0].parameters[-1]["trigger.mode"] == "on_request" and lp.nodes[0].parameters[-1]["rtc.mode"] == "off"
    assert lp.nodes[1].parameters[-1]["robot_file"] == "libero_franka"


def test_a_reset_clock_does_not_lock_out_the_chunks_of_the_new_time_base():
    """A simulator reset or a bag loop under use_sim_time sends the clock back: the executor re-bases (logged
    once, in diagnostics); the block in progress goes on row by row, and the next chunk, stamped in the new time
    base, is accepted (before, every one was refused as ``non_increasing_stamp`` until the clock passed the old
    time again)."""
    rt = _runtime()
    names = list(rt.config.joint_names)
    pos = np.tile([0.1, -0.2, 0.3, 0.0, 0.05, -0.05, 0.2], (32, 1))
    t0 = 100.0
    for k in range(31):
        rt.step(t0 + k * DT)
    assert rt.on_chunk(t0 + 1.55, **_chunk_kwargs(pos, names, stamp_s=t0 + 29 * DT + 0.01)) is None
    kinds = [rt.step(t0 + (31 + k) * DT).row.kind for k in range(5)]  # 5 of the block's 10 rows
    assert kinds == ["row"] * 5 and rt.pop_notices() == []
    t1 = 3.0  # the clock restarts
    kinds = [rt.step(t1 + k * DT).row.kind for k in range(6)]  # the other 5 rows, then the wait
    assert kinds == ["row"] * 5 + ["idle"]
    lines = rt.pop_notices()
    assert len(lines) == 1 and "went back 98.750 s" in lines[0]
    assert rt.on_chunk(t1 + 0.35, **_chunk_kwargs(pos, names, stamp_s=t1 + 5 * DT + 0.01, chunk_id=1)) is None
    assert rt.step(t1 + 6 * DT).row.kind == "row"
    d = dict(rt.diagnostics(t1 + 0.4)[0].values)
    assert d["clock resets (time base changes)"] == "1" and "core refused non_increasing_stamp" not in d
