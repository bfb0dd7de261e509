"""Config validation, proprio assembly, and the observation pipeline's counting of every rejection."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fastwam_ros.perception import (
    ConfigError,
    ObservationPipeline,
    PerceptionConfig,
    ProprioError,
    assemble_proprio,
    preprocess_frames,
)

BASE = {"cameras": [{"name": "head"}, {"name": "wrist", "transport": "compressed"}], "tile_hw": [16, 16]}


def with_(**kw):
    d = {**BASE, **kw}
    return d


# ---- config ----------------------------------------------------------------------------------------------------
def test_defaults_and_geometry():
    c = PerceptionConfig.from_dict(BASE)
    assert c.layout == "horizontal" and c.out_hw == (16, 32)
    assert c.camera_names == ("head", "wrist") and c.camera("wrist").transport == "compressed"
    assert PerceptionConfig.from_dict(c.to_dict()) == c  # round trip


@pytest.mark.parametrize(
    "bad,field",
    [
        ({"cameras": []}, "cameras"),
        ({"cameras": "head"}, "cameras"),
        ({"cameras": [{"topic": "/x"}]}, "cameras[0].name"),
        ({"cameras": [{"name": "a"}, {"name": "a"}]}, "cameras[1].name"),
        ({"cameras": [{"name": "a", "transport": "theora"}]}, "cameras[0].transport"),
        ({"cameras": [{"name": "a", "transform": "rot45"}]}, "cameras[0].transform"),
        ({"cameras": [{"name": "a", "pre_resize_hw": [240]}]}, "cameras[0].pre_resize_hw"),
        ({"cameras": [{"name": "a", "colour": "red"}]}, "cameras[0].colour"),
        ({"layout": "diagonal"}, "layout"),
        ({"layout": "robotwin"}, "cameras"),  # 2 cameras
        ({"tile_hw": [0, 16]}, "tile_hw"),
        ({"tile_hw": [16.5, 16]}, "tile_hw"),
        ({"output_hw": [16, 16]}, "output_hw"),
        ({"slop_s": -0.1}, "slop_s"),
        ({"slop_s": "fast"}, "slop_s"),
        ({"max_age_s": 0}, "max_age_s"),
        ({"max_age_s": float("nan")}, "max_age_s"),
        ({"joint_state_tolerance_s": -1}, "joint_state_tolerance_s"),
        ({"joint_names": ["a", "a"]}, "joint_names"),
        ({"joint_names": "a"}, "joint_names"),
        ({"buffer_size": 0}, "buffer_size"),
        ({"resize_backend": "cuda"}, "resize_backend"),
        ({"use_cv_bridge": "yes"}, "use_cv_bridge"),
        ({"grid_rows": 0, "layout": "grid"}, "grid_rows"),
        ({"sloppiness": 1}, "sloppiness"),
    ],
)
def test_config_errors_name_the_field(bad, field):
    with pytest.raises(ConfigError) as ei:
        PerceptionConfig.from_dict(with_(**bad))
    assert ei.value.field == field
    assert field in str(ei.value)


def test_robotwin_width_mismatch_names_the_field():
    d = {"cameras": [{"name": n} for n in "abc"], "layout": "robotwin", "bottom_tile_hw": [128, 100]}
    with pytest.raises(ConfigError) as ei:
        PerceptionConfig.from_dict(d)
    assert ei.value.field == "bottom_tile_hw"


def test_direct_construction_is_validated_too():
    from fastwam_ros.perception import CameraConfig

    with pytest.raises(ConfigError):
        PerceptionConfig(cameras=(CameraConfig("a"),), slop_s=-1.0)


# ---- proprio ---------------------------------------------------------------------------------------------------
def test_proprio_order_is_the_config_order():
    out = assemble_proprio(["c", "a"], ["a", "b", "c"], [1.0, 2.0, 3.0])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [3.0, 1.0])


@pytest.mark.parametrize(
    "names,positions,reason,joint",
    [
        (["a", "b"], [1.0, 2.0], "missing_joint", "c"),
        (["a", "b", "c"], [1.0, float("nan"), 3.0], "nonfinite_joint", "b"),
        (["a", "b", "c"], [1.0, 2.0, float("-inf")], "nonfinite_joint", "c"),
        (["a", "b", "c"], [1.0, 2.0], "bad_joint_state", None),
        (["a", "b", "c"], ["x", "y", "z"], "bad_joint_state", None),
    ],
)
def test_proprio_rejections_name_the_joint(names, positions, reason, joint):
    with pytest.raises(ProprioError) as ei:
        assemble_proprio(["a", "b", "c"], names, positions)
    assert ei.value.reason == reason and ei.value.joint == joint
    if joint:
        assert repr(joint) in str(ei.value)


def test_proprio_ignores_nan_in_unused_joints():
    out = assemble_proprio(["a"], ["a", "b"], [1.0, float("nan")])
    np.testing.assert_array_equal(out, [1.0])


# ---- pipeline --------------------------------------------------------------------------------------------------
def rgb_msg(img, stamp=None):
    h, w, _ = img.shape
    msg = SimpleNamespace(height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3, data=img.tobytes())
    if stamp is not None:
        sec = int(stamp)
        msg.header = SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=int(round((stamp - sec) * 1e9))))
    return msg


def png_msg(img):
    import cv2

    ok, enc = cv2.imencode(".png", np.ascontiguousarray(img[:, :, ::-1]))
    return SimpleNamespace(format="png", data=enc.tobytes())


IMG_A = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
IMG_B = np.random.default_rng(1).integers(0, 256, (20, 20, 3), dtype=np.uint8)


def pipeline(**kw):
    return ObservationPipeline(PerceptionConfig.from_dict(with_(joint_names=["j1", "j2"], **kw)))


def test_end_to_end_observation():
    p = pipeline()
    assert p.add_image("head", rgb_msg(IMG_A, stamp=5.25))  # header stamp
    assert p.add_image("wrist", png_msg(IMG_B), stamp_s=5.26)  # explicit stamp
    assert p.add_joint_state(5.24, ["j2", "j1", "x"], [0.2, 0.1, 9.0])
    obs = p.poll(5.30)
    assert obs is not None
    np.testing.assert_array_equal(obs.frame, preprocess_frames({"head": IMG_A, "wrist": IMG_B}, p.config))
    np.testing.assert_allclose(obs.proprio, [0.1, 0.2])
    assert obs.joint_names == ("j1", "j2") and obs.joint_stamp_s == 5.24
    assert obs.stamp_s == pytest.approx(5.25) and obs.skew_s == pytest.approx(0.01)
    assert obs.age_s == pytest.approx(0.05)
    assert obs.camera_stamps_s == {"head": pytest.approx(5.25), "wrist": 5.26}
    assert obs.image_rgb.shape == (16, 32, 3) and obs.image_rgb.dtype == np.uint8
    st = p.stats(5.30)
    assert st["cameras"] == {"head": {"received": 1, "decoded": 1, "rejected": {}},
                             "wrist": {"received": 1, "decoded": 1, "rejected": {}}}
    assert st["rejections"] == {} and st["events"]["emitted"] == 1 and st["stopped_streams"] == []


def test_bad_messages_are_counted_never_raised():
    p = pipeline()
    bad = rgb_msg(IMG_A)
    bad.data = bad.data[:-1]
    assert not p.add_image("head", bad, stamp_s=1.0)
    weird = rgb_msg(IMG_A)
    weird.encoding = "hsv8"
    assert not p.add_image("head", weird, stamp_s=1.0)
    assert not p.add_image("wrist", SimpleNamespace(format="jpeg", data=b"\xff\xd8\xffgarbage"), stamp_s=1.0)
    assert not p.add_image("head", rgb_msg(IMG_A))  # no header, no stamp_s
    assert not p.add_image("tail", rgb_msg(IMG_A), stamp_s=1.0)
    assert not p.add_image("head", object(), stamp_s=1.0)
    st = p.stats()
    assert st["rejections"] == {
        "decode:truncated": 2,  # the short rgb8 data, and the JPEG without its EOI marker
        "decode:unknown_encoding": 1,
        "no_stamp": 1,
        "unknown_camera": 1,
        "decode:bad_message": 1,
    }
    assert st["cameras"]["head"] == {"received": 4, "decoded": 0, "rejected": {
        "decode:truncated": 1, "decode:unknown_encoding": 1, "no_stamp": 1, "decode:bad_message": 1}}
    assert st["cameras"]["wrist"]["rejected"] == {"decode:truncated": 1}
    assert "hsv8" in st["last_error"]["decode:unknown_encoding"]


def test_jpeg_garbage_with_eoi_is_bad_compressed():
    p = pipeline()
    assert not p.add_image("wrist", SimpleNamespace(format="jpeg", data=b"\xff\xd8\xff" + b"\0" * 50 + b"\xff\xd9"),
                           stamp_s=1.0)
    assert p.stats()["rejections"] == {"decode:bad_compressed": 1}


def test_proprio_failure_is_counted_with_the_joint_name():
    p = pipeline()
    p.add_image("head", rgb_msg(IMG_A), stamp_s=2.0)
    p.add_image("wrist", png_msg(IMG_B), stamp_s=2.0)
    p.add_joint_state(1.99, ["j1"], [0.0])  # j2 missing: another publisher may still send it, so the set waits
    assert p.poll(2.01) is None and p.stats()["wait_reason"] == "waiting_for:joint_states:j2"
    assert p.poll(2.6) is None  # ... until it is too old: counted as a missing joint, named
    st = p.stats()
    assert st["rejections"] == {"missing_joint": 1} and st["wait_reason"] == "missing_joint:j2"
    p.add_image("head", rgb_msg(IMG_A), stamp_s=2.1)
    p.add_image("wrist", png_msg(IMG_B), stamp_s=2.1)
    p.add_joint_state(2.09, ["j1", "j2"], [0.0, float("nan")])
    assert p.poll(2.11) is None
    assert p.stats()["rejections"]["proprio:nonfinite_joint"] == 1


def test_no_joint_names_means_no_joint_state_needed():
    p = ObservationPipeline(PerceptionConfig.from_dict(BASE))
    p.add_image("head", rgb_msg(IMG_A), stamp_s=3.0)
    p.add_image("wrist", png_msg(IMG_B), stamp_s=3.0)
    obs = p.poll(3.0)
    assert obs is not None and obs.proprio.shape == (0,)


def test_sync_rejections_reach_stats_and_stopped_streams_are_named():
    p = pipeline(max_age_s=0.1)
    p.add_image("head", rgb_msg(IMG_A), stamp_s=1.0)
    p.add_image("wrist", png_msg(IMG_B), stamp_s=1.0)
    p.add_joint_state(1.0, ["j1", "j2"], [0, 0])
    assert p.poll(2.0) is None
    st = p.stats(2.0)
    assert st["rejections"] == {"too_old": 1}
    assert set(st["stopped_streams"]) == set() and st["wait_reason"] == "too_old"
    st = p.stats(3.5)
    assert set(st["stopped_streams"]) == {"head", "wrist", "joint_states"}


def test_add_decoded_and_reset():
    p = pipeline()
    assert p.add_decoded("head", IMG_A, 1.0)
    assert not p.add_decoded("head", IMG_A.astype(np.float32), 1.1)
    p.reset()
    p.add_decoded("wrist", IMG_B, 1.0)
    p.add_joint_state(1.0, ["j1", "j2"], [0, 0])
    assert p.poll(1.0) is None  # head's frame was dropped by the reset
    assert p.stats()["rejections"] == {"bad_image": 1}
