"""Configuration dataclasses for the Fast-WAM model (video expert, action expert, MoT variant, flow matching,
normalisation, policy, VAE and text encoder), with a JSON/YAML round trip and named presets.

Presets live in ``models/<name>.yaml`` (found through :func:`fastwam_ros.resources.find_share_file`):
``wan22_5b`` (the real Wan2.2-TI2V-5B sizes, RoboTwin 14-dim actions) and ``tiny`` (CPU tests).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VARIANTS = ("fastwam", "joint", "idm", "fastwam_no_video")
NORM_MODES = ("z-score", "min/max")
DEFAULT_PROMPT = "A video recorded from a robot's point of view executing the following instruction: {task}"

# Wan2.2 VAE per-channel latent statistics (48 channels), as in the diffusers Wan2.2 VAE config.
WAN22_LATENTS_MEAN = [
    -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557, -0.1382, 0.0542, 0.2813, 0.0891,
    0.1570, -0.0098, 0.0375, -0.1825, -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
    -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230, -0.0313, -0.1649, 0.0117, 0.0723,
    -0.2839, -0.2083, -0.0520, 0.3748, 0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667,
]
WAN22_LATENTS_STD = [
    0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013, 0.8158, 1.0344, 0.5894, 1.0901,
    0.6885, 0.6165, 0.8454, 0.4978, 0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
    0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093, 0.5709, 0.6065, 0.6415, 0.4944,
    0.5726, 1.2042, 0.5458, 1.6887, 0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744,
]


from fastwam_ros.errors import ConfigError  # noqa: E402  (the package's one config error, re-exported here)


@dataclass
class VideoExpertConfig:
    """Wan2.2 TI2V DiT (the video expert). ``hidden_dim`` must equal ``num_heads * attn_head_dim``."""

    hidden_dim: int = 3072
    ffn_dim: int = 14336
    num_layers: int = 30
    num_heads: int = 24
    attn_head_dim: int = 128
    in_dim: int = 48  # VAE latent channels
    out_dim: int = 48
    patch_size: tuple[int, int, int] = (1, 2, 2)
    text_dim: int = 4096
    freq_dim: int = 256
    eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_max_seq_len: int = 1024
    video_attention_mask_mode: str = "first_frame_causal"

    def validate(self) -> None:
        if self.hidden_dim != self.num_heads * self.attn_head_dim:
            raise ConfigError(
                f"video hidden_dim {self.hidden_dim} must equal num_heads*attn_head_dim "
                f"({self.num_heads}*{self.attn_head_dim})"
            )
        if self.video_attention_mask_mode not in ("first_frame_causal", "bidirectional", "per_frame_causal"):
            raise ConfigError(f"unknown video_attention_mask_mode {self.video_attention_mask_mode!r}")
        if len(self.patch_size) != 3:
            raise ConfigError(f"patch_size must have 3 entries, got {self.patch_size}")


@dataclass
class ActionExpertConfig:
    """ActionDiT: same depth/heads/head dim as the video expert, its own (narrower) width."""

    hidden_dim: int = 1024
    ffn_dim: int = 4096
    num_layers: int = 30
    num_heads: int = 24
    attn_head_dim: int = 128
    action_dim: int = 14
    text_dim: int = 4096
    freq_dim: int = 256
    eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_max_seq_len: int = 1024


@dataclass
class FlowConfig:
    """Flow matching: phi(u) = s*u/(1+(s-1)*u); timesteps in [0, num_train_timesteps]."""

    num_train_timesteps: int = 1000
    train_shift: float = 5.0
    infer_shift: float = 5.0
    num_inference_steps: int = 10
    weight_eps: float = 1e-10


@dataclass
class NormalizationConfig:
    """Action/state normaliser: ``z-score`` (RoboTwin) or ``min/max`` (LIBERO); forward clamps to +-clamp."""

    mode: str = "z-score"
    clamp: float = 5.0

    def validate(self) -> None:
        if self.mode not in NORM_MODES:
            raise ConfigError(f"normalization mode must be one of {NORM_MODES}, got {self.mode!r}")


@dataclass
class PolicyConfig:
    """Inference-time settings of a policy (what one replan produces)."""

    action_horizon: int = 32
    text_len: int = 128  # T5 tokens; the context has text_len + 1 rows (proprio token)
    prompt_template: str = DEFAULT_PROMPT
    image_height: int = 384
    image_width: int = 320
    camera_layout: str = "robotwin"  # "robotwin" (head over [left|right]) or "horizontal"
    num_video_frames: int = 9  # pixel frames of a training clip (3 latent frames)
    seed: int = 42
    # Scale of the initial noise of the action sampling (1 = the official N(0, I)). 0 starts every Euler
    # integration from the noise distribution's mean: one deterministic, smooth chunk per observation (the demo
    # checkpoint uses it: its tiny action expert's chunks carry step-to-step noise otherwise).
    initial_noise_scale: float = 1.0


@dataclass
class VAEConfig:
    """Wan2.2 VAE (diffusers ``AutoencoderKLWan``) settings; latents are normalised as (z - mean) / std."""

    base_dim: int = 160
    decoder_base_dim: int = 256
    z_dim: int = 48
    dim_mult: list[int] = field(default_factory=lambda: [1, 2, 4, 4])
    num_res_blocks: int = 2
    temperal_downsample: list[bool] = field(default_factory=lambda: [False, True, True])
    is_residual: bool = True
    in_channels: int = 12
    out_channels: int = 12
    patch_size: int = 2
    scale_factor_spatial: int = 16
    scale_factor_temporal: int = 4
    latents_mean: list[float] = field(default_factory=lambda: list(WAN22_LATENTS_MEAN))
    latents_std: list[float] = field(default_factory=lambda: list(WAN22_LATENTS_STD))


@dataclass
class TextEncoderConfig:
    """UMT5 encoder (transformers ``UMT5EncoderModel``) settings; ``d_model`` must equal the experts' text_dim."""

    vocab_size: int = 256384
    d_model: int = 4096
    d_kv: int = 64
    d_ff: int = 10240
    num_layers: int = 24
    num_heads: int = 64
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    feed_forward_proj: str = "gated-gelu"


