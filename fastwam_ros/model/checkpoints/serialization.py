"""fastwam_ros policy directory: everything a deployment needs besides (optionally) the big frozen encoders.

Layout of a policy directory::

    meta.json                 format name + version, variant, created-by, dtype, tensor counts
    config.json               the full FastWAMConfig (to_dict)
    model.safetensors         all FastWAM weights under our module names (video_expert.transformer.*,
                              action_expert.*, proprio_encoder.*) and, when bundled, the VAE under ``vae.*``
    stats.json                normaliser: mode, clamp, per-field (state, action) scale/offset [+ raw stats]
    text_embeds.safetensors   optional: cached instruction embeddings [text_len, text_dim] + their prompts and
                              the text-encoder identity, so a deployment without the 5.7 B encoder can still run
                              the known instructions
    text_encoder/, tokenizer/ optional: a bundled (small) text encoder in transformers layout

Every reader error names the file and the offending keys (:class:`PolicyFormatError`).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import CheckpointError, coverage_problems, format_keys

FORMAT_NAME = "fastwam_ros.policy"
FORMAT_VERSION = 1
META_FILE = "meta.json"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
STATS_FILE = "stats.json"
TEXT_EMBEDS_FILE = "text_embeds.safetensors"
PERCEPTION_FILE = "perception.json"  # optional: the camera / tiling / joint-order config trained with
TEXT_ENCODER_SUBDIR = "text_encoder"
TOKENIZER_SUBDIR = "tokenizer"
VAE_PREFIX = "vae."


class PolicyFormatError(ValueError):
    """A policy directory is missing a file, has a corrupt file, or its parts do not fit together."""


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise PolicyFormatError(f"{path.name} missing: expected {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except Exception as exc:  # noqa: BLE001 - any parse failure is a corrupt file
        raise PolicyFormatError(f"{path} is corrupt (not valid JSON: {exc})") from exc


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def _load_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise PolicyFormatError(f"{path.name} missing: expected {path}")
    from safetensors import safe_open

    from .file_check import read_safetensors_header

    try:
        read_safetensors_header(path)  # truncated / corrupt: a clear error before reading any tensor
    except CheckpointError as exc:
        raise PolicyFormatError(f"{path.name} is corrupt: {exc}") from None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001
        raise PolicyFormatError(f"{path} is corrupt (cannot read safetensors: {type(exc).__name__}: {exc})") from exc
    return tensors, meta


def _save_safetensors(path: Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str]) -> None:
    from safetensors.torch import save_file

    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(tmp), metadata=dict(meta))
    tmp.replace(path)


# --------------------------------------------------------------------------------------------- stats
def stats_to_dict(normalizer: Any, raw_stats: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """stats.json content of a ``StateActionNormalizer`` (+ optional raw per-field stats for provenance)."""
    d = normalizer.to_dict()
    modes = {d["state"].get("mode"), d["action"].get("mode")}
    clamps = {d["state"].get("clamp"), d["action"].get("clamp")}
    out: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "mode": d["action"].get("mode") if len(modes) == 1 else None,
        "clamp": d["action"].get("clamp") if len(clamps) == 1 else None,
        "state": d["state"],
        "action": d["action"],
    }
    if raw_stats is not None:
        out["raw"] = json.loads(json.dumps(raw_stats, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
    return out


def stats_from_dict(d: Any, *, where: str = STATS_FILE, state_dim: int | None = None, action_dim: int | None = None):
    """``StateActionNormalizer`` from stats.json content, with dimension checks against the config."""
    from fastwam_ros.model.processing.normalizer import NormalizerError, StateActionNormalizer

    if not isinstance(d, Mapping):
        raise PolicyFormatError(f"{where}: expected a JSON object, got {type(d).__name__}")
    missing = [k for k in ("state", "action") if k not in d]
    if missing:
        raise PolicyFormatError(f"{where}: missing key(s) {missing}; have {sorted(d)}")
    for fld in ("state", "action"):
        sub = d[fld]
        if not isinstance(sub, Mapping) or "scale" not in sub or "offset" not in sub:
            have = sorted(sub) if isinstance(sub, Mapping) else type(sub).__name__
            raise PolicyFormatError(f"{where}: '{fld}' needs 'scale' and 'offset'; have {have}")
    try:
        norm = StateActionNormalizer.from_dict(d)
    except NormalizerError as exc:
        raise PolicyFormatError(f"{where}: {exc}") from exc
    if state_dim is not None and norm.state.dim != state_dim:
        raise PolicyFormatError(f"{where}: 'state' has {norm.state.dim} dims but config.proprio_dim is {state_dim}")
    if action_dim is not None and norm.action.dim != action_dim:
        raise PolicyFormatError(
            f"{where}: 'action' has {norm.action.dim} dims but config.action.action_dim is {action_dim}"
        )
    return norm


# --------------------------------------------------------------------------------------------- text embeds
def save_text_embeds(path: Path, entries: Mapping[str, torch.Tensor], encoder_id: str) -> None:
    """Write prompt -> embedding [L, D] entries to ``text_embeds.safetensors``."""
    prompts = sorted(entries)
    tensors = {f"embeds.{i}": entries[p] for i, p in enumerate(prompts)}
    meta = {"format": FORMAT_NAME + ".text_embeds", "encoder_id": encoder_id, "prompts": json.dumps(prompts)}
    _save_safetensors(path, tensors, meta)


def load_text_embeds(
    path: Path, *, text_len: int | None = None, text_dim: int | None = None
) -> tuple[dict[str, torch.Tensor], str]:
    """(prompt -> embedding, encoder_id) from ``text_embeds.safetensors``; checks shapes against the config."""
    tensors, meta = _load_safetensors(path)
    try:
        prompts = json.loads(meta["prompts"])
        encoder_id = meta["encoder_id"]
    except Exception as exc:  # noqa: BLE001
        raise PolicyFormatError(f"{path}: metadata lacks a valid 'prompts' / 'encoder_id' ({exc})") from exc
    want = {f"embeds.{i}" for i in range(len(prompts))}
    if set(tensors) != want:
        raise PolicyFormatError(
            f"{path}: tensors {format_keys(tensors)} do not match the {len(prompts)} prompts in its metadata "
            f"(missing {format_keys(want - set(tensors))}, unexpected {format_keys(set(tensors) - want)})"
        )
    out = {}
    for i, p in enumerate(prompts):
        t = tensors[f"embeds.{i}"]
        if t.ndim != 2 or (text_len is not None and t.shape[0] != text_len) or (
            text_dim is not None and t.shape[1] != text_dim
        ):
            raise PolicyFormatError(
                f"{path}: embeds.{i} ({p!r}) has shape {tuple(t.shape)}, config expects [{text_len}, {text_dim}]"
            )
        out[p] = t
    return out, encoder_id


# --------------------------------------------------------------------------------------------- bundle
@dataclass
class PolicyBundle:
    """What :func:`load_policy_dir` returns (the caller builds the runtime objects from it)."""

    path: Path
    meta: dict[str, Any]
    config: Any  # FastWAMConfig
    model_state: dict[str, torch.Tensor]
    vae_state: dict[str, torch.Tensor] | None
    normalizer: Any  # StateActionNormalizer
    text_embeds: dict[str, torch.Tensor] = field(default_factory=dict)
    text_encoder_id: str | None = None
    text_encoder_dir: Path | None = None


def save_policy_dir(
    path: str | Path,
    model: nn.Module,
    normalizer: Any,
    *,
    vae: nn.Module | None = None,
    text_embeds: Mapping[str, torch.Tensor] | None = None,
    text_encoder_id: str | None = None,
    text_encoder: Any | None = None,
    raw_stats: Mapping[str, Any] | None = None,
    extra_meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write a policy directory (see module doc). ``vae`` is the diffusers ``AutoencoderKLWan`` to bundle
    (its weights go into model.safetensors under ``vae.``); ``text_encoder`` (a ``TextEncoder``) is bundled
    in transformers layout when given (use only for small encoders)."""
    from fastwam_ros.version import __version__

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg
    tensors = dict(model.state_dict())
    if vae is not None:
        tensors.update({VAE_PREFIX + k: v for k, v in vae.state_dict().items()})
    dtype = str(next(iter(model.state_dict().values())).dtype).replace("torch.", "")
    _save_safetensors(out / WEIGHTS_FILE, tensors, {"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION)})
    _write_json(out / CONFIG_FILE, cfg.to_dict())
    _write_json(out / STATS_FILE, stats_to_dict(normalizer, raw_stats))
    if text_embeds:
        if not text_encoder_id:
            raise ValueError("text_embeds need the text_encoder_id they were computed with")
        save_text_embeds(out / TEXT_EMBEDS_FILE, text_embeds, text_encoder_id)
    elif (out / TEXT_EMBEDS_FILE).exists():
        (out / TEXT_EMBEDS_FILE).unlink()
    if text_encoder is not None:
        text_encoder.model.save_pretrained(str(out / TEXT_ENCODER_SUBDIR))
        text_encoder.tokenizer.save_pretrained(str(out / TOKENIZER_SUBDIR))
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "variant": cfg.variant,
        "config_name": cfg.name,
        "created_by": f"fastwam_ros {__version__}",
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "dtype": dtype,
        "num_model_tensors": len(model.state_dict()),
        "num_parameters": int(sum(p.numel() for p in model.parameters())),
        "bundled_vae": vae is not None,
        "bundled_text_encoder": text_encoder is not None,
        "num_text_embeds": len(text_embeds or {}),
    }
    meta.update(dict(extra_meta or {}))
    _write_json(out / META_FILE, meta)  # last: a directory with meta.json is complete
    return out


def load_policy_dir(path: str | Path) -> PolicyBundle:
    """Read and cross-check a policy directory (no model is built here; see :func:`check_model_state`)."""
    from fastwam_ros.model.config import ConfigError, FastWAMConfig

    p = Path(path).expanduser()
    if not p.is_dir():
        raise PolicyFormatError(f"policy directory not found: {p}")
    meta = _read_json(p / META_FILE)
    if not isinstance(meta, Mapping) or meta.get("format") != FORMAT_NAME:
        raise PolicyFormatError(
            f"{p / META_FILE}: 'format' is {meta.get('format') if isinstance(meta, Mapping) else None!r}, "
            f"expected {FORMAT_NAME!r}"
        )
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise PolicyFormatError(f"{p / META_FILE}: format_version {version!r} is not supported (expected {FORMAT_VERSION})")
    cfg_dict = _read_json(p / CONFIG_FILE)
    try:
        cfg = FastWAMConfig.from_dict(cfg_dict)
    except ConfigError as exc:
        raise PolicyFormatError(f"{p / CONFIG_FILE}: {exc}") from exc
    if meta.get("variant") not in (None, cfg.variant):
        raise PolicyFormatError(f"{p / META_FILE}: variant {meta.get('variant')!r} != config.json variant {cfg.variant!r}")
    tensors, _ = _load_safetensors(p / WEIGHTS_FILE)
    vae_state = {k[len(VAE_PREFIX) :]: v for k, v in tensors.items() if k.startswith(VAE_PREFIX)} or None
    model_state = {k: v for k, v in tensors.items() if not k.startswith(VAE_PREFIX)}
    norm = stats_from_dict(
        _read_json(p / STATS_FILE), where=str(p / STATS_FILE), state_dim=cfg.proprio_dim, action_dim=cfg.action_dim
    )
    text_embeds: dict[str, torch.Tensor] = {}
    enc_id = None
    if (p / TEXT_EMBEDS_FILE).exists():
        text_embeds, enc_id = load_text_embeds(p / TEXT_EMBEDS_FILE, text_len=cfg.policy.text_len, text_dim=cfg.text_dim)
    te_dir = p if (p / TEXT_ENCODER_SUBDIR / "config.json").is_file() else None
    return PolicyBundle(p, dict(meta), cfg, model_state, vae_state, norm, text_embeds, enc_id, te_dir)


def load_perception(path: str | Path) -> Any | None:
    """The policy directory's ``perception.json`` as a PerceptionConfig, or None when it has none."""
    f = Path(path) / PERCEPTION_FILE
    if not f.is_file():
        return None
    from fastwam_ros.perception.config import ConfigError, PerceptionConfig

    try:
        return PerceptionConfig.from_dict(_read_json(f))
    except ConfigError as exc:
        raise PolicyFormatError(f"{f}: {exc}") from exc


def check_model_state(module: nn.Module, state: Mapping[str, torch.Tensor], *, where: str) -> None:
    """Strict key + shape check of ``state`` against ``module``; the error names the file and the keys."""
    own = module.state_dict()
    missing = set(own) - set(state)
    unexpected = set(state) - set(own)
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(own[k].shape) != tuple(state[k].shape)
    ]
    problems = coverage_problems(missing, unexpected, shapes)
    if problems:
        raise PolicyFormatError("; ".join([f"{where} does not match the model built from config.json", *problems]))


def load_state_strict(module: nn.Module, state: Mapping[str, torch.Tensor], *, where: str) -> None:
    """:func:`check_model_state`, then copy (casting to each parameter's dtype)."""
    check_model_state(module, state, where=where)
    own = module.state_dict()
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
