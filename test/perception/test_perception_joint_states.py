"""Joint states from several publishers merged per joint, per-stream stamp checks, and the shared joint-state rule
(duplicates, float32 range). Simulated time; each scenario is what a real robot stack does."""

from __future__ import annotations

import numpy as np
import pytest

from fastwam_ros.joint_state import (
    FLOAT32_MAX,
    JointStateError,
    check_joint_state,
    checked_float32,
)
from fastwam_ros.perception import ObservationPipeline, PerceptionConfig
from fastwam_ros.perception.sync import MultiStreamSync

ARM = [f"arm_j{i}" for i in range(12)]
GRIP = ["left_gripper", "right_gripper"]
IMG = np.random.default_rng(3).integers(0, 256, (12, 16, 3), dtype=np.uint8)


def pipeline(**kw) -> ObservationPipeline:
    cfg = {"cameras": [{"name": "head"}, {"name": "wrist"}], "tile_hw": [8, 8], "joint_names": ARM + GRIP,
           "slop_s": 0.01, "use_cv_bridge": False, **kw}
    return ObservationPipeline(PerceptionConfig.from_dict(cfg))


def run_robot(p, seconds=4.0, arm_stamp=None, grip_stamp=None, extra=None):
    """Cameras at 30 Hz, an arm driver at 100 Hz (12 joints), a gripper driver at 50 Hz (2 joints) on the same
    joint_states topic; polled at 100 Hz. ``*_stamp(t)`` overrides a publisher's header stamp. Returns the
    observations."""
    events = []
    for k in range(int(seconds * 100)):
        t = 10.0 + k / 100
        events.append((t, "arm"))
        if k % 2 == 0:
            events.append((t + 0.003, "grip"))
    for k in range(int(seconds * 30)):
        events.append((10.0 + k / 30 + 0.001, "cam"))
    if extra:
        events += extra
    observations = []
    for t, what in sorted(events, key=lambda e: e[0]):
        if what == "arm":
            s = t if arm_stamp is None else arm_stamp(t)
            p.add_joint_state(s, ARM, np.full(12, t))
        elif what == "grip":
            s = t if grip_stamp is None else grip_stamp(t)
            p.add_joint_state(s, GRIP, [t + 1000.0, t + 2000.0])
        elif what == "cam":
            p.add_decoded("head", IMG, t)
            p.add_decoded("wrist", IMG, t)
        else:
            what(p, t)
        obs = p.poll(t + 0.004)
        if obs is not None:
            observations.append(obs)
    return observations


def test_two_publishers_give_observations_at_the_camera_rate():
    p = pipeline()
    obs = run_robot(p, seconds=4.0)
    assert len(obs) >= 4.0 * 30 - 2  # every camera set (the first may wait for a joint state)
    o = obs[-1]
    # each joint holds its own publisher's latest sample at or before the frame stamp
    arm_t = np.floor(o.stamp_s * 100 + 1e-6) / 100
    np.testing.assert_allclose(o.proprio[:12], np.float32(arm_t))
    grip_t = o.proprio[12] - 1000.0
    assert o.stamp_s - 0.05 <= grip_t <= o.stamp_s and o.proprio[13] == pytest.approx(grip_t + 2000.0, abs=1e-3)
    assert o.joint_stamp_s == pytest.approx(min(arm_t, grip_t), abs=1e-4)  # the oldest sample used
    assert "missing_joint" not in p.stats()["rejections"]


def test_a_stalled_publisher_is_named_and_the_set_is_not_built_from_stale_values():
    p = pipeline()
    obs = run_robot(p, seconds=2.0, grip_stamp=lambda t: t if t < 10.5 else None)  # gripper stamps broken after 0.5 s
    assert 10 <= len(obs) <= 17  # only while the gripper was fresh (+ its join tolerance)
    st = p.stats(12.0)
    # once the gripper's joints are older than stream_timeout_s (1 s) every camera set is counted, joint named
    assert st["rejections"]["missing_joint"] >= 10 and st["last_missing_joint"] == "left_gripper"
    assert st["streams"]["joint_states"]["stamp_rejections"] == {"bad_stamp": 75}
    assert st["streams"]["joint_states"]["stale_joints"] == GRIP and not st["streams"]["joint_states"]["stopped"]


