"""Hugging Face conventions for policy directories: model card, Hub ids, ``push_to_hub``, ``fastwam info``.

* :func:`write_model_card` writes ``README.md`` (YAML metadata + description) with ``huggingface_hub.ModelCard``
  from what the directory holds (meta.json, config.json, the robot contract, perception.json, dataset stats);
* :func:`resolve_policy_dir` turns a local path or a Hub id (``org/name``, optionally ``org/name@revision``) into
  a local directory through ``huggingface_hub.snapshot_download`` -- the local cache first; with
  ``HF_HUB_OFFLINE=1`` only the cache (``HF_HUB_CACHE`` / ``HF_HOME``, read when called);
* :func:`push_to_hub` uploads a trained policy directory (model card written if missing).

Nothing here imports torch, so ``fastwam info`` is quick and never builds the model.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError, ContractError

CARD_FILE = "README.md"
CARD_MARKER = "Written by fastwam_ros"  # a card with this line is ours to regenerate
# the robot contract is fastwam_ros.contract's (robot_contract.json); older spellings are still read
CONTRACT_FILES = ("robot_contract.json", "contract.json")
CONTRACT_META_KEYS = ("robot_contract", "contract")
BASE_MODELS = {"wan22_5b": "Wan-AI/Wan2.2-TI2V-5B-Diffusers"}
UPLOAD_IGNORE = ["*.tmp", "__pycache__/*", ".cache/*"]


class HubError(ValueError):
    """A Hub id could not be resolved (not cached while offline, unknown repository, ...)."""


# ------------------------------------------------------------------------------------------------ reading
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_contract(policy_dir: str | Path) -> dict[str, Any] | None:
    """The robot contract saved with a checkpoint, wherever it is stored (a file or a meta.json key)."""
    p = Path(policy_dir)
    for name in CONTRACT_FILES:
        d = _read_json(p / name)
        if isinstance(d, Mapping):
            return dict(d)
    meta = _read_json(p / "meta.json")
    if isinstance(meta, Mapping):
        for key in CONTRACT_META_KEYS:
            if isinstance(meta.get(key), Mapping):
                return dict(meta[key])
    return None


def _names(items: Any) -> list[str]:
    out = []
    for it in items or []:
        out.append(str(it.get("name")) if isinstance(it, Mapping) else str(it))
    return out


def contract_summary(contract: Mapping[str, Any] | None, perception: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Robot name, cameras (tiling order), joints, tiling, dimensions, command groups and rates from a contract
    (``robot_contract.json``; other key spellings tolerated) or, without one, from the perception config the
    checkpoint was trained with."""
    out: dict[str, Any] = {}
    src = dict(contract or {})
    perc = dict(perception or {})
    robot = src.get("robot") or src.get("name") or src.get("robot_name")
    if isinstance(robot, Mapping):
        robot = robot.get("name")
    if robot:
        out["robot"] = str(robot)
    cams = src.get("camera_names") or src.get("cameras") or perc.get("cameras")
    if cams:
        out["cameras"] = _names(cams)
    joints = src.get("joint_names") or src.get("joints") or perc.get("joint_names")
    if joints:
        out["joints"] = _names(joints)
    if src.get("groups"):
        out["groups"] = _names(src["groups"])
    tiling = src.get("tiling_layout") or src.get("tiling") or perc.get("layout")
    if tiling:
        out["tiling"] = tiling
    frame_hw = src.get("frame_hw") or perc.get("out_hw")
    if frame_hw:
        out["frame_hw"] = list(frame_hw)
    for key in ("proprio_dim", "action_dim", "control_rate_hz", "chunk_step_period_s", "fps"):
        for where in (src, src.get("control") or {}):
            if isinstance(where, Mapping) and key in where:
                out[key] = where[key]
    return out