@dataclass
class FastWAMConfig:
    """Everything needed to build a :class:`fastwam_ros.model.network.fastwam.FastWAM`."""

    name: str = "wan22_5b"
    variant: str = "fastwam"
    proprio_dim: int = 14
    loss_lambda_video: float = 1.0
    loss_lambda_action: float = 1.0
    idm_cond_noise_prob: float = 0.5  # IDM teacher forcing: chance of a noised conditioning copy
    dtype: str = "float32"
    video: VideoExpertConfig = field(default_factory=VideoExpertConfig)
    action: ActionExpertConfig = field(default_factory=ActionExpertConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    normalization: NormalizationConfig = field(default_factory=NormalizationConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)

    # ---- convenience -------------------------------------------------------------------------------
    @property
    def action_dim(self) -> int:
        return self.action.action_dim

    @property
    def text_dim(self) -> int:
        return self.video.text_dim

    @property
    def effective_lambda_video(self) -> float:
        """The video loss weight actually used (0 for the ``fastwam_no_video`` variant)."""
        return 0.0 if self.variant == "fastwam_no_video" else float(self.loss_lambda_video)

    def validate(self) -> FastWAMConfig:
        """Check cross-field consistency; returns self. Raises :class:`ConfigError` with the reason."""
        if self.variant not in VARIANTS:
            raise ConfigError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        self.video.validate()
        self.normalization.validate()
        v, a = self.video, self.action
        for fld in ("num_layers", "num_heads", "attn_head_dim"):
            if getattr(v, fld) != getattr(a, fld):
                raise ConfigError(
                    f"action expert {fld}={getattr(a, fld)} must equal the video expert's {getattr(v, fld)}"
                )
        if a.text_dim != v.text_dim:
            raise ConfigError(f"action text_dim {a.text_dim} != video text_dim {v.text_dim}")
        if self.vae.z_dim != v.in_dim:
            raise ConfigError(f"VAE z_dim {self.vae.z_dim} != video in_dim {v.in_dim}")
        if self.text_encoder.d_model != v.text_dim:
            raise ConfigError(f"text encoder d_model {self.text_encoder.d_model} != text_dim {v.text_dim}")
        if self.proprio_dim <= 0 or a.action_dim <= 0:
            raise ConfigError("proprio_dim and action_dim must be positive")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"dtype must be float32, bfloat16 or float16, got {self.dtype!r}")
        s = self.policy.initial_noise_scale
        if not (isinstance(s, (int, float)) and 0.0 <= s < float("inf")):
            raise ConfigError(f"policy.initial_noise_scale must be a finite number >= 0, got {s!r}")
        return self

    # ---- serialisation -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FastWAMConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError` naming them."""
        if not isinstance(d, dict):
            raise ConfigError(f"config must be a mapping, got {type(d).__name__}")
        return _build(cls, d, "config").validate()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FastWAMConfig:
        return cls.from_dict(json.loads(text))