def test_zero_stamped_publisher_is_rejected_for_itself_and_resets_nothing():
    """Issue 14 item 2: a 50 Hz gripper publisher with unset (zero) stamps used to reset every buffer on each
    message (0 observations). Now its messages are refused and counted; cameras and the arm are untouched."""
    p = pipeline(joint_names=ARM)  # the gripper's joints are not part of the proprio
    obs = run_robot(p, seconds=4.0, grip_stamp=lambda t: 0.0)
    assert len(obs) >= 4.0 * 30 - 2
    st = p.stats(14.0)
    assert st["rejections"]["joint_zero_stamp"] == 200
    assert "time_jump" not in st["events"] and "clock_jump_back" not in st["events"]
    assert st["streams"]["joint_states"]["stamp_rejections"] == {"zero_stamp": 200}


def test_one_bad_camera_stamp_is_rejected_for_that_camera_only():
    p = pipeline()
    bad = [(12.0 + 0.0105, lambda p, t: p.add_decoded("wrist", IMG, 0.0)),
           (12.0 + 0.0205, lambda p, t: p.add_decoded("wrist", IMG, float("nan"))),
           (12.0 + 0.0305, lambda p, t: p.add_decoded("wrist", IMG, 1e9)),  # far future
           (12.0 + 0.0405, lambda p, t: p.add_decoded("head", IMG, 3.0))]  # far past
    obs = run_robot(p, seconds=4.0, extra=bad)
    assert len(obs) >= 4.0 * 30 - 2
    st = p.stats(14.0)
    assert st["streams"]["wrist"]["stamp_rejections"] == {"zero_stamp": 1, "bad_stamp": 1, "implausible_stamp": 1}
    assert st["streams"]["head"]["stamp_rejections"] == {"implausible_stamp": 1}
    assert "time_jump" not in st["events"]


def test_bag_loop_every_stream_jumps_back_and_observations_resume():
    """A rosbag loop with use_sim_time: the clock and every stream's stamps restart 10 s earlier; the streams still
    in the old time base are reset once (one log line) and observations continue in the new time base."""
    p = pipeline()
    loop = lambda t: t if t < 12.0 else t - 10.0  # noqa: E731
    events = []
    for k in range(400):
        t = 10.0 + k / 100
        events.append((t, lambda p, t: p.add_joint_state(loop(t), ARM, np.zeros(12))))
        events.append((t + 0.002, lambda p, t: p.add_joint_state(loop(t), GRIP, [0.0, 0.0])))
    for k in range(120):
        t = 10.0 + k / 30 + 0.001
        events.append((t, lambda p, t: (p.add_decoded("head", IMG, loop(t)), p.add_decoded("wrist", IMG, loop(t)))))
    got = []
    for t, fn in sorted(events, key=lambda e: e[0]):
        fn(p, t)
        obs = p.poll(loop(t) + 0.004)
        if obs is not None:
            got.append(obs.stamp_s)
    assert sum(s < 4.0 for s in got) >= 55  # after the loop: stamps 2 s .. 4 s, at the camera rate
    st = p.stats()
    assert st["events"]["clock_jump_back"] == 1 and "time_jump" not in st["events"]
    assert st["rejections"].get("implausible_stamp", 0) <= 2 and "older_than_emitted" not in st["rejections"]


def test_isolated_garbage_stamps_never_reset_a_stream():
    s = MultiStreamSync(("a",), slop_s=0.01, max_age_s=0.5, jump_confirm_count=3)
    for k in range(50):
        assert s.add("a", 100.0 + k * 0.1, k)
        assert not s.add("a", 5.0 + 1000 * (k % 2), -k)  # alternating far past / far future: never agree
    assert s.events["time_jump"] == 0 and s.rejections["implausible_stamp"] == 50


# ---- the shared rule -----------------------------------------------------------------------------------------
def test_out_of_float32_range_position_is_rejected_not_inf():
    p = pipeline(joint_names=["a", "b"])
    p.add_decoded("head", IMG, 1.0)
    p.add_decoded("wrist", IMG, 1.0)
    p.add_joint_state(0.99, ["a", "b"], [0.5, 1e300])
    assert p.poll(1.0) is None
    st = p.stats()
    assert st["rejections"] == {"proprio:out_of_range_joint": 1} and "'b'" in st["last_error"][
        "proprio:out_of_range_joint"]
    with pytest.raises(JointStateError) as ei:
        checked_float32([1.0, -1e39], ["x", "y"])
    assert ei.value.reason == "out_of_range_joint" and ei.value.joint == "y"
    np.testing.assert_array_equal(checked_float32([FLOAT32_MAX, -1.5], ["x", "y"]), np.float32([FLOAT32_MAX, -1.5]))


