"""Load Wan2.2-TI2V-5B video-expert weights from local files, in either layout, with strict key coverage.

Supported sources (all LOCAL; nothing is ever downloaded):

* **diffusers layout** - ``Wan-AI/Wan2.2-TI2V-5B-Diffusers``: a pipeline root with ``transformer/`` or the
  ``transformer/`` folder itself (``config.json`` + ``diffusion_pytorch_model*.safetensors`` [+ index]).
  The ``config.json`` is checked against the model config.
* **original Wan layout** - ``Wan-AI/Wan2.2-TI2V-5B``: ``diffusion_pytorch_model*.safetensors`` with the
  original names (``blocks.N.self_attn.q``, ``blocks.N.norm3``, ``head.head`` ...), mapped to diffusers names by
  :func:`original_to_diffusers_key` (diffusers_wan.md §4, reference spec §4.5; note ``norm3`` -> ``norm2``).
  A ``model.diffusion_model.`` prefix (ComfyUI) is stripped.

Both layouts are told apart by their tensor names, not by file names (the two repos use the same file names).
Loading streams one tensor at a time into the existing parameters (peak memory = model + one tensor) after the
full key set has been checked, so a failed load leaves the model untouched.

:func:`load_wan_into_fastwam` then initialises the action expert from the loaded video expert with the official
interpolation + alpha scaling (reference spec §1.6), through :mod:`fastwam_ros.model.checkpoints.action_init`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import coverage_problems, format_keys

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


class WeightLoadError(RuntimeError):
    """Weights do not fit the model: missing / unexpected keys, shape or config mismatches, unreadable files."""


# --------------------------------------------------------------------------------------------- key maps
# (original regex, diffusers template). Block-level entries use the captured block index.
_ORIG_TO_DIFF: list[tuple[str, str]] = [
    (r"patch_embedding\.(weight|bias)", r"patch_embedding.\1"),
    (r"text_embedding\.0\.(weight|bias)", r"condition_embedder.text_embedder.linear_1.\1"),
    (r"text_embedding\.2\.(weight|bias)", r"condition_embedder.text_embedder.linear_2.\1"),
    (r"time_embedding\.0\.(weight|bias)", r"condition_embedder.time_embedder.linear_1.\1"),
    (r"time_embedding\.2\.(weight|bias)", r"condition_embedder.time_embedder.linear_2.\1"),
    (r"time_projection\.1\.(weight|bias)", r"condition_embedder.time_proj.\1"),
    (r"blocks\.(\d+)\.self_attn\.(q|k|v)\.(weight|bias)", r"blocks.\1.attn1.to_\2.\3"),
    (r"blocks\.(\d+)\.self_attn\.o\.(weight|bias)", r"blocks.\1.attn1.to_out.0.\2"),
    (r"blocks\.(\d+)\.self_attn\.norm_(q|k)\.weight", r"blocks.\1.attn1.norm_\2.weight"),
    (r"blocks\.(\d+)\.cross_attn\.(q|k|v)\.(weight|bias)", r"blocks.\1.attn2.to_\2.\3"),
    (r"blocks\.(\d+)\.cross_attn\.o\.(weight|bias)", r"blocks.\1.attn2.to_out.0.\2"),
    (r"blocks\.(\d+)\.cross_attn\.norm_(q|k)\.weight", r"blocks.\1.attn2.norm_\2.weight"),
    (r"blocks\.(\d+)\.norm3\.(weight|bias)", r"blocks.\1.norm2.\2"),  # the affine cross-attn LN: names swap
    (r"blocks\.(\d+)\.ffn\.0\.(weight|bias)", r"blocks.\1.ffn.net.0.proj.\2"),
    (r"blocks\.(\d+)\.ffn\.2\.(weight|bias)", r"blocks.\1.ffn.net.2.\2"),
    (r"blocks\.(\d+)\.modulation", r"blocks.\1.scale_shift_table"),
    (r"head\.head\.(weight|bias)", r"proj_out.\1"),
    (r"head\.modulation", r"scale_shift_table"),
]
_DIFF_TO_ORIG: list[tuple[str, str]] = [
    (r"patch_embedding\.(weight|bias)", r"patch_embedding.\1"),
    (r"condition_embedder\.text_embedder\.linear_1\.(weight|bias)", r"text_embedding.0.\1"),
    (r"condition_embedder\.text_embedder\.linear_2\.(weight|bias)", r"text_embedding.2.\1"),
    (r"condition_embedder\.time_embedder\.linear_1\.(weight|bias)", r"time_embedding.0.\1"),
    (r"condition_embedder\.time_embedder\.linear_2\.(weight|bias)", r"time_embedding.2.\1"),
    (r"condition_embedder\.time_proj\.(weight|bias)", r"time_projection.1.\1"),
    (r"blocks\.(\d+)\.attn1\.to_(q|k|v)\.(weight|bias)", r"blocks.\1.self_attn.\2.\3"),
    (r"blocks\.(\d+)\.attn1\.to_out\.0\.(weight|bias)", r"blocks.\1.self_attn.o.\2"),
    (r"blocks\.(\d+)\.attn1\.norm_(q|k)\.weight", r"blocks.\1.self_attn.norm_\2.weight"),
    (r"blocks\.(\d+)\.attn2\.to_(q|k|v)\.(weight|bias)", r"blocks.\1.cross_attn.\2.\3"),
    (r"blocks\.(\d+)\.attn2\.to_out\.0\.(weight|bias)", r"blocks.\1.cross_attn.o.\2"),
    (r"blocks\.(\d+)\.attn2\.norm_(q|k)\.weight", r"blocks.\1.cross_attn.norm_\2.weight"),
    (r"blocks\.(\d+)\.norm2\.(weight|bias)", r"blocks.\1.norm3.\2"),
    (r"blocks\.(\d+)\.ffn\.net\.0\.proj\.(weight|bias)", r"blocks.\1.ffn.0.\2"),
    (r"blocks\.(\d+)\.ffn\.net\.2\.(weight|bias)", r"blocks.\1.ffn.2.\2"),
    (r"blocks\.(\d+)\.scale_shift_table", r"blocks.\1.modulation"),
    (r"proj_out\.(weight|bias)", r"head.head.\1"),
    (r"scale_shift_table", r"head.modulation"),
]
_ORIG_RE = [(re.compile(p + r"\Z"), t) for p, t in _ORIG_TO_DIFF]
_DIFF_RE = [(re.compile(p + r"\Z"), t) for p, t in _DIFF_TO_ORIG]
_STRIP_PREFIXES = ("model.diffusion_model.",)


def _map_key(key: str, table) -> str | None:
    for pat, tmpl in table:
        m = pat.match(key)
        if m:
            return m.expand(tmpl)
    return None


def original_to_diffusers_key(key: str) -> str | None:
    """Original Wan / DiffSynth / Fast-WAM video-expert name -> diffusers name (None if not a DiT key)."""
    for p in _STRIP_PREFIXES:
        if key.startswith(p):
            key = key[len(p) :]
    return _map_key(key, _ORIG_RE)


def diffusers_to_original_key(key: str) -> str | None:
    """diffusers ``WanTransformer3DModel`` name -> original Wan name (None if it has no counterpart)."""
    return _map_key(key, _DIFF_RE)


def _rename_all(sd: Mapping[str, Any], rename: Callable[[str], str | None], target: str) -> dict[str, Any]:
    out, bad = {}, []
    for k, v in sd.items():
        nk = rename(k)
        if nk is None:
            bad.append(k)
        else:
            out[nk] = v
    if bad:
        raise WeightLoadError(f"{len(bad)} key(s) have no {target} name: {format_keys(bad)}")
    return out


def convert_original_to_diffusers(sd: Mapping[str, Any]) -> dict[str, Any]:
    """Rename a whole original-layout state dict; unknown keys raise :class:`WeightLoadError`."""
    return _rename_all(sd, original_to_diffusers_key, "diffusers")


def convert_diffusers_to_original(sd: Mapping[str, Any]) -> dict[str, Any]:
    """Rename a whole diffusers-layout state dict to the original Wan names."""
    return _rename_all(sd, diffusers_to_original_key, "original Wan")


# --------------------------------------------------------------------------------------------- files
class TensorSource:
    """Read-only view over one or more weight files: ``keys()`` from headers only, tensors on demand."""

    def __init__(self, files: list[Path]):
        if not files:
            raise WeightLoadError("no weight files given")
        self.files = files
        self._where: dict[str, Path] = {}
        self._loaded: dict[Path, Mapping[str, torch.Tensor]] = {}
        for f in files:
            for k in self._file_keys(f):
                if k in self._where:
                    raise WeightLoadError(f"tensor {k!r} appears in both {self._where[k]} and {f}")
                self._where[k] = f

    def _file_keys(self, f: Path) -> list[str]:
        try:
            if f.suffix == ".safetensors":
                from safetensors import safe_open

                with safe_open(str(f), framework="pt") as h:
                    return list(h.keys())
            return list(self._torch_file(f).keys())
        except WeightLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - report which file is unreadable
            raise WeightLoadError(f"cannot read weight file {f}: {type(exc).__name__}: {exc}") from exc

    def _torch_file(self, f: Path) -> Mapping[str, torch.Tensor]:
        if f not in self._loaded:
            obj = torch.load(str(f), map_location="cpu", weights_only=True, mmap=True)
            if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
                obj = obj["state_dict"]
            if not isinstance(obj, Mapping):
                raise WeightLoadError(f"{f} does not hold a state dict (got {type(obj).__name__})")
            self._loaded[f] = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        return self._loaded[f]

    def keys(self) -> list[str]:
        return list(self._where)

    def shape(self, key: str) -> tuple[int, ...]:
        f = self._where[key]
        if f.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(f), framework="pt") as h:
                return tuple(h.get_slice(key).get_shape())
        return tuple(self._torch_file(f)[key].shape)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        out: dict[str, tuple[int, ...]] = {}
        for f in self.files:
            if f.suffix == ".safetensors":
                from safetensors import safe_open

                with safe_open(str(f), framework="pt") as h:
                    for k in h.keys():
                        out[k] = tuple(h.get_slice(k).get_shape())
            else:
                out.update({k: tuple(v.shape) for k, v in self._torch_file(f).items()})
        return out

    def iter_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(key, CPU tensor) one at a time, file by file."""
        for f in self.files:
            if f.suffix == ".safetensors":
                from safetensors import safe_open

                with safe_open(str(f), framework="pt") as h:
                    for k in h.keys():
                        yield k, h.get_tensor(k)
            else:
                yield from self._torch_file(f).items()


