"""Official Fast-WAM checkpoints -> :class:`FastWAM`, with strict key coverage.

Formats: the official ``torch.save`` dict (``mot``: keys ``mixtures.video.*`` / ``mixtures.action.*``,
``proprio_encoder``: {weight, bias}, plus ``step``, ``torch_dtype``) read with ``weights_only=True``, and the same
keys flattened in a safetensors file (``mixtures.video.*``, ``mixtures.action.*``, ``proprio_encoder.*``).

Key names: the official experts use the original Wan names; ours are diffusers names (video under
``video_expert.transformer.``, action under ``action_expert.``). Note the LayerNorm swap: original ``norm3``
(affine, before cross-attention) is diffusers ``norm2``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

_BLOCK_RULES = [
    (r"self_attn\.(q|k|v)\.", lambda m: f"attn1.to_{m.group(1)}."),
    (r"self_attn\.o\.", lambda m: "attn1.to_out.0."),
    (r"self_attn\.norm_(q|k)\.", lambda m: f"attn1.norm_{m.group(1)}."),
    (r"cross_attn\.(q|k|v)\.", lambda m: f"attn2.to_{m.group(1)}."),
    (r"cross_attn\.o\.", lambda m: "attn2.to_out.0."),
    (r"cross_attn\.norm_(q|k)\.", lambda m: f"attn2.norm_{m.group(1)}."),
    (r"norm3\.", lambda m: "norm2."),
    (r"ffn\.0\.", lambda m: "ffn.net.0.proj."),
    (r"ffn\.2\.", lambda m: "ffn.net.2."),
]
_COMMON_RULES = {
    "text_embedding.0.": "condition_embedder.text_embedder.linear_1.",
    "text_embedding.2.": "condition_embedder.text_embedder.linear_2.",
    "time_embedding.0.": "condition_embedder.time_embedder.linear_1.",
    "time_embedding.2.": "condition_embedder.time_embedder.linear_2.",
    "time_projection.1.": "condition_embedder.time_proj.",
}
_VIDEO_RULES = {"patch_embedding.": "patch_embedding.", "head.head.": "proj_out."}
_ACTION_RULES = {"action_encoder.": "action_encoder.", "head.": "head."}


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not match the model (lists the offending keys)."""


def _map_block_key(rest: str) -> str | None:
    """``i.<orig>`` -> ``i.<diffusers>`` for a block key (without the ``blocks.`` prefix)."""
    m = re.match(r"(\d+)\.(.*)$", rest)
    if not m:
        return None
    idx, tail = m.groups()
    if tail == "modulation":
        return f"{idx}.scale_shift_table"
    for pat, rep in _BLOCK_RULES:
        mm = re.match(pat, tail)
        if mm:
            return f"{idx}.{rep(mm)}{tail[mm.end():]}"
    return None


def official_expert_key_to_ours(expert: str, key: str) -> str | None:
    """Map one official (original Wan) expert key to our module key, or None when it has no counterpart.

    ``expert`` is ``video`` or ``action``; the result is relative to the FastWAM module."""
    if key.startswith("blocks."):
        mapped = _map_block_key(key[len("blocks.") :])
        rel = None if mapped is None else "blocks." + mapped
    elif expert == "video" and key == "head.modulation":
        rel = "scale_shift_table"
    else:
        rel = None
        rules = {**_COMMON_RULES, **(_VIDEO_RULES if expert == "video" else _ACTION_RULES)}
        for src, dst in rules.items():
            if key.startswith(src):
                rel = dst + key[len(src) :]
                break
    if rel is None:
        return None
    return ("video_expert.transformer." if expert == "video" else "action_expert.") + rel


def official_key_to_ours(key: str) -> str | None:
    """``mixtures.video.*`` / ``mixtures.action.*`` / ``proprio_encoder.*`` -> our FastWAM state-dict key."""
    for expert in ("video", "action"):
        prefix = f"mixtures.{expert}."
        if key.startswith(prefix):
            return official_expert_key_to_ours(expert, key[len(prefix) :])
    if key in ("proprio_encoder.weight", "proprio_encoder.bias"):
        return key
    return None


def ours_to_official_key(model, key: str) -> str:
    """Inverse of :func:`official_key_to_ours` (built from the model's own keys)."""
    inv = _inverse_map(model)
    if key not in inv:
        raise KeyError(f"{key} has no official counterpart")
    return inv[key]


def _inverse_map(model) -> dict[str, str]:
    out = {}
    for k in model.state_dict():
        for expert, prefix in (("video", "video_expert.transformer."), ("action", "action_expert.")):
            if k.startswith(prefix):
                out[k] = _guess_official(expert, k[len(prefix) :])
        if k.startswith("proprio_encoder."):
            out[k] = k
    return out