def test_duplicate_joint_names_reject_the_whole_message():
    p = pipeline(joint_names=["a", "b"])
    assert not p.add_joint_state(0.99, ["a", "b", "a"], [0.1, 0.2, 0.3])
    st = p.stats()
    assert st["rejections"] == {"joint_state:duplicate_joint": 1} and "'a'" in st["last_error"][
        "joint_state:duplicate_joint"]
    with pytest.raises(JointStateError) as ei:
        check_joint_state(["x", "y", "y"], [1, 2, 3])
    assert ei.value.reason == "duplicate_joint" and ei.value.joint == "y"


@pytest.mark.parametrize("names,positions,reason", [
    (["a", "b"], [1.0], "bad_joint_state"),
    (["a", ""], [1.0, 2.0], "bad_joint_state"),
    ("ab", [1.0, 2.0], "bad_joint_state"),
    (["a", "b"], ["x", "y"], "bad_joint_state"),
    (["a", 3], [1.0, 2.0], "bad_joint_state"),
])
def test_malformed_joint_states_are_refused_at_the_door(names, positions, reason):
    p = pipeline(joint_names=["a", "b"])
    assert not p.add_joint_state(1.0, names, positions)
    assert p.stats()["rejections"] == {f"joint_state:{reason}": 1}


def test_receiver_time_is_the_reference_when_given():
    """With now_s, even a stream's first stamp is checked: far past / far future of the receiver clock is refused
    for that stream; a camera whose clock is consistently off is accepted only after jump_confirm_count stamps."""
    s = MultiStreamSync(("a", "b"), slop_s=0.01, max_age_s=0.5, jump_confirm_count=3)
    assert not s.add("a", 5000.0, 0, now_s=100.0) and not s.add("b", 10.0, 0, now_s=100.0)
    assert s.rejections["implausible_stamp"] == 2 and s.events["time_jump"] == 0
    assert s.add("a", 100.0, 1, now_s=100.01) and s.add("b", 100.0, 1, now_s=100.01)
    assert s.poll(100.02).stamp_s == 100.0
    for k in range(3):  # "b" now stamps 40 s ahead, consistently: a real (if wrong) clock
        ok = s.add("b", 140.1 + k / 30, k, now_s=100.1 + k / 30)
    assert ok and s.events["time_jump"] == 1 and s.stream_status(100.2)["b"]["time_jumps"] == 1
    assert s.stream_status(100.2)["a"]["time_jumps"] == 0


def test_a_simulation_starting_at_zero_is_not_an_unset_stamp():
    s = MultiStreamSync(("a", "b"), slop_s=0.01, max_age_s=0.5)
    assert s.add("a", 0.0, 0, now_s=0.0) and s.add("b", 0.0, 0)
    assert s.poll(0.0).stamp_s == 0.0
    assert s.add("a", 5.0, 1, now_s=5.0) and not s.add("a", 0.0, 2, now_s=5.0)  # later: an unset stamp
    assert s.rejections == {"zero_stamp": 1}


def test_single_publisher_join_matches_the_merged_join():
    """The one-publisher shortcut of JointStore.join gives what the general per-joint merge gives: the same data
    also fed as two publishers that together carry every joint (the merge path) must join identically."""
    from fastwam_ros.perception.proprio import JointStore

    names = ARM + GRIP
    rng = np.random.default_rng(11)
    one = JointStore(names, tolerance_s=0.05)
    split = JointStore(names, tolerance_s=0.05)
    stamps = np.sort(rng.choice(np.arange(0.0, 3.0, 0.01), 120, replace=False))
    for t in rng.permutation(stamps):  # out of order too
        pos = rng.normal(size=len(names))
        assert one.add(float(t), names, pos) in ("ok", "out_of_order")
        split.add(float(t), ARM, pos[: len(ARM)])
        split.add(float(t), GRIP, pos[len(ARM):])
    for t in np.concatenate([rng.uniform(-0.2, 3.3, 300), stamps, stamps + 0.05, stamps + 0.0501]):
        a, b = one.join(float(t)), split.join(float(t))
        assert a[0] == b[0] and a[2] == b[2]
        if a[0] == "ok":
            assert a[1].dtype == np.float64
            np.testing.assert_array_equal(a[1], b[1])
            newest = stamps[stamps <= t].max()  # independently: the newest sample at or before t
            assert a[2] == newest and t - newest <= 0.05 + 1e-9
        else:
            assert a[1] == b[1]