def describe(policy_dir: str | Path) -> dict[str, Any]:
    """Everything ``fastwam info`` and the model card show, read from the files (no model is built)."""
    p = Path(policy_dir)
    meta = _read_json(p / "meta.json") or {}
    cfg = _read_json(p / "config.json") or {}
    perception = _read_json(p / "perception.json")
    stats = _read_json(p / "dataset_stats.json") or {}
    contract = read_contract(p)
    info: dict[str, Any] = {
        "path": str(p), "meta": meta, "config": cfg, "contract": contract,
        "robot": contract_summary(contract, perception),
        "parameters": _parameter_counts(p / "model.safetensors"),
        "files": sorted(f.name + ("/" if f.is_dir() else "") for f in p.iterdir()) if p.is_dir() else [],
    }
    if stats:
        info["dataset"] = {k: stats[k] for k in ("num_episodes", "num_transition") if k in stats}
    return info


def _parameter_counts(weights: Path) -> dict[str, int]:
    """Parameter counts per top-level module from the safetensors header (tensor shapes only; no data read)."""
    if not weights.is_file():
        return {}
    with open(weights, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    counts: dict[str, int] = {}
    for key, spec in header.items():
        if key == "__metadata__":
            continue
        size = 1
        for d in spec["shape"]:
            size *= int(d)
        top = key.split(".")[0]
        counts[top] = counts.get(top, 0) + size
    counts["total"] = sum(v for k, v in counts.items() if k != "vae")
    if "vae" in counts:
        counts["total_with_vae"] = counts["total"] + counts["vae"]
    return counts


# ------------------------------------------------------------------------------------------------ model card
def _base_model(cfg: Mapping[str, Any], meta: Mapping[str, Any]) -> str | None:
    init = (meta.get("training_data") or {}).get("init") if isinstance(meta.get("training_data"), Mapping) else None
    if isinstance(init, str) and init.count("/") == 1 and not Path(init).exists():
        return init  # fine-tuned from a Hub policy
    name = str(cfg.get("name") or meta.get("config_name") or "")
    return BASE_MODELS.get(name)


def _local_name(p: Path) -> str:
    """``<run>-<step>`` for a checkpoint's ``policy/`` folder, else the folder name."""
    if p.name == "policy" and p.parent.parent.name == "checkpoints":
        return f"{p.parent.parent.parent.name}-{p.parent.name}"
    return p.name


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def model_card_text(policy_dir: str | Path, repo_id: str | None = None) -> str:
    """Model card content (YAML front matter + markdown) of a policy directory."""
    from huggingface_hub import EvalResult, ModelCardData

    from fastwam_ros.version import __version__

    info = describe(policy_dir)
    meta, cfg, robot = info["meta"], info["config"], info["robot"]
    metrics = meta.get("metrics") if isinstance(meta.get("metrics"), Mapping) else {}
    data = meta.get("training_data") if isinstance(meta.get("training_data"), Mapping) else {}
    base = _base_model(cfg, meta)
    name = repo_id or _local_name(Path(policy_dir).resolve())
    evals = []
    for key in ("val_loss", "train_loss_smoothed"):
        if key in metrics:
            evals.append(EvalResult(task_type="robotics", dataset_type="held-out episodes" if key == "val_loss"
                                    else "training episodes", dataset_name=str((data.get("paths") or ["local"])[0]),
                                    metric_type="flow_matching_loss", metric_name=key, metric_value=metrics[key]))
    card_data = ModelCardData(
        library_name="fastwam_ros", license="apache-2.0", base_model=base, pipeline_tag="robotics",
        tags=["robotics", "fastwam", "world-action-model", "ros2", "lerobot"] + ([robot["robot"]] if "robot"
                                                                                   in robot else []),
        model_name=name, eval_results=evals or None,
        fastwam={"variant": meta.get("variant") or cfg.get("variant"), "config": cfg.get("name"),
                 "step": meta.get("step"), "robot": robot or None, "created_by": meta.get("created_by")},
    )
    params = info["parameters"]
    lines = [f"# {name}", "",
             "A Fast-WAM world action model policy (video DiT world encoder + action expert, flow matching) in the "
             "`fastwam_ros` policy-directory format.", "",
             "## Robot contract", ""]
    if robot:
        lines += [f"- **{k}**: {', '.join(map(str, v)) if isinstance(v, list) else _fmt(v)}" for k, v in robot.items()]
    else:
        lines.append("No robot contract recorded: check cameras, joint order and rates before deploying.")
    lines += ["", "## Model", "",
              f"- variant `{meta.get('variant') or cfg.get('variant')}`, config `{cfg.get('name')}`, base model "
              f"{base or 'none (random initialisation)'}",
              f"- parameters: {params.get('total', 'unknown'):,}" if params.get("total") else "- parameters: unknown",
              f"- action chunk: {cfg.get('policy', {}).get('action_horizon', '?')} steps x "
              f"{cfg.get('action', {}).get('action_dim', cfg.get('action_dim', '?'))} dims",
              f"- bundled VAE: {bool(meta.get('bundled_vae'))}; stored instruction embeddings: "
              f"{meta.get('num_text_embeds', 0)}",
              "", "## Training data", ""]
    if data:
        lines += [f"- **{k}**: {v}" for k, v in data.items()]
    else:
        ds = info.get("dataset") or {}
        lines.append(", ".join(f"{k}: {v}" for k, v in ds.items()) if ds else "Not recorded.")
    lines += ["", "## Metrics", ""]
    lines += ([f"- **{k}**: {_fmt(v)}" for k, v in metrics.items()] if metrics else ["Not recorded."])
    lines += ["", "## Intended use", "",
              "Closed-loop control of the robot described by the contract above, through the `fastwam_ros` "
              "policy and controller nodes (chunks go through the controller's limits, watchdog and e-stop), "
              "for the instructions it was trained on. Load it with "
              f"`FastWAMPolicy.from_pretrained(\"{repo_id or 'ORG/NAME'}\")` once published "
              "(`fastwam push POLICY_DIR ORG/NAME`), or from its local folder.", "",
              "## Limitations", "",
              "- Trained on a limited set of demonstrations; behaviour outside their scenes, objects and "
              "instructions is untested. The losses above are flow-matching losses, not success rates.",
              "- Only valid for the camera order, tiling and joint order of the contract; deployment refuses "
              "a mismatch but cannot detect a miscalibrated camera or robot.",
              "- Always run with the controller's limits and a reachable e-stop; never unattended.",
              "", f"{CARD_MARKER} {__version__}."]
    return f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n"


def write_model_card(policy_dir: str | Path, repo_id: str | None = None) -> Path | None:
    """Write ``README.md`` into a policy directory; a README that was not generated here (no marker line) is
    kept. None (with a warning) when huggingface_hub is missing or a hand-written README is kept."""
    path = Path(policy_dir) / CARD_FILE
    if path.is_file() and CARD_MARKER not in path.read_text(encoding="utf-8", errors="replace"):
        print(f"note: {path} was not written by fastwam_ros; kept as is (no model card generated)", file=sys.stderr)
        return None
    try:
        from huggingface_hub import ModelCard
    except ImportError:
        print("warning: huggingface_hub is not installed; no model card written", file=sys.stderr)
        return None
    ModelCard(model_card_text(policy_dir, repo_id)).save(path)
    return path


# ------------------------------------------------------------------------------------------------ Hub ids
def is_hub_id(name: str) -> bool:
    """True for ``org/name`` or ``org/name@revision`` (not a relative, absolute or home path)."""
    base = name.split("@")[0]
    return base.count("/") == 1 and not base.startswith((".", "/", "~")) and all(base.split("/"))


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_cache_dir() -> str | None:
    """The Hub cache folder from the environment as it is now (huggingface_hub reads it once at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def resolve_policy_dir(name_or_path: str | Path, revision: str | None = None) -> Path:
    """A local policy directory for a path or a Hub id (``org/name`` or ``org/name@revision``).

    Local paths win; a Hub id is served from the local cache when present (always so with ``HF_HUB_OFFLINE``),
    otherwise downloaded. Errors name the id, the cache folder and what to do."""
    p = Path(name_or_path).expanduser()
    if p.exists() or not is_hub_id(str(name_or_path)):
        return p
    repo_id, _, rev = str(name_or_path).partition("@")
    revision = revision or rev or None
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as exc:
        raise HubError(f"{name_or_path} is not a local directory and huggingface_hub is not installed to resolve "
                       "it as a Hub id (pip install huggingface_hub)") from exc
    cache = hub_cache_dir()
    try:
        path = snapshot_download(repo_id, revision=revision, cache_dir=cache, local_files_only=_offline(),
                                 library_name="fastwam_ros")
    except LocalEntryNotFoundError as exc:
        raise HubError(f"policy directory not found: {name_or_path} is no local directory, and the Hub id "
                       f"{repo_id} (revision {revision or 'main'}) is not in the Hub cache "
                       f"({cache or 'the default folder'}) and {'HF_HUB_OFFLINE is set' if _offline() else 'cannot be downloaded'}"
                       f"; download it on a connected machine (hf download {repo_id}) or give a "
                       "local directory") from exc
    except Exception as exc:  # noqa: BLE001 - repository / revision / auth errors all end here
        raise HubError(f"policy directory not found: {name_or_path} is no local directory, and as a Hub id: "
                       f"{type(exc).__name__}: {exc}") from exc
    return Path(path)


def push_to_hub(policy_dir: str | Path, repo_id: str, *, private: bool = False, token: str | None = None,
                revision: str | None = None, commit_message: str | None = None, api: Any = None) -> str:
    """Upload a policy directory (weights, config, stats, contract, model card) to ``repo_id``; returns the
    commit URL. Writes the model card first (naming ``repo_id``) unless the directory holds a card that was not
    generated here (a hand-written card is kept). ``api``: an ``HfApi`` (default: one for ``token``)."""
    from huggingface_hub import HfApi

    p = Path(policy_dir)
    if not (p / "meta.json").is_file() or not (p / "model.safetensors").is_file():
        raise HubError(f"{p} is not a policy directory (meta.json and model.safetensors expected); push a "
                       "checkpoint's policy/ folder")
    write_model_card(p, repo_id)  # (re)written with the repo id, unless hand-written
    api = api or HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    info = api.upload_folder(repo_id=repo_id, folder_path=str(p), revision=revision, repo_type="model",
                             commit_message=commit_message or f"Upload Fast-WAM policy from {p.name}",
                             ignore_patterns=UPLOAD_IGNORE)
    return str(getattr(info, "commit_url", info))


# ------------------------------------------------------------------------------------------------ commands
def info_command(argv: list[str], prog: str = "fastwam info") -> int:
    import argparse

    ap = argparse.ArgumentParser(prog=prog, description="Print a policy directory's (or a checkpoint's) config, "
                                 "robot contract, metadata and parameter counts, from the files alone (the model "
                                 "is not built). Accepts a local path or a Hub id (org/name[@revision]).")
    ap.add_argument("policy", help="policy directory, checkpoint directory (its policy/ is used) or Hub id")
    ap.add_argument("--json", action="store_true", help="print everything as JSON")
    ap.add_argument("--robot", default=None, metavar="ROBOT",
                    help="also check the checkpoint's robot contract against this robot file (a path, or a name in "
                         "config/robots), as the policy node's configure does; exit status 1, naming every "
                         "differing field, if it was trained for another robot")
    ap.add_argument("--joint-map", nargs="+", default=[], metavar="CKPT:ROBOT",
                    help="with --robot: deliberate joint renames, checkpoint joint -> robot joint (the policy "
                         "node's model.joint_map)")
    ap.add_argument("--variant", default=None,
                    help="with --robot: the attention variant the node requests (its model.variant, 'fastwam' by "
                         "default there); not checked when omitted")
    ns = ap.parse_args(argv)
    try:
        p = resolve_policy_dir(ns.policy)
    except HubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if (p / "policy" / "meta.json").is_file():
        p = p / "policy"
    if not (p / "meta.json").is_file():
        print(f"error: {p} is not a policy directory (no meta.json)", file=sys.stderr)
        return 2
    info = describe(p)
    status = 0
    if ns.robot is not None:
        try:
            info["check"] = contract_check(p, ns.robot, variant=ns.variant, joint_map=ns.joint_map)
        except ConfigError as exc:  # an unreadable robot file or a malformed joint map: not a verdict
            print(f"error: {exc}", file=sys.stderr)
            return 2
        status = 0 if info["check"]["ok"] else 1
    elif ns.joint_map or ns.variant is not None:
        print("error: --joint-map and --variant apply to the check against a robot file (--robot)", file=sys.stderr)
        return 2
    if ns.json:
        print(json.dumps(info, indent=2, default=str))
        return status
    meta, cfg = info["meta"], info["config"]
    print(f"{p}")
    print(f"  format     {meta.get('format')} v{meta.get('format_version')}, {meta.get('created_by')}, "
          f"{meta.get('created_at')}")
    print(f"  model      config {cfg.get('name')}, variant {meta.get('variant')}, dtype {meta.get('dtype')}, "
          f"step {meta.get('step', '-')}")
    pol = cfg.get("policy", {}) if isinstance(cfg.get("policy"), Mapping) else {}
    print(f"  shapes     frame {pol.get('image_height')}x{pol.get('image_width')} (H x W), proprio "
          f"{cfg.get('proprio_dim', '?')}, action {cfg.get('action', {}).get('action_dim', '?')} x "
          f"{pol.get('action_horizon')} steps, text {pol.get('text_len')} tokens")
    params = info["parameters"]
    if params:
        parts = ", ".join(f"{k} {v:,}" for k, v in params.items() if not k.startswith("total"))
        print(f"  parameters {params['total']:,} ({parts})")
    robot = info["robot"]
    print("  contract   " + (", ".join(f"{k}={v}" for k, v in robot.items()) if robot else "none recorded")
          + ("" if info["contract"] else "  (from perception.json)" if robot else ""))
    for key in ("metrics", "training_data"):
        if isinstance(meta.get(key), Mapping):
            print(f"  {key:<10} " + ", ".join(f"{k}={_fmt(v)}" for k, v in meta[key].items()))
    if info.get("dataset"):
        print(f"  dataset    {info['dataset']}")
    print(f"  files      {' '.join(info['files'])}")
    check = info.get("check")
    if check is not None:
        if check["ok"]:
            print(f"  check      fits robot {check['robot']}: {', '.join(check['checked']) or 'nothing'} agree"
                  + (f"; not recorded by the checkpoint, so not checked: {', '.join(check['unchecked'])}"
                     if check["unchecked"] else ""))
        else:
            print("  check      DOES NOT FIT: " + check["message"].replace("\n", "\n             "))
    return status


def contract_check(policy_dir: str | Path, robot: Any, *, variant: str | None = None,
                   joint_map: Any = ()) -> dict[str, Any]:
    """The policy node's contract check of a policy directory against a robot file, as a report:
    ``{"robot", "ok", "checked", "unchecked", "differences", "message"}`` (``differences``: [field, checkpoint
    value, robot value] each). Raises ConfigError for an unreadable robot file or a malformed ``joint_map``
    (``["ckpt_joint:robot_joint", ...]`` or a mapping)."""
    from .contract import (
        FIELDS,
        check_checkpoint,
        contract_from_robot,
        parse_joint_map,
        read_checkpoint_contract,
    )
    from .robot import load_robot

    spec = load_robot(robot)
    jm = parse_joint_map(joint_map)
    known, _ = read_checkpoint_contract(policy_dir)
    want = contract_from_robot(spec, variant=variant)
    report: dict[str, Any] = {
        "robot": spec.name, "robot_file": spec.source,
        "checked": [f for f in FIELDS if f in known and f in want],
        "unchecked": [f for f in FIELDS if f in want and f not in known],
        "ok": True, "differences": [], "message": ""}
    try:
        check_checkpoint(policy_dir, spec, variant=variant, joint_map=jm)
    except ContractError as exc:
        report.update(ok=False, differences=[list(d) for d in exc.differences], message=str(exc))
    return report


def push_command(argv: list[str], prog: str = "fastwam push") -> int:
    import argparse

    ap = argparse.ArgumentParser(prog=prog, description="Upload a trained policy directory to the Hugging Face "
                                 "Hub (writes the model card README.md first if missing). Needs a token "
                                 "(hf auth login, or HF_TOKEN).")
    ap.add_argument("policy", help="policy directory (e.g. runs/x/checkpoints/step_00002000/policy)")
    ap.add_argument("repo_id", help="org/name")
    ap.add_argument("--private", action="store_true")
    ap.add_argument("--revision", default=None, help="branch to push to")
    ns = ap.parse_args(argv)
    try:
        url = push_to_hub(ns.policy, ns.repo_id, private=ns.private, revision=ns.revision)
    except Exception as exc:  # noqa: BLE001 - network / auth errors reported, not raised
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(url)
    return 0
