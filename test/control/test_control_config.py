"""Controller config validation and URDF limit parsing."""

from __future__ import annotations

import math

import pytest

from fastwam_ros.control import ConfigError, ControllerConfig, URDFError, parse_urdf_limits
from fastwam_ros.control.synthetic import bimanual_config_dict

URDF = """<?xml version="1.0"?>
<robot name="duo">
  <link name="base"/><link name="l1"/><link name="l2"/><link name="l3"/><link name="f1"/><link name="f2"/>
  <joint name="left_joint1" type="revolute">
    <parent link="base"/><child link="l1"/>
    <limit lower="-1.5" upper="1.25" velocity="3.0" effort="40"/>
  </joint>
  <joint name="left_joint2" type="continuous">
    <parent link="l1"/><child link="l2"/>
    <limit velocity="4.0" effort="10"/>
  </joint>
  <joint name="left_gripper" type="prismatic">
    <parent link="l2"/><child link="f1"/>
    <limit lower="0.0" upper="0.05" velocity="0.1" effort="5"/>
  </joint>
  <joint name="left_gripper_mimic" type="prismatic">
    <parent link="l2"/><child link="f2"/>
    <mimic joint="left_gripper" multiplier="1"/>
    <limit lower="0.0" upper="0.05" velocity="0.1" effort="5"/>
  </joint>
  <joint name="fixed_mount" type="fixed"><parent link="base"/><child link="l3"/></joint>
  <transmission name="t1"><joint name="left_joint1"><hardwareInterface>x</hardwareInterface></joint></transmission>
</robot>
"""


def test_bimanual_dict_builds_in_group_order():
    cfg = ControllerConfig.from_dict(bimanual_config_dict())
    assert [g.name for g in cfg.groups] == ["left_arm", "left_gripper", "right_arm", "right_gripper"]
    assert len(cfg.joint_names) == 14
    assert cfg.joint_names[6] == "left_gripper"
    assert cfg.limits["left_joint1"].max_acceleration == 8.0
    assert cfg.period_s == pytest.approx(0.01)


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["groups"][0].update(kind="leg"), "groups[0].kind"),
    (lambda d: d["groups"][1].update(joints=[]), "groups[1].joints"),
    (lambda d: d["groups"][0]["limits"].pop("max_acceleration"), "joint_limits.left_joint1.max_acceleration"),
    (lambda d: d["groups"][0]["limits"].update(max_velocity=-1.0), "groups[0].limits.max_velocity"),
    (lambda d: d["groups"][0]["limits"].update(lower=3.0, upper=-3.0), "joint_limits.left_joint1.lower"),
    (lambda d: d["groups"][0]["limits"].update(speed=1.0), "groups[0].limits.speed"),
    (lambda d: d["groups"][2].update(joints=["left_joint1"]), "groups[2].joints"),
    (lambda d: d.update(handoff_margin_s=0.001), "handoff_margin_s"),
    (lambda d: d.update(splice_mode="average"), "splice_mode"),
    (lambda d: d.update(control_rate_hz=0), "control_rate_hz"),
    (lambda d: d.update(blend_window_s=1e-200), "blend_window_s"),  # w**2 underflows: ZeroDivisionError in a tick
    (lambda d: d.update(hold_decel_fraction=1.5), "hold_decel_fraction"),
    (lambda d: d.update(stale_chunk_s=float("nan")), "stale_chunk_s"),
    (lambda d: d.update(replace_execute_steps=0), "replace_execute_steps"),
    (lambda d: d.update(bogus=1), "bogus"),
    (lambda d: d.update(joint_limits={"elbow": {"max_velocity": 1}}), "joint_limits.elbow"),
    (lambda d: d.update(groups=[]), "groups"),
])
def test_bad_fields_are_named(mutate, field):
    d = bimanual_config_dict()
    mutate(d)
    with pytest.raises(ConfigError) as e:
        ControllerConfig.from_dict(d)
    assert str(e.value).startswith(field), str(e.value)


def test_joint_limits_override_tightens_group_limits():
    d = bimanual_config_dict(joint_limits={"left_joint2": {"max_velocity": 0.5, "upper": 1.0, "max_jerk": 50}})
    cfg = ControllerConfig.from_dict(d)
    lim = cfg.limits["left_joint2"]
    assert (lim.max_velocity, lim.upper, lim.lower, lim.max_jerk) == (0.5, 1.0, -2.8, 50.0)
    # a looser value cannot widen the group's limit
    d = bimanual_config_dict(joint_limits={"left_joint2": {"max_velocity": 99.0}})
    assert ControllerConfig.from_dict(d).limits["left_joint2"].max_velocity == 2.0


def test_parse_urdf_limits_types_and_skips():
    lim = parse_urdf_limits(URDF)
    assert set(lim) == {"left_joint1", "left_joint2", "left_gripper"}  # mimic, fixed, transmission skipped
    assert (lim["left_joint1"].lower, lim["left_joint1"].upper, lim["left_joint1"].max_velocity) == (-1.5, 1.25, 3.0)
    assert lim["left_joint1"].effort == 40.0
    assert lim["left_joint2"].lower == -math.inf and lim["left_joint2"].upper == math.inf
    assert lim["left_joint2"].max_velocity == 4.0
    assert lim["left_gripper"].joint_type == "prismatic" and lim["left_gripper"].upper == 0.05


@pytest.mark.parametrize("bad, match", [
    ("<robot><joint name='a' type='revolute'>", "malformed XML"),
    ("<model/>", "root element"),
    ("<robot><joint name='a' type='revolute'/></robot>", "no <limit>"),
    ("<robot><joint name='a' type='revolute'><limit lower='x' upper='1' velocity='1'/></joint></robot>",
     "not a number"),
])
def test_parse_urdf_limits_errors(bad, match):
    with pytest.raises(URDFError, match=match):
        parse_urdf_limits(bad)


def test_config_from_urdf_takes_positions_and_velocity_but_needs_acceleration():
    d = {"groups": [{"name": "left_arm", "joints": ["left_joint1", "left_joint2"], "kind": "arm"},
                    {"name": "left_gripper", "joints": ["left_gripper"], "kind": "gripper"}]}
    with pytest.raises(ConfigError, match=r"joint_limits\.left_joint1\.max_acceleration.*URDF"):
        ControllerConfig.from_dict(d, urdf_xml=URDF)
    d["groups"][0]["limits"] = {"max_acceleration": 5.0, "max_velocity": 3.5}
    d["groups"][1]["limits"] = {"max_acceleration": 1.0}
    cfg = ControllerConfig.from_dict(d, urdf_xml=URDF)
    assert cfg.limits["left_joint1"].max_velocity == 3.0  # URDF tighter than the group's 3.5
    assert cfg.limits["left_joint2"].max_velocity == 3.5
    assert cfg.limits["left_joint2"].upper == math.inf
    assert cfg.limits["left_gripper"].upper == 0.05 and cfg.limits["left_gripper"].max_acceleration == 1.0
    with pytest.raises(URDFError):
        ControllerConfig.from_dict(d, urdf_xml="<robot")
