"""Multi-camera sync in simulated time: slop, newest set, out-of-order, stopped stream, clock jumps, max age,
as-of joint-state join."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastwam_ros.perception.sync import MultiStreamSync

CAMS = ("head", "left", "right")


def make(**kw) -> MultiStreamSync:
    args = dict(slop_s=0.02, max_age_s=0.5, buffer_size=16, stream_timeout_s=1.0, clock_jump_threshold_s=1.0)
    args.update(kw)
    return MultiStreamSync(CAMS, **args)


def feed(sync, stamps_by_cam):
    for cam, stamps in stamps_by_cam.items():
        for t in stamps:
            assert sync.add(cam, t, (cam, t))


def test_basic_set_reports_skew_age_and_stamps():
    s = make()
    s.add("head", 10.000, "h")
    s.add("left", 10.005, "l")
    assert s.poll(10.02) is None and s.wait_reason == "waiting_for:right"
    s.add("right", 9.995, "r")
    out = s.poll(10.05)
    assert out is not None
    assert out.items == {"head": "h", "left": "l", "right": "r"}
    assert out.stamp_s == 10.000  # the reference (first) camera
    assert out.stamps_s == {"head": 10.0, "left": 10.005, "right": 9.995}
    assert out.skew_s == pytest.approx(0.010)
    assert out.age_s == pytest.approx(0.05)
    assert s.poll(10.06) is None  # nothing new: frames are never reused
    assert s.events["emitted"] == 1


def test_slop():
    s = make(slop_s=0.02)
    feed(s, {"head": [1.0], "left": [1.03], "right": [1.01]})
    assert s.poll(1.1) is None and s.wait_reason == "no_set_within_slop"
    s2 = make(slop_s=0.04)
    feed(s2, {"head": [1.0], "left": [1.03], "right": [1.01]})
    out = s2.poll(1.1)
    assert out is not None and out.skew_s == pytest.approx(0.03)


def test_newest_complete_set_is_chosen_and_older_frames_superseded():
    s = make()
    feed(s, {c: [1.0, 1.1, 1.2] for c in CAMS})
    out = s.poll(1.25)
    assert out.stamp_s == 1.2 and set(out.stamps_s.values()) == {1.2}
    assert s.events["superseded"] == 6
    assert s.poll(1.3) is None


def test_newest_complete_when_one_camera_lags():
    s = make()
    feed(s, {"head": [1.0, 1.1, 1.2], "left": [1.0, 1.1, 1.2], "right": [1.0, 1.101]})
    out = s.poll(1.25)
    assert out.stamps_s == {"head": 1.1, "left": 1.1, "right": 1.101}
    # the newer head/left frames stay buffered for the next set
    s.add("right", 1.205, None)
    out2 = s.poll(1.3)
    assert out2.stamps_s == {"head": 1.2, "left": 1.2, "right": 1.205}


def test_pairing_picks_the_closest_frames_not_just_the_latest():
    s = make(slop_s=0.02)
    feed(s, {"head": [2.000, 2.033], "left": [2.001], "right": [1.999, 2.034]})
    out = s.poll(2.1)  # head 2.033 has no partner in left within slop → the 2.00 set
    assert out.stamps_s == {"head": 2.0, "left": 2.001, "right": 1.999}


def test_frames_older_than_the_emitted_set_are_rejected():
    s = make()
    feed(s, {c: [1.2] for c in CAMS})
    assert s.poll(1.25) is not None
    assert not s.add("left", 1.15, None)
    assert s.rejections["older_than_emitted"] == 1
    assert not s.add("left", 1.2, None)
    assert s.rejections["older_than_emitted"] == 2


def test_out_of_order_arrivals():
    s = make()
    s.add("head", 1.1, "h11")
    s.add("head", 1.0, "h10")  # late
    s.add("left", 1.0, "l10")
    s.add("right", 1.0, "r10")
    assert s.events["out_of_order"] == 1
    out = s.poll(1.05)
    assert out.items == {"head": "h10", "left": "l10", "right": "r10"}
    s.add("right", 1.1, "r11")
    s.add("left", 1.1, "l11")
    assert s.poll(1.15).items == {"head": "h11", "left": "l11", "right": "r11"}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_any_arrival_order_gives_the_same_set(seed):
    rng = random.Random(seed)
    frames = []
    for c in CAMS:
        base = [round(1.0 + 0.1 * k + rng.uniform(-0.008, 0.008), 6) for k in range(6)]
        frames += [(c, t) for t in base]
    in_order = make()
    for c, t in sorted(frames, key=lambda f: f[1]):
        in_order.add(c, t, t)
    shuffled = make()
    rng.shuffle(frames)
    for c, t in frames:
        shuffled.add(c, t, t)
    a, b = in_order.poll(1.6), shuffled.poll(1.6)
    assert a is not None and a.stamps_s == b.stamps_s
    assert a.skew_s <= 0.02


def test_stopped_stream_is_reported():
    s = make()
    feed(s, {c: [1.0] for c in CAMS})
    assert s.poll(1.0) is not None
    for k in range(1, 20):  # head and left keep going, right stopped at 1.0
        t = 1.0 + 0.1 * k
        s.add("head", t, None)
        s.add("left", t, None)
        assert s.poll(t) is None
    assert s.wait_reason == "waiting_for:right"
    assert s.stopped_streams(2.9) == ["right"]
    status = s.stream_status(2.9)
    assert status["right"]["age_s"] == pytest.approx(1.9) and not status["head"]["stopped"]
    assert s.stopped_streams(1.5) == []  # not yet past stream_timeout_s
    assert s.events["evicted_unmatched"] == 2 * (19 - 16)  # two streams, 19 frames each, 16 kept


def test_never_seen_stream_is_stopped():
    s = make()
    s.add("head", 1.0, None)
    assert set(s.stopped_streams(1.0)) == {"left", "right"}


def test_clock_jump_backwards_resets_buffers():
    """Bag replay loop with use_sim_time: time and stamps restart from the beginning."""
    s = make()
    for k in range(5):
        t = 100.0 + 0.1 * k
        feed(s, {c: [t] for c in CAMS})
        assert s.poll(t + 0.01).stamp_s == t
    feed(s, {"head": [100.5]})  # a partial set pending when the loop restarts
    assert s.poll(5.0) is None  # clock went back by 95 s
    assert s.events["clock_jump_back"] == 1
    # without the reset these would be "older_than_emitted"
    feed(s, {c: [5.0] for c in CAMS})
    out = s.poll(5.02)
    assert out is not None and out.stamp_s == 5.0
    assert s.rejections["older_than_emitted"] == 0


def test_sustained_stamp_jump_resets_that_stream_only_and_logs_once():
    """A real time jump (bag loop) on one stream: after jump_confirm_count agreeing stamps that stream alone is
    reset (its confirming frames kept); the other streams' buffers are untouched; one log line."""
    logged = []
    s = make(jump_confirm_count=3, log=logged.append)
    feed(s, {c: [100.0] for c in CAMS})
    assert s.poll(100.01) is not None
    feed(s, {"left": [100.1], "right": [100.1]})
    assert not s.add("head", 3.0, "h0") and not s.add("head", 3.033, "h1")  # suspects, counted for head only
    assert s.rejections["implausible_stamp"] == 2 and s.events["time_jump"] == 0
    assert s.add("head", 3.066, "h2")  # third agreeing stamp: a real jump
    assert s.events["time_jump"] == 1 and len(logged) == 1 and "'head'" in logged[0]
    st = s.stream_status(3.1)
    assert st["head"]["time_jumps"] == 1 and st["head"]["stamp_rejections"] == {"implausible_stamp": 2}
    assert st["head"]["buffered"] == 3 and st["left"]["buffered"] == 1 and st["right"]["buffered"] == 1
    assert st["left"]["stamp_rejections"] == {} and st["left"]["time_jumps"] == 0
    for c in ("left", "right"):  # the others follow with their own jumps; no stream is ever reset twice
        for t in (3.0, 3.033, 3.066):
            s.add(c, t, c)
    assert s.events["time_jump"] == 3 and len(logged) == 3
    out = s.poll(3.07)
    assert out is not None and out.stamp_s == 3.066


