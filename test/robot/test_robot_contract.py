"""The checkpoint's robot contract, checked at deploy (FastWAMPolicy.from_pretrained(..., robot=) and the node)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import yaml

from fastwam_ros.contract import CONTRACT_FILE, check_checkpoint, parse_joint_map, read_checkpoint_contract
from fastwam_ros.errors import ConfigError, ContractError

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "models" / "demo"
DEMO_ROBOT = REPO / "config" / "robots" / "demo_aloha.yaml"


def demo_robot(**edits) -> dict:
    d = yaml.safe_load(DEMO_ROBOT.read_text())
    for fn in edits.values():
        fn(d)
    return d


def rename_joint(old: str, new: str):
    def edit(d):
        d["joints"] = [new if j == old else j for j in d["joints"]]
        for g in d["groups"]:
            g["joints"] = [new if j == old else j for j in g["joints"]]
            g["limits"]["max_velocity"] = 3.0  # the renamed joint is not in the simulator's URDF
    return edit


def double_frame(d):
    d["tiling"] = {"layout": "robotwin", "top_hw": [128, 256], "bottom_tile_hw": [64, 128], "output_hw": [192, 256]}
    d["sim"]["camera_hw"] = {"head": [128, 256], "left_wrist": [96, 192], "right_wrist": [96, 192]}


def other_cameras(d):
    d["cameras"] = [d["cameras"][0], d["cameras"][2], d["cameras"][1]]  # wrists swapped


def other_period(d):
    d["control"]["chunk_step_period_s"] = 0.05


@pytest.fixture(scope="module")
def json_only_checkpoint(tmp_path_factory) -> Path:
    """The demo checkpoint's small files without any weights: a check that passes here ran before any model."""
    out = tmp_path_factory.mktemp("ckpt") / "demo_json_only"
    out.mkdir()
    for f in DEMO.glob("*.json"):
        shutil.copy(f, out / f.name)
    return out


def test_demo_checkpoint_carries_its_contract():
    c = json.loads((DEMO / CONTRACT_FILE).read_text())
    per = json.loads((DEMO / "perception.json").read_text())
    meta = json.loads((DEMO / "meta.json").read_text())
    assert c["joint_names"] == per["joint_names"] and c["camera_names"] == [x["name"] for x in per["cameras"]]
    assert c["chunk_step_period_s"] == pytest.approx(1.0 / meta["fps"]) and c["variant"] == meta["variant"]


@pytest.mark.parametrize("edit, fields", [
    (rename_joint("left_waist", "left_joint1"), {"joint_names"}),
    (other_cameras, {"camera_names"}),
    (double_frame, {"frame_hw"}),
    (other_period, {"chunk_step_period_s"}),
])
def test_each_kind_of_mismatch_is_refused_before_any_model(json_only_checkpoint, edit, fields):
    with pytest.raises(ContractError) as ei:
        check_checkpoint(json_only_checkpoint, demo_robot(e=edit))
    assert {d.field for d in ei.value.differences} == fields


def test_one_message_names_every_differing_field_with_both_values(json_only_checkpoint):
    robot = demo_robot(a=rename_joint("left_waist", "left_joint1"), b=other_cameras, c=double_frame, d=other_period)
    with pytest.raises(ContractError) as ei:
        check_checkpoint(json_only_checkpoint, robot)
    msg = str(ei.value)
    assert {d.field for d in ei.value.differences} == {"joint_names", "camera_names", "frame_hw",
                                                       "chunk_step_period_s"}
    assert "frame_hw: checkpoint [96, 128] vs robot [192, 256]" in msg
    assert "chunk_step_period_s: checkpoint 0.0333333333 vs robot 0.05" in msg
    assert "'left_waist'" in msg and "'left_joint1'" in msg and "joint_map" in msg


