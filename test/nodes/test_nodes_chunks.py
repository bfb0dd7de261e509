"""Chunk ⇄ message-field conversion."""

from __future__ import annotations

import numpy as np
import pytest

from fastwam_ros.runtime.chunks import (
    ChunkFormatError,
    chunk_fields,
    chunk_plot_markers,
    end_pose,
    join_stamp,
    parse_chunk,
    split_stamp,
    trajectory_fields,
)

NAMES = [f"left_joint{i}" for i in range(1, 4)] + [f"right_joint{i}" for i in range(1, 4)]


def test_stamp_split_round_trip():
    assert split_stamp(1.5) == (1, 500_000_000)
    assert split_stamp(2.9999999999) == (3, 0)
    assert split_stamp(-0.25) == (-1, 750_000_000)
    assert abs(join_stamp(*split_stamp(1795242036.5262479)) - 1795242036.5262479) < 1e-6
    with pytest.raises(ValueError):
        split_stamp(float("nan"))


def test_chunk_fields_round_trip_through_parse():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(5, 6))
    f = chunk_fields(p, NAMES, stamp_s=12.25, chunk_id=7, step_period_s=0.1, latency_s=0.2,
                     inference_s=0.1, model_id="fastwam:demo", committed_steps=2)
    assert f.num_steps == 5 and len(f.positions) == 30 and len(f.velocities) == 30
    back = parse_chunk(stamp=f.stamp, chunk_id=f.chunk_id, step_period_s=f.step_period_s,
                       joint_names=f.joint_names, num_steps=f.num_steps, positions=f.positions,
                       velocities=f.velocities, committed_steps=f.committed_steps)
    np.testing.assert_allclose(back.positions, p)
    assert back.stamp_s == 12.25 and back.committed_steps == 2
    # velocities are finite differences in units/s
    lin = np.outer(np.arange(5) * 0.1, np.ones(6)) * 3.0  # 3 units/s
    f2 = chunk_fields(lin, NAMES, stamp_s=0.0, chunk_id=0, step_period_s=0.1)
    np.testing.assert_allclose(np.asarray(f2.velocities), 3.0)


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"positions": [0.0] * 5}, "bad_shape"),
        ({"joint_names": []}, "no_joint_names"),
        ({"joint_names": ["a", "a"]}, "duplicate_joint_names"),
        ({"num_steps": 0}, "empty_chunk"),
        ({"step_period_s": 0.0}, "bad_step_period"),
        ({"positions": [float("nan")] * 4}, "non_finite"),
        ({"velocities": [0.0] * 3}, "bad_shape"),
    ],
)
def test_parse_rejects_with_reason(change, reason):
    kw = dict(stamp=(1, 0), chunk_id=0, step_period_s=0.1, joint_names=["a", "b"], num_steps=2,
              positions=[0.0] * 4)
    kw.update(change)
    with pytest.raises(ChunkFormatError) as ei:
        parse_chunk(**kw)
    assert ei.value.reason == reason


def test_trajectory_fields_per_arm():
    p = np.arange(24, dtype=float).reshape(4, 6)
    t = trajectory_fields(p, NAMES, ["right_joint1", "right_joint2"], step_period_s=0.05, stamp_s=None,
                          first_step=1, time_offset_s=0.01)
    assert t.stamp == (0, 0) and t.joint_names == ["right_joint1", "right_joint2"]
    assert t.positions[0] == [9.0, 10.0] and len(t.positions) == 3
    assert t.times_from_start[0] == (0, 10_000_000) and t.times_from_start[2] == (0, 110_000_000)
    np.testing.assert_allclose(t.velocities, 120.0)  # 6 units per 0.05 s
    with pytest.raises(KeyError, match="nope"):
        trajectory_fields(p, NAMES, ["nope"], step_period_s=0.05, stamp_s=1.0)


def test_end_pose_and_markers():
    p = np.arange(12, dtype=float).reshape(2, 6)
    names, pos = end_pose(p, NAMES, prefix="ghost/")
    assert names[0] == "ghost/left_joint1" and pos == [6, 7, 8, 9, 10, 11]
    ms = chunk_plot_markers(p, NAMES, step_period_s=0.5, seconds_to_m=1.0, units_to_m=1.0,
                            origin=(0.0, 0.0, 0.0), lane_spacing_m=0.5)
    assert len(ms) == 6 and ms[1].points[1] == (0.5, -0.5, 7.0) and ms[3].text == "right_joint1"