def test_small_backwards_jitter_does_not_reset():
    s = make()
    feed(s, {c: [10.0] for c in CAMS})
    assert s.poll(10.3) is not None
    assert s.poll(10.1) is None  # 0.2 s back < 1.0 s threshold
    assert s.events["clock_jump_back"] == 0


def test_max_age_rejects_and_consumes_the_set_once():
    s = make(max_age_s=0.5)
    feed(s, {c: [1.0] for c in CAMS})
    assert s.poll(1.6) is None and s.wait_reason == "too_old"
    assert s.poll(1.7) is None
    assert s.rejections["too_old"] == 1
    feed(s, {c: [1.65] for c in CAMS})
    assert s.poll(1.7).stamp_s == 1.65


def test_age_boundary():
    s = make(max_age_s=0.5)
    feed(s, {c: [1.0] for c in CAMS})
    assert s.poll(1.5) is not None  # age == max_age is accepted


def test_future_stamps_rejected():
    s = make(max_future_s=0.1)
    feed(s, {c: [5.0] for c in CAMS})
    assert s.poll(4.0) is None
    assert s.rejections["future_stamp"] == 1


def test_duplicate_and_bad_stamps():
    s = make()
    assert s.add("head", 1.0, "a")
    assert not s.add("head", 1.0, "b")
    assert not s.add("head", float("nan"), "c")
    assert not s.add("nope", 1.0, "d")
    assert s.rejections == {"duplicate_stamp": 1, "bad_stamp": 1, "unknown_stream": 1}
    with pytest.raises(ValueError):
        s.poll(float("inf"))