def test_same_joints_in_another_order_are_refused_not_reordered(json_only_checkpoint):
    def swap(d):
        j = d["joints"]
        j[0], j[1] = j[1], j[0]
    with pytest.raises(ContractError, match="another order"):
        check_checkpoint(json_only_checkpoint, demo_robot(e=swap))


def test_matching_robot_file_loads_the_demo_checkpoint():
    from fastwam_ros.model.inference.policy import FastWAMPolicy

    pol = FastWAMPolicy.from_pretrained(DEMO, robot="demo_aloha", variant="fastwam")
    assert pol.robot_contract["robot"] == "demo_aloha" and pol.action_dim == 14
    assert pol.robot.name == "demo_aloha" and pol.robot.perception_config().out_hw == pol.image_size


def test_from_pretrained_refuses_another_robot():
    from fastwam_ros.model.inference.policy import FastWAMPolicy

    with pytest.raises(ContractError) as ei:
        FastWAMPolicy.from_pretrained(DEMO, robot="towel_fold_bimanual")
    assert {"joint_names", "frame_hw"} <= {d.field for d in ei.value.differences}


def test_joint_map_renames_explicitly_and_is_logged(json_only_checkpoint, caplog):
    robot = demo_robot(e=rename_joint("left_waist", "left_joint1"))
    with caplog.at_level(logging.WARNING, logger="fastwam_ros.contract"):
        check_checkpoint(json_only_checkpoint, robot, joint_map=parse_joint_map(["left_waist:left_joint1"]))
    assert "'left_waist' is used as robot joint 'left_joint1'" in caplog.text
    with pytest.raises(ConfigError, match="does not have"):
        check_checkpoint(json_only_checkpoint, robot, joint_map={"left_hip": "left_joint1"})
    with pytest.raises(ConfigError, match="not 'checkpoint_joint:robot_joint'"):
        parse_joint_map(["left_waist"])


def test_variant_idm_on_a_fastwam_checkpoint_is_refused(json_only_checkpoint):
    with pytest.raises(ContractError) as ei:
        check_checkpoint(json_only_checkpoint, None, variant="idm")
    assert ei.value.differences == [("variant", "fastwam", "idm")]
    check_checkpoint(json_only_checkpoint, None, variant="fastwam")


def test_official_checkpoint_file_checks_what_it_can_and_logs_the_rest(tmp_path, caplog):
    pt = tmp_path / "robotwin_uncond_3cam_384.pt"
    pt.write_bytes(b"not read by the contract check")
    known, unknown = read_checkpoint_contract(pt, "wan22_5b")
    assert known["frame_hw"] == [384, 320] and known["action_dim"] == 14
    assert set(unknown) == {"joint_names", "camera_names", "chunk_step_period_s"}
    with caplog.at_level(logging.WARNING, logger="fastwam_ros.contract"):
        check_checkpoint(pt, "towel_fold_bimanual", config="wan22_5b")
    assert "could not check joint_names, camera_names, chunk_step_period_s" in caplog.text
    with pytest.raises(ContractError) as ei:
        check_checkpoint(pt, "demo_aloha", config="wan22_5b")
    assert [d.field for d in ei.value.differences] == ["frame_hw"]


def test_save_pretrained_writes_the_robot_contract(tmp_path):
    from fastwam_ros.model.inference.policy import FastWAMPolicy

    pol = FastWAMPolicy.from_pretrained(DEMO)
    out = pol.save_pretrained(tmp_path / "p", robot="demo_aloha")
    c = json.loads((out / CONTRACT_FILE).read_text())
    assert c == {**json.loads((DEMO / CONTRACT_FILE).read_text()), "chunk_step_period_s": c["chunk_step_period_s"]}
    with pytest.raises(ContractError, match="frame_hw"):
        pol.save_pretrained(tmp_path / "q", robot="towel_fold_bimanual")


