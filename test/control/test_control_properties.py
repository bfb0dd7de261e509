"""Property tests: whatever the chunk stream (including NaN, inf, huge jumps, wrong joint counts, unknown names,
out-of-order stamps, irregular or backwards tick times, e-stops, enables), the output never exceeds a position,
velocity or acceleration limit.

Each example is one random stream, generated from a hypothesis-drawn seed and knobs (drawing arrays through
hypothesis would be slow); the checks run vectorised over the whole stream. The examples add up to
10,000+ streams; ``scripts/stress_controller.py`` runs many more with the same generator.
"""

from __future__ import annotations

import os

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fastwam_ros.control import Chunk, ChunkController, ControllerConfig
from fastwam_ros.control.stress import StreamRecorder, check_stream, random_stream
from fastwam_ros.control.synthetic import bimanual_config_dict

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
# fraction of the examples drawn (mutation testing runs these tests once per mutant: FASTWAM_PROPERTY_SCALE=0.02)
SCALE = float(os.environ.get("FASTWAM_PROPERTY_SCALE", "1"))


def _n(examples: int) -> int:
    return max(10, int(examples * SCALE))


def _check(seed, mode, adversarial, n_events, with_trajectory=False):
    rec = random_stream(seed, mode=mode, adversarial=adversarial, n_events=n_events,
                        with_trajectory=with_trajectory)
    problems = check_stream(rec)
    assert not problems, f"seed={seed} mode={mode}: {problems[:3]}"
    return rec


@settings(max_examples=_n(3000), deadline=None)
@given(seed=SEEDS, n_events=st.integers(4, 16))
def test_splice_streams_respect_limits(seed, n_events):
    _check(seed, "splice", 0.2, n_events)


@settings(max_examples=_n(2500), deadline=None)
@given(seed=SEEDS, n_events=st.integers(4, 16))
def test_ensemble_streams_respect_limits(seed, n_events):
    _check(seed, "ensemble", 0.2, n_events)


@settings(max_examples=_n(2000), deadline=None)
@given(seed=SEEDS, n_events=st.integers(4, 16))
def test_replace_streams_respect_limits(seed, n_events):
    _check(seed, "replace", 0.2, n_events)


@settings(max_examples=_n(2500), deadline=None)
@given(seed=SEEDS, mode=st.sampled_from(["splice", "ensemble", "replace"]), n_events=st.integers(4, 16))
def test_adversarial_streams_respect_limits(seed, mode, n_events):
    _check(seed, mode, 0.8, n_events)


@settings(max_examples=_n(100), deadline=None)
@given(seed=SEEDS, mode=st.sampled_from(["splice", "ensemble", "replace"]))
def test_trajectory_points_respect_limits(seed, mode):
    rec = _check(seed, mode, 0.3, 12, with_trajectory=True)
    assert rec["trajectory_points"] >= 0


def test_the_checker_catches_violations():
    """The checker itself can fail: corrupt a recorded stream and it must complain."""
    rec = random_stream(123, mode="splice", adversarial=0.0, n_events=40)
    assert not check_stream(rec)
    valid = np.isfinite(rec["p"]).all(axis=1)
    i = int(np.flatnonzero(valid)[-1])
    for key, bump in (("p", 100.0), ("v", 100.0), ("a", 1e4)):
        bad = {k: (v.copy() if hasattr(v, "copy") else v) for k, v in rec.items()}
        bad[key][i, 0] += bump
        assert check_stream(bad), key


def _linear_chunk(cfg, stamp, slope, offset, h=32, dt=1 / 30):
    t = stamp + dt * np.arange(h)
    pos = np.array([[0.04 if "gripper" in n else offset + slope * (ti - stamp) for n in cfg.joint_names]
                    for ti in t])
    return Chunk(stamp_s=stamp, step_period_s=dt, joint_names=cfg.joint_names, positions=pos)


def test_scripted_stream_through_hold_estop_enable_ramp_and_splices_is_seen_within_limits():
    """One scripted stream through every mode, with the arms running at max velocity towards their upper limit
    when the plan runs out (hold at a gentle 0.1·a_max, so only the braking bound stops them in time) and when
    the e-stop comes; then reset, enable (re-anchor + ramp) and spliced chunks. The robot's view (finite
    differences of the commanded positions) stays within every limit throughout."""
    d = bimanual_config_dict(arm_joints=2, splice_mode="splice", blend_window_s=0.1, enable_ramp_s=0.3,
                             hold_decel_fraction=0.1, stale_chunk_s=5.0, trajectory_horizon_s=0.1,
                             trajectory_point_period_s=0.02)
    cfg = ControllerConfig.from_dict(d)
    ctl = ChunkController(cfg)
    rec = StreamRecorder(ctl)
    names = list(cfg.joint_names)
    meas = np.array([0.04 if "gripper" in n else 1.5 for n in names])
    ctl.update_joint_state(0.0, names, meas)
    ctl.enable(0.0)
    t, modes = 0.0, set()

    def ticks(t, until, chunks=()):
        pending = list(chunks)
        while t < until - 1e-9:
            t = round(t + cfg.period_s, 9)
            while pending and pending[0].stamp_s <= t:
                ctl.submit_chunk(pending.pop(0), t)
            out = ctl.tick(t)
            modes.update(g.mode for g in out.groups.values())
            ctl.update_joint_state(t, names, rec.add(t, out))
        return t

    # runs towards the upper limit (2.8) at max velocity; chunks end at 1.0 s -> hold near the limit
    t = ticks(t, 1.0, [_linear_chunk(cfg, 0.02 + 0.2 * k, 2.0, 1.5 + 2.0 * 0.2 * k, h=8) for k in range(4)])
    t = ticks(t, 2.5)
    assert "hold" in modes
    # back down, spliced, then e-stop at speed towards the lower limit
    t = ticks(t, 3.6, [_linear_chunk(cfg, t + 0.01 + 0.1 * k, -2.0, 2.7 - 0.2 * k) for k in range(10)])
    ctl.estop(t)
    t = ticks(t, 4.5)
    ctl.reset(t)
    ctl.enable(t)
    t = ticks(t, 6.0, [_linear_chunk(cfg, t + 0.05 + 0.1 * k, 1.0, 0.5 + 0.1 * k) for k in range(14)])
    assert {"hold", "estop", "ramp", "running"} <= modes, modes
    r = rec.result()
    assert r["anchored"].any()
    assert not check_stream(r), check_stream(r)
    # the stream did reach the limits' neighbourhood at speed (so the braking rule was exercised)
    arms = [j for j, n in enumerate(names) if "gripper" not in n]
    assert r["p"][:, arms].max() > 2.7