# ---- joint-state as-of join ----------------------------------------------------------------------------
def make_j(**kw):
    return make(require_joint_state=True, joint_tolerance_s=0.05, **kw)


def test_joint_state_joined_as_of_the_frame_stamp():
    s = make_j()
    for t in (0.98, 1.0, 1.02):
        s.add_joint_state(t, f"js{t}")
    feed(s, {c: [1.0] for c in CAMS})
    out = s.poll(1.05)
    assert out.joint_state == "js1.0" and out.joint_stamp_s == 1.0  # equal stamp counts, later ones never
    feed(s, {c: [1.015] for c in CAMS})
    out = s.poll(1.06)
    assert out.joint_state == "js1.0"  # nearest not later (1.02 is later)


def test_joint_state_gap_rejects_the_set():
    s = make_j()
    s.add_joint_state(0.90, "old")
    s.add_joint_state(1.06, "new")  # newer than the frame: nothing in between will arrive
    feed(s, {c: [1.0] for c in CAMS})
    assert s.poll(1.07) is None
    assert s.rejections["joint_state_gap"] == 1 and s.wait_reason == "joint_state_gap"


def test_set_waits_for_a_late_joint_state():
    s = make_j()
    s.add_joint_state(0.90, "old")
    feed(s, {c: [1.0] for c in CAMS})
    assert s.poll(1.01) is None and s.wait_reason == "waiting_for:joint_states"
    s.add_joint_state(0.99, "late")
    out = s.poll(1.02)
    assert out.joint_state == "late" and out.joint_stamp_s == 0.99


def test_joint_stream_stopping_is_reported():
    s = make_j()
    s.add_joint_state(0.5, "x")
    feed(s, {c: [2.0] for c in CAMS})
    assert "joint_states" in s.stopped_streams(2.0)
    assert s.poll(2.0) is None  # waits ...
    assert s.poll(2.6) is None and s.rejections["too_old"] == 1  # ... until the set is too old


def test_tolerance_boundary():
    s = make_j()
    s.add_joint_state(0.95, "edge")
    s.add_joint_state(1.2, "later")
    feed(s, {c: [1.0] for c in CAMS})
    assert s.poll(1.01).joint_state == "edge"  # exactly joint_tolerance_s old is accepted