def test_policy_node_path_checks_contract_and_variant_at_configure():
    """What policy_node's configure runs: parameters + robot file -> loader on the worker thread."""
    from fastwam_ros.robot import load_robot
    from fastwam_ros.runtime.params import resolve
    from fastwam_ros.runtime.policy_runtime import policy_factory
    from fastwam_ros.runtime.schemas import POLICY_SCHEMA
    from fastwam_ros.runtime.worker import PolicyWorker, WorkerError

    def params(**over):
        base = {"robot_file": "demo_aloha", "model.checkpoint": str(DEMO), "model.config": "", "model.device": "cpu",
                "model.dtype": "float32", "model.warmup": False}
        return resolve(POLICY_SCHEMA, {**base, **over})

    robot = load_robot("demo_aloha")
    w = PolicyWorker(policy_factory(params(**{"model.variant": "idm"}), robot), warmup=False)
    with pytest.raises(WorkerError, match="variant: checkpoint 'fastwam' vs requested 'idm'"):
        w.start(timeout_s=120.0)
    w = PolicyWorker(policy_factory(params(), load_robot("towel_fold_bimanual")), warmup=False)
    with pytest.raises(WorkerError, match="joint_names: checkpoint"):
        w.start(timeout_s=120.0)
    renamed = load_robot(demo_robot(e=rename_joint("left_waist", "left_joint1")))
    w = PolicyWorker(policy_factory(params(**{"model.joint_map": ["left_waist:left_joint1"]}), renamed), warmup=False)
    w.start(timeout_s=120.0)  # explicit rename: loads
    try:
        assert w.policy.robot_contract["joint_names"][0] == "left_waist"
    finally:
        w.stop(timeout_s=10.0)


def test_fastwam_info_robot_checks_a_checkpoint_against_a_robot_file_before_deployment(json_only_checkpoint,
                                                                                        tmp_path, capsys):
    """`fastwam info POLICY --robot ROBOT` runs the node's contract check from a shell (no ROS, no model):
    exit 0 and the fields that agree, 1 and every differing field, 2 for a request it cannot check."""
    from fastwam_ros.cli import main

    def info(*args):
        code = main(["info", str(json_only_checkpoint), "--json", *args])
        out = capsys.readouterr()
        return code, (json.loads(out.out)["check"] if code in (0, 1) else out.err)

    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(yaml.safe_dump(demo_robot(a=rename_joint("left_waist", "left_joint1"), b=other_cameras)))
    code, check = info("--robot", str(DEMO_ROBOT))
    assert code == 0 and check["ok"] and check["robot"] == "demo_aloha" and check["differences"] == []
    assert {"joint_names", "camera_names", "frame_hw", "chunk_step_period_s"} <= set(check["checked"])
    code, check = info("--robot", str(renamed))
    assert code == 1 and not check["ok"]
    assert {f for f, _, _ in check["differences"]} == {"joint_names", "camera_names"}
    assert "left_joint1" in check["message"] and "joint_map" in check["message"]
    code, check = info("--robot", str(renamed), "--joint-map", "left_waist:left_joint1")  # the cameras still differ
    assert code == 1 and [f for f, _, _ in check["differences"]] == ["camera_names"]
    renamed.write_text(yaml.safe_dump(demo_robot(a=rename_joint("left_waist", "left_joint1"))))
    assert info("--robot", str(renamed), "--joint-map", "left_waist:left_joint1")[0] == 0
    code, check = info("--robot", str(DEMO_ROBOT), "--variant", "idm")
    assert code == 1 and check["differences"] == [["variant", "fastwam", "idm"]]
    for bad in (("--robot", str(tmp_path / "missing.yaml")), ("--robot", str(DEMO_ROBOT), "--joint-map", "x"),
                ("--variant", "idm")):
        code, err = info(*bad)
        assert code == 2 and err.startswith("error:"), bad
    assert main(["info", str(json_only_checkpoint), "--robot", str(renamed)]) == 1  # the text form
    assert "DOES NOT FIT" in capsys.readouterr().out