def find_weight_files(path: str | Path, stem: str = "diffusion_pytorch_model") -> list[Path]:
    """Weight files at ``path``: a file, or a directory's ``<stem>*.safetensors`` (via the index if present)."""
    p = Path(path).expanduser()
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"weights not found: {p} is neither a file nor a directory")
    index = p / f"{stem}.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except Exception as exc:  # noqa: BLE001
            raise WeightLoadError(f"cannot parse shard index {index}: {exc}") from exc
        files = sorted({p / name for name in weight_map.values()})
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"shards listed in {index} are missing: {missing}")
        return files
    files = sorted(p.glob(f"{stem}*.safetensors"))
    if not files:
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no {stem}*.safetensors (or other weight files) in {p}")
    return files


def detect_layout(keys: Iterable[str]) -> str:
    """``"diffusers"`` or ``"original"`` from the tensor names; raises if neither fits."""
    keys = list(keys)
    n_diff = sum(k.startswith(("condition_embedder.", "proj_out.")) or ".attn1." in k for k in keys)
    n_orig = sum(
        (k.startswith(("text_embedding.", "time_embedding.", "head.")) or ".self_attn." in k)
        for k in (k[len(p) :] if k.startswith(p) else k for k in keys for p in _STRIP_PREFIXES)
    )
    if n_diff and not n_orig:
        return "diffusers"
    if n_orig and not n_diff:
        return "original"
    raise WeightLoadError(
        f"cannot tell the Wan weight layout from the tensor names ({n_diff} diffusers-style, {n_orig} "
        f"original-style keys; e.g. {sorted(keys)[:5]})"
    )