def test_parse_chunk_boundaries_and_messages():
    """The validation's edges: one step is a chunk; any single non-finite value (positions or velocities)
    rejects it; a NaN/inf step period is bad; the message says what was wrong; every field comes through."""
    kw = dict(stamp=(3, 250_000_000), chunk_id=7, step_period_s=0.05, joint_names=["a", "b"], num_steps=1,
              positions=[0.1, -0.2])
    one = parse_chunk(**kw, velocities=[1.0, 2.0], committed_steps=1, latency_s=0.125, model_id="m")
    assert one.positions.shape == (1, 2) and one.positions.tolist() == [[0.1, -0.2]]
    assert one.velocities.tolist() == [[1.0, 2.0]] and one.velocities.dtype == np.float64
    assert (one.stamp_s, one.chunk_id, one.step_period_s, one.joint_names) == (3.25, 7, 0.05, ["a", "b"])
    assert (one.committed_steps, one.latency_s, one.model_id) == (1, 0.125, "m")
    assert parse_chunk(**kw).velocities is None  # no velocities sent: none, not zeros
    two = parse_chunk(**{**kw, "num_steps": 2, "positions": [1.0, 2.0, 3.0, 4.0]})
    assert two.positions.tolist() == [[1.0, 2.0], [3.0, 4.0]]  # row-major: step, then joint
    cases = [
        ({"step_period_s": float("nan")}, "bad_step_period", "step_period_s=nan"),
        ({"step_period_s": float("inf")}, "bad_step_period", "step_period_s=inf"),
        ({"step_period_s": -0.1}, "bad_step_period", "step_period_s=-0.1"),
        ({"num_steps": -3}, "empty_chunk", "num_steps=-3"),
        ({"positions": [0.0, float("inf")]}, "non_finite", "positions contain NaN/inf"),
        ({"velocities": [0.0, float("nan")]}, "non_finite", "velocities contain NaN/inf"),
        ({"positions": [0.0] * 3}, "bad_shape", "3 positions for 1 steps x 2 joints"),
        ({"velocities": [0.0] * 4}, "bad_shape", "4 velocities for 1 steps x 2 joints"),
        ({"joint_names": ["a", "b", "a"], "positions": [0.0] * 3}, "duplicate_joint_names", "['a', 'b', 'a']"),
        ({"joint_names": []}, "no_joint_names", "joint_names is empty"),
    ]
    for change, reason, detail in cases:
        with pytest.raises(ChunkFormatError) as ei:
            parse_chunk(**{**kw, **change})
        assert ei.value.reason == reason
        assert str(ei.value) == f"{reason}: {detail}", str(ei.value)
        assert isinstance(ei.value, ValueError)


def test_parse_chunk_carries_rtc_fields_and_the_counted_variant_counts_the_reason():
    from fastwam_ros.runtime.chunks import parse_chunk_counted
    from fastwam_ros.runtime.stats import ReasonCounter

    kw = dict(stamp=(1, 0), chunk_id=0, step_period_s=0.1, joint_names=["a"], num_steps=1, positions=[0.5])
    c = parse_chunk(**kw, rtc_mode="guided", guided_steps=np.int64(3))
    assert c.rtc_mode == "guided" and c.guided_steps == 3 and type(c.guided_steps) is int
    d = parse_chunk(**kw)
    assert (d.rtc_mode, d.guided_steps, d.committed_steps, d.latency_s, d.model_id) == ("off", 0, 0, 0.0, "")
    ints = parse_chunk(**{**kw, "positions": [1]}, velocities=[2])  # integer values still give float arrays
    assert ints.positions.dtype == np.float64 and ints.velocities.dtype == np.float64
    rej = ReasonCounter()
    ok, err = parse_chunk_counted(rej, **kw)
    assert err is None and ok.positions.tolist() == [[0.5]]
    bad, err = parse_chunk_counted(rej, **{**kw, "positions": [float("nan")]})
    assert bad is None and err == "non_finite: positions contain NaN/inf"
    assert rej.as_dict() == {"chunk:non_finite": 1}
