"""Training configuration: one YAML file (sections ``model``, ``data``, ``train``) plus ``key=value`` overrides.

Every key is a dataclass field below; unknown keys are errors naming the section. Overrides use dotted paths
(``train.max_steps=100``, ``data.paths=[a,b]``) and are parsed as YAML scalars / lists.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import TrainConfigError

VARIANTS = ("fastwam", "joint", "idm", "fastwam_no_video")
REPORT_TO = ("none", "tensorboard", "wandb")


@dataclass
class ModelSection:
    """config: model preset name (``tiny``, ``wan22_5b``) or a model config file.
    init: policy directory (our format) or official ``.pt`` checkpoint to fine-tune from; null = random init.
    variant: fastwam | joint | idm | fastwam_no_video (video loss weight 0); null keeps the config's.
    loss_lambda_video / loss_lambda_action: loss weights; null keeps the config's.
    vae: local Wan2.2 VAE directory (diffusers layout), or ``random`` (tiny test configs only).
    text_encoder: local UMT5 directory (with tokenizer), or ``random`` (tiny test configs only).
    text_cache_dir: optional on-disk instruction-embedding cache."""

    config: str = "wan22_5b"
    init: str | None = None
    variant: str | None = None
    loss_lambda_video: float | None = None
    loss_lambda_action: float | None = None
    vae: str | None = None
    text_encoder: str | None = None
    tokenizer: str | None = None
    text_cache_dir: str | None = None
    seed: int = 0  # seed of random initialisation (random init / random VAE / random text encoder)


@dataclass
class DataSection:
    """format: ``rosbag`` (rosbag2 MCAP/sqlite3), ``lerobot`` (LeRobot v2/v3) or ``cache`` (``fastwam convert``).
    paths: datasets / recordings / folders of recordings.
    perception: the perception config (cameras, layout, tile sizes, joint names) as a mapping, or a path to a
    robot YAML holding it; it is saved with every checkpoint so deployment tiles identically.
    rosbag / lerobot: source-specific settings (see RosbagSpec / LeRobotSpec).
    stats: dataset_stats.json to use. Read from here, else ``<paths[0]>/dataset_stats.json`` when present, else
    ``<output_dir>/dataset_stats.json``; when none exists it is computed and written to ``stats`` (or the
    output_dir), never into the recordings."""

    format: str = "rosbag"
    paths: list[str] = field(default_factory=list)
    perception: Any = None
    rosbag: dict[str, Any] = field(default_factory=dict)
    lerobot: dict[str, Any] = field(default_factory=dict)
    stats: str | None = None
    num_workers: int = 0
    latent_cache: str = "none"  # none | memory | disk: VAE latents of each sample encoded once
    latent_cache_dir: str | None = None
    window_stride: int = 1  # train on the windows starting every k-th tick only (fewer latents to encode)


@dataclass
class TrainSection:
    """Optimisation (reference spec §3.5 defaults)."""

    batch_size: int = 16  # per process
    grad_accum_steps: int = 1
    epochs: int = 5
    max_steps: int | None = None  # overrides epochs
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.01
    eps: float = 1e-8
    warmup_ratio: float = 0.05
    min_lr: float = 1e-6
    max_grad_norm: float = 1.0
    mixed_precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | bf16 | fp16 | no
    seed: int = 42
    log_every: int = 10
    save_every: int = 2000
    keep_last: int = 3  # checkpoints kept (0 = all)
    resume: str | None = None  # checkpoint dir, or "auto" (latest in output_dir if any)
    progress: bool = True  # tqdm bar when stderr is a terminal; otherwise one log line every log_every steps
    cpu: bool = False  # force CPU even when a GPU is present
    smoothing: float = 0.9  # EMA weight of the smoothed loss in the logs / plot (0 = no smoothing)
    val_fraction: float = 0.1  # episodes held out for validation (>= 1 when there are >= 2 episodes; 0 = none)
    val_seed: int = 0  # seed of the episode split
    val_every: int = 100  # optimizer steps between validation losses (also at the last step)
    val_samples: int = 16  # fixed validation samples (evenly spaced), each evaluated with the same noise seeds
    report_to: str = "none"  # none | tensorboard | wandb (accelerate trackers; optional packages)


@dataclass
class TrainConfig:
    output_dir: str = "runs/fastwam"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)

    def validate(self) -> TrainConfig:
        if self.model.variant is not None and self.model.variant not in VARIANTS:
            raise TrainConfigError(f"model.variant must be one of {VARIANTS}, got {self.model.variant!r}")
        if self.data.format not in ("rosbag", "lerobot", "cache"):
            raise TrainConfigError(f"data.format must be rosbag, lerobot or cache, got {self.data.format!r}")
        if not self.data.paths:
            raise TrainConfigError("data.paths is empty: list the recordings / datasets to train on")
        if self.data.latent_cache not in ("none", "memory", "disk"):
            raise TrainConfigError(f"data.latent_cache must be none, memory or disk, got {self.data.latent_cache!r}")
        if self.data.latent_cache == "disk" and not self.data.latent_cache_dir:
            raise TrainConfigError("data.latent_cache=disk needs data.latent_cache_dir")
        if int(self.data.window_stride) < 1:
            raise TrainConfigError(f"data.window_stride must be >= 1, got {self.data.window_stride}")
        t = self.train
        if t.batch_size < 1 or t.grad_accum_steps < 1:
            raise TrainConfigError("train.batch_size and train.grad_accum_steps must be >= 1")
        if t.max_steps is not None and t.max_steps < 1:
            raise TrainConfigError("train.max_steps must be >= 1")
        if not 0.0 <= t.warmup_ratio < 1.0:
            raise TrainConfigError(f"train.warmup_ratio must be in [0, 1), got {t.warmup_ratio}")
        if t.mixed_precision not in ("auto", "bf16", "fp16", "no"):
            raise TrainConfigError(f"train.mixed_precision must be auto, bf16, fp16 or no, got {t.mixed_precision!r}")
        if len(t.betas) != 2:
            raise TrainConfigError(f"train.betas must have 2 values, got {t.betas}")
        if t.save_every < 1 or t.log_every < 1 or t.val_every < 1:
            raise TrainConfigError("train.save_every, train.log_every and train.val_every must be >= 1")
        if not 0.0 <= t.val_fraction < 1.0:
            raise TrainConfigError(f"train.val_fraction must be in [0, 1), got {t.val_fraction}")
        if not 0.0 <= t.smoothing < 1.0:
            raise TrainConfigError(f"train.smoothing must be in [0, 1), got {t.smoothing}")
        if t.val_samples < 1:
            raise TrainConfigError("train.val_samples must be >= 1")
        if t.report_to not in REPORT_TO:
            raise TrainConfigError(f"train.report_to must be one of {REPORT_TO}, got {t.report_to!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


_SECTIONS = {"model": ModelSection, "data": DataSection, "train": TrainSection}


def _num(v: Any, where: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError) as exc:
        raise TrainConfigError(f"{where} must be a number, got {v!r}") from exc


def _build(cls, d: dict[str, Any], where: str):
    if not isinstance(d, dict):
        raise TrainConfigError(f"{where} must be a mapping, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise TrainConfigError(f"unknown key(s) in {where}: {unknown}; allowed: {sorted(fields)}")
    kwargs = {}
    for k, v in d.items():
        if cls is TrainConfig and k in _SECTIONS:
            kwargs[k] = _build(_SECTIONS[k], v or {}, k)
        elif k == "betas":
            kwargs[k] = tuple(_num(x, f"{where}.{k}") for x in v)
        elif isinstance(v, str) and str(fields[k].type).split(" ")[0] in ("float", "int"):
            kwargs[k] = _num(v, f"{where}.{k}")  # YAML 1.1 reads 1e-4 (no dot) as a string
        else:
            kwargs[k] = v
    return cls(**kwargs)


def config_from_dict(d: dict[str, Any]) -> TrainConfig:
    return _build(TrainConfig, d, "config").validate()


def _set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = d
    for p in parts[:-1]:
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {}
        if not isinstance(nxt, dict):
            raise TrainConfigError(f"override {key}: {p} is not a section")
        node = nxt
    node[parts[-1]] = value


def apply_overrides(d: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (values parsed as YAML) to a config dict in place; returns it."""
    import yaml

    for ov in overrides:
        if "=" not in ov:
            raise TrainConfigError(f"override {ov!r} is not key=value")
        key, raw = ov.split("=", 1)
        key = key.strip().lstrip("-")
        if not key:
            raise TrainConfigError(f"override {ov!r} has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise TrainConfigError(f"override {ov!r}: cannot parse the value: {exc}") from exc
        _set_dotted(d, key, value)
    return d


def config_keys() -> list[tuple[str, Any]]:
    """(dotted key, default) of every configuration key, in declaration order (for ``--help``)."""
    out: list[tuple[str, Any]] = []
    for f in dataclasses.fields(TrainConfig):
        if f.name in _SECTIONS:
            for g in dataclasses.fields(_SECTIONS[f.name]):
                default = g.default_factory() if g.default_factory is not dataclasses.MISSING else g.default
                out.append((f"{f.name}.{g.name}", default))
        else:
            out.append((f.name, f.default))
    return out


def load_train_config(path: str | Path | None, overrides: list[str] | None = None,
                      values: dict[str, Any] | None = None) -> TrainConfig:
    """Read a training YAML (relative paths inside stay relative to the working directory), set ``values``
    (dotted key -> Python value, e.g. from command-line options) and apply the ``key=value`` overrides."""
    import yaml

    d: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise TrainConfigError(f"training config {p} not found")
        try:
            d = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise TrainConfigError(f"cannot parse {p}: {exc}") from exc
        if not isinstance(d, dict):
            raise TrainConfigError(f"{p}: top level must be a mapping")
    for key, value in (values or {}).items():
        _set_dotted(d, key, value)
    apply_overrides(d, list(overrides or []))
    return config_from_dict(d)
