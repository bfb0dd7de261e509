"""The robot file loader: one file per robot -> the cores' PerceptionConfig / ControllerConfig."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fastwam_ros.errors import ConfigError
from fastwam_ros.robot import load_robot, resolve_robot_path

REPO = Path(__file__).resolve().parents[2]
ROBOTS = REPO / "config" / "robots"


def _doc(name: str = "towel_fold_bimanual") -> dict:
    return yaml.safe_load((ROBOTS / f"{name}.yaml").read_text())


@pytest.mark.parametrize("path", sorted(ROBOTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_robot_file_loads(path):
    r = load_robot(path)
    assert r.name == path.stem
    pc, cc = r.perception_config(), r.controller_config()
    assert pc.camera_names == r.camera_names and pc.joint_names == r.state_names
    assert set(cc.joint_names) <= set(r.joints)


def test_state_columns_default_to_joints_and_can_differ():
    """`state` (optional) names the proprio columns when they are not the action columns (LIBERO: 8 vs 7)."""
    towel = load_robot("towel_fold_bimanual")
    assert towel.state == () and towel.state_names == towel.joints
    doc = _doc()
    doc["state"] = ["ee_x", "ee_y", "ee_z"]
    r = load_robot(doc)
    assert r.perception_config().joint_names == ("ee_x", "ee_y", "ee_z") and r.joint_names == towel.joints
    doc["state"] = ["ee_x", "ee_x"]
    with pytest.raises(ConfigError, match="state"):
        load_robot(doc)


def test_bare_name_resolves_under_config_robots():
    assert resolve_robot_path("demo_aloha") == ROBOTS / "demo_aloha.yaml"
    with pytest.raises(ConfigError, match="no robot file 'no_such_robot'"):
        load_robot("no_such_robot")


def test_towel_robot_facts_reach_the_cores():
    r = load_robot("towel_fold_bimanual")
    pc, cc = r.perception_config(), r.controller_config()
    assert (pc.layout, pc.out_hw, pc.slop_s) == ("robotwin", (384, 320), 0.05)
    assert pc.camera("left_wrist").pre_resize_hw == (240, 320)
    # per-joint limit lists land on the right joints
    assert cc.limits["left_joint4"].max_velocity == 3.0 and cc.limits["left_joint1"].max_velocity == 2.0
    assert cc.limits["right_gripper"].max_acceleration == 20.0 and cc.limits["right_joint2"].upper == 1.26
    assert (cc.control_rate_hz, cc.blend_window_s, cc.stale_chunk_s) == (100.0, 0.1, 1.0)
    assert r.chunk_step_period_s == pytest.approx(1 / 30)
    assert r.output_mode == "trajectory" and r.group("left_arm").command_topic == "left_arm_controller/joint_trajectory"
    assert r.camera("head").qos == "sensor_data"


def test_demo_robot_matches_what_the_demo_checkpoint_was_trained_with():
    """Independent source: the checkpoint's perception.json written when it was trained."""
    r = load_robot("demo_aloha")
    trained = json.loads((REPO / "models" / "demo" / "perception.json").read_text())
    pc = r.perception_config()
    assert list(pc.camera_names) == [c["name"] for c in trained["cameras"]]
    assert list(pc.joint_names) == trained["joint_names"]
    assert (pc.layout, list(pc.top_hw), list(pc.bottom_tile_hw)) == (
        trained["layout"], trained["top_hw"], trained["bottom_tile_hw"])
    # limits from the simulator's URDF, accelerations from the file
    from fastwam_ros.sim.robot import joint_limits

    cc = r.controller_config()
    assert cc.limits["left_elbow"].upper == pytest.approx(joint_limits()["left_elbow"].upper)
    assert cc.limits["left_elbow"].max_acceleration == 12.0 and cc.limits["left_gripper"].max_acceleration == 40.0


def test_sync_and_control_accept_every_core_field_by_name():
    d = _doc()
    d["sync"]["buffer_size"] = 7
    d["control"]["hold_decel_fraction"] = 0.25
    r = load_robot(d)
    assert r.perception_config().buffer_size == 7
    assert r.controller_config().hold_decel_fraction == 0.25


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["sync"].update(slop=0.1), "sync.slop"),
    (lambda d: d.update(camera=[]), "camera"),
    (lambda d: d["groups"][0]["joints"].append("elbow_x"), "groups[0].joints"),
    (lambda d: d["groups"][0]["limits"].update(max_velocity=[1.0, 2.0]), "groups[0].limits.max_velocity"),
    (lambda d: d["groups"][1]["command"].update(output="position"), "groups"),
    (lambda d: d["cameras"][1].update(qos="fast"), "cameras[1].qos"),
    (lambda d: d["control"].update(chunk_step_period_s=0), "control.chunk_step_period_s"),
    (lambda d: d["control"].update(blend_window=0.2), "control.blend_window"),
    (lambda d: d["tiling"].update(output_hw=[380, 320]), "output_hw"),
    (lambda d: d["groups"][0]["limits"].pop("max_acceleration"), "max_acceleration"),
])
def test_errors_name_the_field(edit, field):
    d = _doc()
    edit(d)
    with pytest.raises(ConfigError) as ei:
        load_robot(d)
    assert field in str(ei.value)


def test_one_config_error_class():
    from fastwam_ros.control import ConfigError as C
    from fastwam_ros.model.config import ConfigError as M
    from fastwam_ros.perception import ConfigError as P
    from fastwam_ros.training.errors import TrainConfigError

    assert C is M is P is ConfigError and issubclass(TrainConfigError, ConfigError)
    assert issubclass(ConfigError, ValueError)


def test_readme_example_robot_file_loads():
    text = (REPO / "README.md").read_text()
    section = text[text.index("## The robot file"):]
    block = section[section.index("```yaml") + len("```yaml"):]
    r = load_robot(yaml.safe_load(block[:block.index("```")]))
    assert r.name == "my_bimanual" and r.perception_config().out_hw == (384, 320)
    cc = r.controller_config()
    assert cc.limits["left_joint4"].max_velocity == 3.0 and cc.limits["right_joint1"].max_acceleration == 8.0