# --------------------------------------------------------------------------------------------- config check
# diffusers transformer config key -> (VideoExpertConfig attribute, converter)
_DIFFUSERS_CFG_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "num_layers": ("num_layers", int),
    "num_attention_heads": ("num_heads", int),
    "attention_head_dim": ("attn_head_dim", int),
    "in_channels": ("in_dim", int),
    "out_channels": ("out_dim", int),
    "ffn_dim": ("ffn_dim", int),
    "text_dim": ("text_dim", int),
    "freq_dim": ("freq_dim", int),
    "patch_size": ("patch_size", lambda v: tuple(int(x) for x in v)),
    "eps": ("eps", float),
}


def check_diffusers_transformer_config(config_path: Path, video_cfg: Any) -> None:
    """Compare a diffusers ``transformer/config.json`` with the model's video-expert config."""
    try:
        d = json.loads(config_path.read_text())
    except Exception as exc:  # noqa: BLE001
        raise WeightLoadError(f"cannot parse {config_path}: {exc}") from exc
    if d.get("_class_name", "WanTransformer3DModel") != "WanTransformer3DModel":
        raise WeightLoadError(f"{config_path}: _class_name {d.get('_class_name')!r} is not WanTransformer3DModel")
    diffs = []
    for key, (attr, conv) in _DIFFUSERS_CFG_FIELDS.items():
        if key in d and d[key] is not None:
            want = getattr(video_cfg, attr)
            want = tuple(want) if isinstance(want, list) else want
            if conv(d[key]) != want:
                diffs.append(f"{key}={d[key]!r} (model config {attr}={want!r})")
    for key, want in (("qk_norm", "rms_norm_across_heads"), ("cross_attn_norm", True)):
        if key in d and d[key] != want:
            diffs.append(f"{key}={d[key]!r} (expected {want!r})")
    for key in ("image_dim", "added_kv_proj_dim"):
        if d.get(key) is not None:
            diffs.append(f"{key}={d[key]!r} (Fast-WAM has no image branch)")
    if diffs:
        raise WeightLoadError(f"{config_path} does not match the model config: " + "; ".join(diffs))