def _build(cls, d: dict[str, Any], where: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) in {where}: {unknown}; allowed: {sorted(fields)}")
    kwargs = {}
    for name, value in d.items():
        f = fields[name]
        sub = _SUBCONFIGS.get(name) if cls is FastWAMConfig else None
        if sub is not None:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{name} must be a mapping, got {type(value).__name__}")
            kwargs[name] = _build(sub, value, f"{where}.{name}")
        elif cls is VideoExpertConfig and f.name == "patch_size":
            kwargs[name] = tuple(int(x) for x in value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


_SUBCONFIGS = {
    "video": VideoExpertConfig,
    "action": ActionExpertConfig,
    "flow": FlowConfig,
    "normalization": NormalizationConfig,
    "policy": PolicyConfig,
    "vae": VAEConfig,
    "text_encoder": TextEncoderConfig,
}


def load_config(name_or_path: str | Path) -> FastWAMConfig:
    """Load a preset by name (``tiny``, ``wan22_5b`` -> ``models/<name>.yaml``) or a YAML/JSON file path."""
    import yaml

    p = Path(name_or_path)
    if p.suffix.lower() in (".yaml", ".yml", ".json") or p.exists():
        path = p
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
    else:
        from fastwam_ros.resources import find_share_file

        path = find_share_file("models", f"{name_or_path}.yaml")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except Exception as e:  # noqa: BLE001 - report any parser error with the file name
        raise ConfigError(f"cannot parse config {path}: {e}") from e
    if data is None:
        raise ConfigError(f"config file {path} is empty")
    try:
        return FastWAMConfig.from_dict(data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e


def config_from_official(official: dict[str, Any], variant: str = "fastwam") -> FastWAMConfig:
    """Build a config from the official code's config dict (``video_dit_config``, ``action_dit_config``,
    ``proprio_dim``, ``shift``, ``num_train_timesteps``, ``loss_lambda_*``), e.g. a parity fixture's config."""
    try:
        vd = official["video_dit_config"]
        ad = official["action_dit_config"]
    except KeyError as e:
        raise ConfigError(f"official config lacks {e.args[0]!r}") from e
    if not vd.get("seperated_timestep", True) or not vd.get("fuse_vae_embedding_in_latents", True):
        raise ConfigError("only seperated_timestep=true and fuse_vae_embedding_in_latents=true are supported")
    if vd.get("has_image_input") or vd.get("action_conditioned"):
        raise ConfigError("has_image_input / action_conditioned video experts are not supported")
    video = VideoExpertConfig(
        hidden_dim=int(vd["hidden_dim"]),
        ffn_dim=int(vd["ffn_dim"]),
        num_layers=int(vd["num_layers"]),
        num_heads=int(vd["num_heads"]),
        attn_head_dim=int(vd["attn_head_dim"]),
        in_dim=int(vd["in_dim"]),
        out_dim=int(vd["out_dim"]),
        patch_size=tuple(int(x) for x in vd["patch_size"]),
        text_dim=int(vd["text_dim"]),
        freq_dim=int(vd["freq_dim"]),
        eps=float(vd["eps"]),
        video_attention_mask_mode=str(vd.get("video_attention_mask_mode", "first_frame_causal")),
    )
    action = ActionExpertConfig(
        hidden_dim=int(ad["hidden_dim"]),
        ffn_dim=int(ad["ffn_dim"]),
        num_layers=int(ad["num_layers"]),
        num_heads=int(ad["num_heads"]),
        attn_head_dim=int(ad["attn_head_dim"]),
        action_dim=int(ad["action_dim"]),
        text_dim=int(ad["text_dim"]),
        freq_dim=int(ad["freq_dim"]),
        eps=float(ad["eps"]),
    )
    shift = float(official.get("shift", 5.0))
    flow = FlowConfig(
        num_train_timesteps=int(official.get("num_train_timesteps", 1000)),
        train_shift=shift,
        infer_shift=shift,
    )
    policy = PolicyConfig(action_horizon=int(official.get("action_horizon", 32)))
    if "image_hw_for_inference" in official:
        policy.image_height, policy.image_width = (int(x) for x in official["image_hw_for_inference"])
    if "text_len" in official:
        policy.text_len = int(official["text_len"])
    cfg = FastWAMConfig(
        name="official",
        variant=variant,
        proprio_dim=int(official.get("proprio_dim", action.action_dim)),
        loss_lambda_video=float(official.get("loss_lambda_video", 1.0)),
        loss_lambda_action=float(official.get("loss_lambda_action", 1.0)),
        video=video,
        action=action,
        flow=flow,
        policy=policy,
        vae=VAEConfig(z_dim=video.in_dim),
        text_encoder=TextEncoderConfig(d_model=video.text_dim),
    )
    return cfg.validate()
