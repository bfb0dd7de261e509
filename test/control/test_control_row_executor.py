"""RowExecutor in simulated time: the official LIBERO loop (30 no-op steps, then rows 0..9 of each 32-step chunk,
one per environment step, gripper post-processed), safe idle rows while waiting, stale / early / mid-block
chunks refused and counted."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from fastwam_ros.control import Chunk, ControllerConfig
from fastwam_ros.control.row_executor import RowExecutor
from fastwam_ros.robot import load_robot

DT = 0.05  # LIBERO: 20 Hz
NAMES = ("eef_delta_x", "eef_delta_y", "eef_delta_z", "eef_delta_rx", "eef_delta_ry", "eef_delta_rz",
         "gripper_command")
NOOP = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0]  # LIBERO's dummy action (official num_steps_wait no-op)


def libero() -> ControllerConfig:
    spec = load_robot("libero_franka")
    assert spec.chunk_step_period_s == DT and spec.output_mode == "rows"
    return spec.controller_config()


def chunk_rows(cid: int, h: int = 32) -> np.ndarray:
    """A [h, 7] chunk whose deltas name their chunk and row (|value| < 1: inside the OSC range); the gripper
    column (data convention 0 = close .. 1 = open) alternates open / closed every 3 rows."""
    p = np.zeros((h, 7))
    p[:, :6] = (cid % 10) * 0.05 + 0.001 * np.arange(h)[:, None] + 0.0001 * np.arange(6)[None, :]
    p[:, 6] = np.where((np.arange(h) // 3) % 2 == 0, 0.9, 0.1)
    return p


def official_gripper(g: np.ndarray) -> np.ndarray:
    """By hand: data 0.9 (open) -> LIBERO -1 (open); 0.1 (closed) -> +1 (close)."""
    return np.where(g > 0.5, -1.0, 1.0)


def official_actions(n_steps: int, wait: int = 30, replan: int = 10) -> list[tuple[list[float], int | None]]:
    """An independent re-implementation of eval_libero_single.py's loop with a paused environment: the action
    of every step and the id of the chunk it came from (None for no-ops). Chunk c is inferred at the c-th
    replan."""
    out, plan, c = [], deque(), 0
    for t in range(n_steps):
        if t < wait:
            out.append((NOOP, None))
            continue
        if not plan:
            rows = chunk_rows(c)[:replan].copy()
            rows[:, 6] = official_gripper(rows[:, 6])
            plan.extend((list(r), c) for r in rows)
            c += 1
        out.append(plan.popleft())
    return out


def run(ex: RowExecutor, n_steps: int, latency_steps: int = 0, stamp_offset_s: float = 0.01):
    """Drive the executor one step per DT. A requested chunk is observed just after the requesting step
    (``stamp_offset_s`` later) and delivered ``latency_steps`` steps later, before that step's row is taken.
    The executor requests one step after a block ends, so each wait has ``latency_steps + 1`` idle steps."""
    rows, pending, cid = [], [], 0
    for k in range(n_steps):
        t = k * DT
        for _due, ch in [p for p in pending if p[0] <= k]:
            assert ex.submit_chunk(ch, t).accepted
        pending = [p for p in pending if p[0] > k]
        rows.append(ex.step(t))
        if ex.take_request(t):
            ch = Chunk(stamp_s=t + stamp_offset_s, step_period_s=DT, joint_names=NAMES, positions=chunk_rows(cid),
                       chunk_id=cid)
            pending.append((k + 1 + latency_steps, ch))
            cid += 1
    return rows


@pytest.mark.parametrize("latency_steps", [0, 3])
def test_rows_reproduce_the_official_loop(latency_steps):
    """What an environment that steps on warm-up and row messages only (paused while waiting, as the official
    simulator) receives is exactly the official action sequence."""
    ex = RowExecutor(libero(), DT)
    rows = run(ex, 30 + 10 * (11 + latency_steps), latency_steps=latency_steps)
    stepped = [r for r in rows if r.kind != "idle"]
    ref = official_actions(len(stepped))
    assert len(stepped) == 130
    for r, (values, cid) in zip(stepped, ref):
        np.testing.assert_allclose(r.values, values, atol=1e-12, err_msg=f"step {r.step}")
        assert r.chunk_id == cid and r.kind == ("warmup" if cid is None else "row")
    assert ex.metrics.idle["waiting_chunk"] == 10 * (1 + latency_steps) and ex.metrics.warmup_steps == 30
    assert ex.metrics.blocks_completed == 10 and ex.metrics.rows == 100


def test_exactly_n_rows_per_chunk_in_order():
    ex = RowExecutor(libero(), DT)
    rows = [r for r in run(ex, 30 + 4 * 14, latency_steps=3) if r.kind == "row"]
    by_chunk: dict[int, list[int]] = {}
    for r in rows:
        by_chunk.setdefault(r.chunk_id, []).append(r.row)
    assert len(by_chunk) >= 3
    for cid, idx in by_chunk.items():
        if cid != max(by_chunk):  # the last one may be cut by the end of the run
            assert idx == list(range(10)), (cid, idx)
    # each row is that chunk's row (deltas unchanged, gripper post-processed)
    for r in rows:
        src = chunk_rows(r.chunk_id)[r.row]
        np.testing.assert_allclose(r.values[:6], src[:6])
        assert r.values[6] == official_gripper(src[6])


def test_idle_rows_are_zero_deltas_with_the_gripper_held():
    ex = RowExecutor(libero(), DT)
    rows = run(ex, 30 + 3 * 15, latency_steps=4)
    idle = [r for r in rows if r.kind == "idle"]
    assert len(idle) == ex.metrics.idle["waiting_chunk"] == 3 * 5  # 5 per wait, 3 waits (the run ends with the 3rd block)
    for i, r in enumerate(rows):
        if r.kind != "idle":
            continue
        assert r.reason == "waiting_chunk"
        np.testing.assert_array_equal(r.values[:6], 0.0)  # never the last delta again
        before = [q for q in rows[:i] if q.kind == "row"]
        held = before[-1].values[6] if before else -1.0  # before any row: LIBERO's no-op gripper (open)
        assert r.values[6] == held
        if before:
            assert np.any(before[-1].values[:6] != 0.0)  # the last delta was a real motion
    # the gripper of the 10th row of chunk 0 (row 9: 9 // 3 = 3, odd -> closed -> +1) is what the wait holds
    assert rows[30 + 5 + 10].kind == "idle" and rows[30 + 5 + 10].values[6] == 1.0
    assert ex.metrics.max_wait_steps == 5


def test_warmup_sends_no_ops_and_refuses_chunks():
    ex = RowExecutor(libero(), DT)
    ch = Chunk(stamp_s=0.0, step_period_s=DT, joint_names=NAMES, positions=chunk_rows(0))
    for k in range(30):
        assert ex.phase == "warmup" and not ex.take_request(k * DT)
        r = ex.submit_chunk(ch, k * DT)
        assert not r.accepted and r.reason == "busy"
        row = ex.step(k * DT)
        assert row.kind == "warmup" and row.step == k
        np.testing.assert_array_equal(row.values, NOOP)
    # the request goes out one step later, when the observation after the last no-op is there
    assert ex.phase == "waiting" and not ex.take_request(29 * DT)
    assert ex.step(30 * DT).kind == "idle" and ex.take_request(30 * DT) and not ex.take_request(30.5 * DT)
    assert ex.metrics.rejections["busy"] == 30 and ex.metrics.requests == 1
    # a chunk observed during the warm-up does not show the settled scene: refused, and asked for again at once
    r = ex.submit_chunk(Chunk(stamp_s=28 * DT, step_period_s=DT, joint_names=NAMES, positions=chunk_rows(0)), 31 * DT)
    assert r.reason == "predates_request" and ex.take_request(31 * DT) and ex.metrics.requests == 2
    assert ex.submit_chunk(Chunk(stamp_s=29 * DT + 0.01, step_period_s=DT, joint_names=NAMES,
                                 positions=chunk_rows(0)), 31 * DT).accepted
    assert ex.step(31 * DT).kind == "row"


def test_stale_chunks_are_refused_and_counted():
    cfg = libero().with_overrides(warmup_steps=0, stale_chunk_s=0.3)
    ex = RowExecutor(cfg, DT)
    old = Chunk(stamp_s=0.0, step_period_s=DT, joint_names=NAMES, positions=chunk_rows(0))
    r = ex.submit_chunk(old, 0.31)
    assert not r.accepted and r.reason == "stale_chunk" and ex.metrics.rejections["stale_chunk"] == 1
    assert ex.step(0.35).kind == "idle"
    fresh = Chunk(stamp_s=0.1, step_period_s=DT, joint_names=NAMES, positions=chunk_rows(1), chunk_id=1)
    assert ex.submit_chunk(fresh, 0.39).accepted  # 0.29 s old: inside the bound
    assert ex.step(0.4).chunk_id == 1


def test_a_chunk_mid_block_does_not_replan_until_n_rows_are_executed():
    ex = RowExecutor(libero().with_overrides(warmup_steps=0), DT)
    assert ex.submit_chunk(Chunk(stamp_s=0.0, step_period_s=DT, joint_names=NAMES, positions=chunk_rows(0)), 0.0)
    got = []
    for k in range(10):
        t = k * DT
        if k == 3:  # a newer chunk (e.g. continuous triggering) arrives while rows 0..9 of chunk 0 execute
            r = ex.submit_chunk(Chunk(stamp_s=t, step_period_s=DT, joint_names=NAMES, positions=chunk_rows(7),
                                      chunk_id=7), t)
            assert not r.accepted and r.reason == "busy"
        got.append(ex.step(t))
    assert [(r.chunk_id, r.row) for r in got] == [(0, i) for i in range(10)]
    # after the 10th row: a chunk observed before that row was executed is refused, a later one is taken
    t = 10 * DT
    r = ex.submit_chunk(Chunk(stamp_s=8 * DT, step_period_s=DT, joint_names=NAMES, positions=chunk_rows(8),
                              chunk_id=8), t)
    assert r.reason == "predates_request"
    assert ex.submit_chunk(Chunk(stamp_s=9 * DT + 0.01, step_period_s=DT, joint_names=NAMES,
                                 positions=chunk_rows(9), chunk_id=9), t).accepted
    assert (ex.step(t).chunk_id, ex.metrics.rejections["busy"], ex.metrics.rejections["predates_request"]) == (9, 1, 1)


def test_short_chunk_and_clipping():
    ex = RowExecutor(libero().with_overrides(warmup_steps=0), DT)
    p = chunk_rows(0, h=4)
    p[2, 0] = 1.7  # outside the OSC input range [-1, 1] of the preset
    assert ex.submit_chunk(Chunk(stamp_s=0.0, step_period_s=DT, joint_names=NAMES, positions=p), 0.0).accepted
    rows = [ex.step(k * DT) for k in range(6)]
    assert [r.kind for r in rows] == ["row"] * 4 + ["idle"] * 2
    assert rows[2].values[0] == 1.0 and ex.metrics.clipped_rows == 1


def _joint_config(**kw) -> ControllerConfig:
    big = {"max_velocity": 10.0, "max_acceleration": 100.0, "lower": -3.0, "upper": 3.0}
    return ControllerConfig.from_dict({
        "groups": [{"name": "arm", "kind": "arm", "joints": ["j0", "j1"], "limits": big},
                   {"name": "hand", "kind": "gripper", "joints": ["g"], "limits": big}],
        "replace_execute_steps": 3, **kw})


def test_joint_positions_idle_holds_the_last_row_and_sends_nothing_before_it():
    ex = RowExecutor(_joint_config(), DT)
    first = ex.step(0.0)
    assert first.kind == "idle" and first.values is None
    p = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9], [1.0, 1.1, 1.2]])
    assert ex.submit_chunk(Chunk(stamp_s=0.01, step_period_s=DT, joint_names=("j0", "j1", "g"), positions=p), DT)
    rows = [ex.step(k * DT) for k in range(1, 6)]
    assert [r.kind for r in rows] == ["row", "row", "row", "idle", "idle"]
    np.testing.assert_array_equal(rows[3].values, [0.7, 0.8, 0.9])  # a hold of the last absolute target
    np.testing.assert_array_equal(rows[4].values, [0.7, 0.8, 0.9])


@pytest.mark.parametrize(("chunk", "reason"), [
    ("not a chunk", "bad_type"),
    (Chunk(stamp_s=float("nan"), step_period_s=DT, joint_names=NAMES, positions=chunk_rows(0)), "bad_stamp"),
    (Chunk(stamp_s=0.0, step_period_s=1 / 30, joint_names=NAMES, positions=chunk_rows(0)), "bad_step_period"),
    (Chunk(stamp_s=0.0, step_period_s=DT, joint_names=NAMES, positions=chunk_rows(0)[:, :6]), "bad_shape"),
    (Chunk(stamp_s=0.0, step_period_s=DT, joint_names=NAMES, positions=np.full((32, 7), np.nan)), "non_finite"),
    (Chunk(stamp_s=0.0, step_period_s=DT, joint_names=NAMES[:6] + ("x",), positions=chunk_rows(0)),
     "unknown_joint"),
    (Chunk(stamp_s=0.0, step_period_s=DT, joint_names=NAMES[:6] + ("eef_delta_x",), positions=chunk_rows(0)),
     "duplicate_joint"),
    (Chunk(stamp_s=2.0, step_period_s=DT, joint_names=NAMES, positions=chunk_rows(0)), "future_stamp"),
])
def test_bad_chunks_are_counted_never_raised(chunk, reason):
    ex = RowExecutor(libero().with_overrides(warmup_steps=0), DT)
    r = ex.submit_chunk(chunk, 0.0)
    assert not r.accepted and r.reason == reason and ex.metrics.rejections[reason] == 1
    assert ex.step(0.0).kind == "idle"


def test_bad_time_step_is_idle_and_not_an_episode_step():
    ex = RowExecutor(libero(), DT)
    r = ex.step(float("nan"))
    assert r.kind == "idle" and r.reason == "bad_time" and ex.step_index == 0
    assert not ex.submit_chunk(Chunk(stamp_s=0.0, step_period_s=DT, joint_names=NAMES, positions=chunk_rows(0)),
                               float("inf")).accepted


def test_estop_latches_idle_and_reset_starts_a_new_episode():
    ex = RowExecutor(libero().with_overrides(warmup_steps=2), DT)
    run(ex, 5)  # 2 no-ops, then rows of chunk 0
    ex.estop(0.25)
    r = ex.step(0.25)
    assert r.kind == "idle" and r.reason == "estop" and r.values[:6].tolist() == [0.0] * 6
    assert ex.submit_chunk(Chunk(stamp_s=0.26, step_period_s=DT, joint_names=NAMES, positions=chunk_rows(1)),
                           0.26).reason == "estopped"
    ex.reset(1.0)
    assert ex.phase == "warmup" and ex.step_index == 0
    np.testing.assert_array_equal(ex.step(1.0).values, NOOP)  # gripper back to the no-op's open
    ex.step(1.05)
    assert ex.submit_chunk(Chunk(stamp_s=0.9, step_period_s=DT, joint_names=NAMES, positions=chunk_rows(2)),
                           1.1).reason == "predates_request"


def test_requests_repeat_only_after_the_retry_period():
    ex = RowExecutor(libero().with_overrides(warmup_steps=0), DT, request_retry_s=0.5)
    assert ex.take_request(0.0) and not ex.take_request(0.3) and ex.take_request(0.5)
    assert ex.take_request(0.2)  # time jumped back (a new clock): ask again
    assert ex.metrics.requests == 3
    once = RowExecutor(libero().with_overrides(warmup_steps=0), DT)
    assert once.take_request(0.0) and not once.take_request(100.0)