def _resolve_wan_source(path: str | Path) -> tuple[list[Path], Path | None]:
    """(weight files, diffusers config.json or None) for a pipeline root, transformer dir, repo dir or file."""
    p = Path(path).expanduser()
    if p.is_dir() and (p / "transformer").is_dir():
        p = p / "transformer"
    files = find_weight_files(p)
    cfg = p / "config.json" if p.is_dir() and (p / "config.json").is_file() else None
    return files, cfg


# --------------------------------------------------------------------------------------------- loading
@dataclass
class LoadReport:
    """What a strict load did."""

    source: str
    layout: str
    files: list[str]
    num_tensors: int
    dtype_casts: dict[str, int] = field(default_factory=dict)  # "bfloat16->float32": count

    def __str__(self) -> str:
        return f"{self.num_tensors} tensors from {self.layout}-layout {self.source} ({len(self.files)} file(s))"


def strict_copy_(
    module: nn.Module,
    source: Iterable[tuple[str, torch.Tensor]],
    shapes: Mapping[str, tuple[int, ...]],
    rename: Callable[[str], str | None],
    *,
    what: str,
) -> dict[str, int]:
    """Copy ``source`` tensors into ``module``'s parameters/buffers after checking the key sets and shapes.

    ``rename`` maps a source key to a module key (None = unmappable, reported as unexpected). Raises
    :class:`WeightLoadError` listing missing, unexpected and shape-mismatched keys before copying anything.
    Returns counts of dtype conversions performed.
    """
    targets = dict(module.state_dict(keep_vars=True))
    mapped: dict[str, str] = {}
    unexpected = []
    for k in shapes:
        nk = rename(k)
        if nk is None or nk not in targets:
            unexpected.append(k if nk is None or nk == k else f"{k} (-> {nk})")
        elif nk in mapped.values():
            unexpected.append(f"{k} (duplicate of {nk})")
        else:
            mapped[k] = nk
    missing = sorted(set(targets) - set(mapped.values()))
    bad_shape = [
        f"{k}: file {tuple(shapes[k])} vs model {tuple(targets[nk].shape)}"
        for k, nk in mapped.items()
        if tuple(shapes[k]) != tuple(targets[nk].shape)
    ]
    problems = coverage_problems(missing, unexpected, bad_shape)
    if problems:
        raise WeightLoadError("; ".join([f"{what}: the weights do not match the model (strict loading)", *problems]))
    casts: dict[str, int] = {}
    with torch.no_grad():
        for k, t in source:
            dst = targets[mapped[k]]
            if t.dtype != dst.dtype:
                tag = f"{str(t.dtype).replace('torch.', '')}->{str(dst.dtype).replace('torch.', '')}"
                casts[tag] = casts.get(tag, 0) + 1
            dst.copy_(t)
    return casts