def _guess_official(expert: str, rel: str) -> str:
    inv_common = {v: k for k, v in _COMMON_RULES.items()}
    inv_specific = {v: k for k, v in (_VIDEO_RULES if expert == "video" else _ACTION_RULES).items()}
    rules = [
        ("attn1.to_out.0.", "self_attn.o."), ("attn2.to_out.0.", "cross_attn.o."),
        ("attn1.to_", "self_attn."), ("attn2.to_", "cross_attn."),
        ("attn1.norm_", "self_attn.norm_"), ("attn2.norm_", "cross_attn.norm_"),
        ("norm2.", "norm3."), ("ffn.net.0.proj.", "ffn.0."), ("ffn.net.2.", "ffn.2."),
        ("scale_shift_table", "modulation"),
    ]
    if rel.startswith("blocks."):
        idx, tail = rel[len("blocks.") :].split(".", 1)
        for src, dst in rules:
            if tail.startswith(src):
                return f"mixtures.{expert}.blocks.{idx}.{dst}{tail[len(src):]}"
    if expert == "video" and rel == "scale_shift_table":
        return "mixtures.video.head.modulation"
    for table in (inv_common, inv_specific):
        for src, dst in table.items():
            if rel.startswith(src):
                return f"mixtures.{expert}.{dst}{rel[len(src):]}"
    return f"mixtures.{expert}.{rel}"


def read_official_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an official checkpoint (``.pt`` dict or flattened ``.safetensors``) into flat official keys. The file's
    header is validated first (:mod:`.file_check`): a corrupt or truncated file fails in seconds."""
    from .file_check import official_payload

    return official_payload(path)


def flatten_official_payload(payload, where: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The official ``save_checkpoint`` dict -> flat {official key: tensor}."""
    if not isinstance(payload, Mapping):
        raise CheckpointError(f"{where}: expected a dict payload, got {type(payload).__name__}")
    if "mot" not in payload:
        raise CheckpointError(f"{where}: no 'mot' entry (keys: {sorted(payload)})")
    flat = {}
    for k, v in payload["mot"].items():
        flat[k] = v
    prop = payload.get("proprio_encoder")
    if prop is not None:
        for k, v in prop.items():
            flat[f"proprio_encoder.{k}"] = v
    for k, v in flat.items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f"{where}: entry {k} is not a tensor ({type(v).__name__})")
    return flat


def format_keys(keys: Iterable[str], limit: int = 20) -> str:
    """``[a, b, ...] (n total)``: a short listing of keys for error messages that are not strict-coverage ones."""
    keys = sorted(keys)
    return "[" + ", ".join(keys[:limit]) + (", ..." if len(keys) > limit else "") + f"] ({len(keys)} total)"


def coverage_problems(missing: Iterable[str], unexpected: Iterable[str], shape_mismatches: Iterable[str]) -> list[str]:
    """The parts of a strict-loading error, every offending key listed (one implementation for the official
    checkpoint, the Wan weights and the policy directory): ``"<n> missing key(s): a, b"`` and likewise."""
    problems = []
    for what, keys in (("missing key(s)", missing), ("unexpected key(s)", unexpected),
                       ("shape mismatch(es)", shape_mismatches)):
        keys = sorted(keys)
        if keys:
            problems.append(f"{len(keys)} {what}: " + ", ".join(keys))
    return problems


def convert_official_state_dict(model, official: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename official keys to ours and check STRICT coverage and shapes; errors list every bad key."""
    ours = model.state_dict()
    converted, unexpected = {}, []
    for k, v in official.items():
        nk = official_key_to_ours(k)
        if nk is None or nk not in ours:
            unexpected.append(k)
        else:
            converted[nk] = v
    missing = sorted(set(ours) - set(converted))
    inv = _inverse_map(model)
    shape_bad = [
        f"{k} (checkpoint {tuple(v.shape)} vs model {tuple(ours[nk].shape)})"
        for nk, v in converted.items()
        for k in [inv.get(nk, nk)]
        if tuple(v.shape) != tuple(ours[nk].shape)
    ]
    problems = coverage_problems([inv.get(m, m) for m in missing], unexpected, shape_bad)
    if problems:
        raise CheckpointError("checkpoint does not match the model: " + "; ".join(problems))
    return converted


def load_official_checkpoint(model, path_or_state, strict: bool = True) -> dict:
    """Load an official checkpoint (path, payload dict or flat dict) into ``model``; returns a report
    {``missing``: [], ``unexpected``: [], ``num_tensors``: n}. Always strict: any mismatch raises."""
    if isinstance(path_or_state, (str, Path)):
        flat = read_official_checkpoint(path_or_state)
    elif isinstance(path_or_state, Mapping) and "mot" in path_or_state:
        flat = flatten_official_payload(path_or_state)
    else:
        flat = dict(path_or_state)
    converted = convert_official_state_dict(model, flat)
    dtype = next(iter(model.state_dict().values())).dtype
    res = model.load_state_dict({k: v.to(dtype) for k, v in converted.items()}, strict=True)
    return {"missing": list(res.missing_keys), "unexpected": list(res.unexpected_keys), "num_tensors": len(converted)}


def export_official_state_dict(model) -> dict[str, torch.Tensor]:
    """Our state dict renamed to the official flat layout (``mixtures.*``, ``proprio_encoder.*``)."""
    inv = _inverse_map(model)
    return {inv[k]: v for k, v in model.state_dict().items()}
