"""The checkpoint's robot contract: what a checkpoint was trained for, compared with the robot it is deployed on.

A trained policy directory carries ``robot_contract.json``::

    {"robot": "demo_aloha", "joint_names": [...], "camera_names": ["head", "left_wrist", "right_wrist"],
     "tiling_layout": "robotwin", "frame_hw": [96, 128], "chunk_step_period_s": 0.0333333333,
     "proprio_dim": 14, "action_dim": 14, "variant": "fastwam"}

:func:`check_checkpoint` (called by ``FastWAMPolicy.from_pretrained(..., robot=)`` before any model is built,
hence at the policy node's configure) compares it with the robot file and raises ONE
:class:`~fastwam_ros.errors.ContractError` listing every differing field (checkpoint value vs robot value).
Joint names differ on purpose only through an explicit ``joint_map`` ({checkpoint joint: robot joint}), which is
logged; columns are never matched by position alone.

Checkpoints without a contract file (official ``.pt`` files, older policy directories) are checked on what can be
known (model config dimensions and frame size, ``perception.json``, ``meta.json`` fps); the fields that could not
be checked are logged.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError, ContractError, Difference

LOG = logging.getLogger("fastwam_ros.contract")

CONTRACT_FILE = "robot_contract.json"
FIELDS = ("joint_names", "camera_names", "tiling_layout", "frame_hw", "chunk_step_period_s", "proprio_dim",
          "action_dim", "variant")
PERIOD_RTOL = 1e-4  # step periods are written with ~10 digits (1/30 = 0.0333333333)


def contract_from_perception(perception: Any, *, step_period_s: float, proprio_dim: int, action_dim: int,
                             variant: str, robot: str = "") -> dict[str, Any]:
    """The contract of a training run: its ``PerceptionConfig``, step period (s), dimensions and variant."""
    return {
        "robot": robot,
        "joint_names": list(perception.joint_names),
        "camera_names": list(perception.camera_names),
        "tiling_layout": perception.layout,
        "frame_hw": list(perception.out_hw),
        "chunk_step_period_s": float(step_period_s),
        "proprio_dim": int(proprio_dim),
        "action_dim": int(action_dim),
        "variant": variant,
    }


def contract_from_robot(robot: Any, *, variant: str | None = None) -> dict[str, Any]:
    """What a robot file requires of a checkpoint (``variant``: the requested one, None = any)."""
    from .robot import load_robot

    r = load_robot(robot)
    out = contract_from_perception(r.perception_config(), step_period_s=r.chunk_step_period_s,
                                   proprio_dim=len(r.state_names), action_dim=len(r.joints), variant=variant or "",
                                   robot=r.name)
    if variant is None:
        out.pop("variant")
    return out


def write_contract(directory: str | Path, contract: Mapping[str, Any]) -> Path:
    """Write ``robot_contract.json`` into a policy directory."""
    missing = [f for f in FIELDS if f not in contract]
    if missing:
        raise ConfigError("robot_contract", f"missing fields {missing}")
    p = Path(directory) / CONTRACT_FILE
    p.write_text(json.dumps(dict(contract), indent=2) + "\n", encoding="utf-8")
    return p


def read_checkpoint_contract(path: str | Path, config: Any | None = None) -> tuple[dict[str, Any], list[str]]:
    """(known contract fields, fields that could not be known) of a checkpoint, from small files only.

    A directory: ``robot_contract.json``, else what ``config.json`` / ``perception.json`` / ``meta.json`` tell.
    A file (official checkpoint): the model ``config`` (FastWAMConfig, preset name or path; default wan22_5b)
    gives dimensions, frame size and variant; joints, cameras and step period cannot be known."""
    p = Path(path).expanduser()
    known: dict[str, Any] = {}
    if p.is_dir() and (p / CONTRACT_FILE).is_file():
        doc = _read_json(p / CONTRACT_FILE)
        known = {k: doc[k] for k in FIELDS if k in doc}
        if "robot" in doc:
            known["robot"] = doc["robot"]
    elif p.is_dir():
        cfg = _read_json(p / "config.json") if (p / "config.json").is_file() else None
        if isinstance(cfg, Mapping):
            known.update(_from_model_config_dict(cfg))
        if (p / "perception.json").is_file():
            per = _read_json(p / "perception.json")
            try:
                from .perception.config import PerceptionConfig

                pc = PerceptionConfig.from_dict(per)
                known.update(joint_names=list(pc.joint_names), camera_names=list(pc.camera_names),
                             tiling_layout=pc.layout, frame_hw=list(pc.out_hw))
            except (ConfigError, TypeError) as exc:
                raise ConfigError(f"{p / 'perception.json'}: {exc}") from None
        meta = _read_json(p / "meta.json") if (p / "meta.json").is_file() else {}
        if isinstance(meta, Mapping) and isinstance(meta.get("fps"), (int, float)) and meta["fps"] > 0:
            known["chunk_step_period_s"] = 1.0 / float(meta["fps"])
    else:
        from .model.config import load_config

        cfg_obj = load_config(config if config is not None else "wan22_5b") if not hasattr(config, "to_dict") \
            else config
        known.update(_from_model_config_dict(cfg_obj.to_dict()))
    return known, [f for f in FIELDS if f not in known]


def compare(checkpoint: Mapping[str, Any], robot: Mapping[str, Any],
            joint_map: Mapping[str, str] | None = None) -> list[Difference]:
    """Every field both sides know and that differs. ``joint_map`` renames checkpoint joints first."""
    diffs: list[Difference] = []
    ck = dict(checkpoint)
    if joint_map and "joint_names" in ck:
        ck["joint_names"] = [joint_map.get(j, j) for j in ck["joint_names"]]
    for f in FIELDS:
        if f not in ck or f not in robot:
            continue
        a, b = ck[f], robot[f]
        if f == "chunk_step_period_s":
            same = math.isclose(float(a), float(b), rel_tol=PERIOD_RTOL)
        elif isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
            same = list(a) == list(b)
        else:
            same = a == b
        if not same:
            diffs.append(Difference(f, list(a) if isinstance(a, tuple) else a, list(b) if isinstance(b, tuple) else b))
    return diffs


def check_checkpoint(path: str | Path, robot: Any | None = None, *, variant: str | None = None,
                     joint_map: Mapping[str, str] | None = None, config: Any | None = None,
                     log: logging.Logger | None = None) -> dict[str, Any]:
    """Refuse a checkpoint trained for another robot (or another variant) than requested.

    ``robot``: a robot file path / name / RobotSpec (None: only ``variant`` is checked). ``variant``: the
    requested attention variant (None = the checkpoint's). Raises :class:`ContractError` naming every differing
    field; logs the joint renames applied and the fields that could not be checked. Returns the checkpoint's
    known contract."""
    log = log or LOG
    known, unknown = read_checkpoint_contract(path, config)
    want: dict[str, Any] = contract_from_robot(robot) if robot is not None else {}
    if variant is not None:
        want["variant"] = variant
    jm = dict(joint_map or {})
    if jm:
        ck_joints = known.get("joint_names")
        if ck_joints is None:
            raise ConfigError("joint_map", f"checkpoint {path} does not record its joint names: nothing to rename")
        bad = sorted(set(jm) - set(ck_joints))
        if bad:
            raise ConfigError("joint_map", f"renames joints {bad} the checkpoint does not have ({list(ck_joints)})")
        for a, b in jm.items():
            log.warning("joint_map: checkpoint joint %r is used as robot joint %r", a, b)
    diffs = compare(known, want, jm)
    if diffs:
        hint = ""
        names = {d.field for d in diffs}
        if "joint_names" in names:
            ck = [jm.get(j, j) for j in known["joint_names"]]
            if sorted(ck) == sorted(want["joint_names"]):
                hint = "The joints are the same but in another order: fix the robot file's `joints` order."
            else:
                hint = ("Deliberate renames go through joint_map (checkpoint joint -> robot joint), never by "
                        "position.")
        raise ContractError(str(path), getattr(robot, "source", None) or str(robot or "the request"), diffs, hint)
    if unknown and robot is not None:
        log.warning("checkpoint %s carries no %s: could not check %s against the robot file", path, CONTRACT_FILE,
                    ", ".join(unknown))
    return known


def parse_joint_map(entries: Any) -> dict[str, str]:
    """``["ckpt_joint:robot_joint", ...]`` (the ROS parameter form) or a mapping -> {checkpoint: robot}."""
    if isinstance(entries, Mapping):
        return {str(k): str(v) for k, v in entries.items()}
    out: dict[str, str] = {}
    for e in entries or ():
        a, sep, b = str(e).partition(":")
        if not sep or not a.strip() or not b.strip():
            raise ConfigError("model.joint_map", f"entry {e!r} is not 'checkpoint_joint:robot_joint'")
        if a.strip() in out:
            raise ConfigError("model.joint_map", f"joint {a.strip()!r} is mapped twice")
        out[a.strip()] = b.strip()
    return out


def _from_model_config_dict(cfg: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    pol = cfg.get("policy") if isinstance(cfg.get("policy"), Mapping) else {}
    if "image_height" in pol and "image_width" in pol:
        out["frame_hw"] = [int(pol["image_height"]), int(pol["image_width"])]
    for k in ("proprio_dim", "action_dim"):
        v = cfg.get(k)
        if v is None and isinstance(cfg.get("action"), Mapping):
            v = cfg["action"].get(k)
        if isinstance(v, int):
            out[k] = v
    if isinstance(pol.get("camera_layout"), str):
        out["tiling_layout"] = pol["camera_layout"]
    if isinstance(cfg.get("variant"), str):
        out["variant"] = cfg["variant"]
    return out


def _read_json(p: Path) -> Any:
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{p}: unreadable ({exc})") from None