def load_wan_video_weights(transformer: nn.Module, path: str | Path, *, video_cfg: Any | None = None) -> LoadReport:
    """Strictly load Wan2.2 DiT weights (diffusers or original layout) into a ``WanTransformer3DModel``.

    ``path``: pipeline root, ``transformer/`` dir, original repo dir or a single weight file.
    ``video_cfg``: the model's ``VideoExpertConfig``, checked against a diffusers ``config.json`` if present.
    """
    files, cfg_path = _resolve_wan_source(path)
    src = TensorSource(files)
    layout = detect_layout(src.keys())
    if layout == "diffusers" and cfg_path is not None and video_cfg is not None:
        check_diffusers_transformer_config(cfg_path, video_cfg)
    if layout == "diffusers":
        rename: Callable[[str], str | None] = lambda k: k  # noqa: E731
    else:
        rename = original_to_diffusers_key
    casts = strict_copy_(transformer, src.iter_tensors(), src.shapes(), rename, what=f"Wan video weights {path}")
    return LoadReport(str(path), layout, [str(f) for f in files], len(src.keys()), casts)


def _video_transformer(model: nn.Module) -> nn.Module:
    """The diffusers ``WanTransformer3DModel`` inside a FastWAM / VideoExpert / the transformer itself."""
    m = getattr(model, "video_expert", model)
    return getattr(m, "transformer", m)


def init_action_expert_from_video(model: nn.Module, *, alpha_scaling: bool = True) -> dict[str, Any]:
    """Official action-expert init (§1.6) on a FastWAM, in place: the video expert's (loaded) weights are
    interpolated to the action width and alpha-scaled; ``action_encoder.*`` and ``head.*`` keep their random
    init. Delegates to :func:`fastwam_ros.model.checkpoints.action_init.init_action_expert_from_video`; returns its
    per-key report {official action key: {"treatment": ..., "alpha": ...}}."""
    from fastwam_ros.model.checkpoints import action_init

    return action_init.init_action_expert_from_video(model, alpha_scaling=alpha_scaling)


def load_wan_into_fastwam(
    model: nn.Module, wan_path: str | Path, *, init_action_expert: bool = True, alpha_scaling: bool = True
) -> LoadReport:
    """Training start: Wan2.2 weights -> video expert (strict), then the action expert from them."""
    video_cfg = getattr(getattr(model, "cfg", None), "video", None)
    report = load_wan_video_weights(_video_transformer(model), wan_path, video_cfg=video_cfg)
    if init_action_expert:
        init_action_expert_from_video(model, alpha_scaling=alpha_scaling)
    return report


def save_wan_video_weights(
    transformer: nn.Module, out_dir: str | Path, *, layout: str = "diffusers", max_shard_bytes: int | None = None
) -> list[Path]:
    """Write a video expert's weights as ``diffusion_pytorch_model*.safetensors`` in either layout.

    diffusers layout also writes ``config.json`` (via ``save_pretrained``). Used by tests and to export.
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if layout == "diffusers" and hasattr(transformer, "save_pretrained"):
        kw = {} if max_shard_bytes is None else {"max_shard_size": max_shard_bytes}
        transformer.save_pretrained(str(out), safe_serialization=True, **kw)
        return find_weight_files(out)
    if layout not in ("diffusers", "original"):
        raise ValueError(f"layout must be 'diffusers' or 'original', got {layout!r}")
    sd = {k: v.detach().contiguous().cpu() for k, v in transformer.state_dict().items()}
    if layout == "original":
        sd = convert_diffusers_to_original(sd)
    if max_shard_bytes is None:
        path = out / "diffusion_pytorch_model.safetensors"
        save_file(sd, str(path))
        return [path]
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k in sorted(sd):
        nbytes = sd[k].numel() * sd[k].element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][k] = sd[k]
        size += nbytes
    n = len(shards)
    weight_map, paths = {}, []
    for i, shard in enumerate(shards):
        name = f"diffusion_pytorch_model-{i + 1:05d}-of-{n:05d}.safetensors"
        save_file(shard, str(out / name))
        paths.append(out / name)
        weight_map.update({k: name for k in shard})
    (out / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2)
    )
    return paths
