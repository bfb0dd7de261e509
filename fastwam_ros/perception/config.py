"""Perception configuration: cameras, tiling layout, sync tolerances, joint names. Validated; errors name the field.

Dictionary form (e.g. the ``perception:`` section of a robot YAML)::

    cameras:                                  # order matters: tiling order; the first is the reference camera
      - {name: head, topic: /cameras/head/image_raw/compressed, transport: compressed}
      - {name: left_wrist, topic: ..., transport: raw, transform: rot180, pre_resize_hw: [240, 320]}
    layout: robotwin                          # horizontal | robotwin | grid
    tile_hw: [224, 224]                       # horizontal / grid cell size (H, W) in pixels
    top_hw: [256, 320]                        # robotwin head tile
    bottom_tile_hw: [128, 160]                # robotwin wrist tiles
    grid_rows: 2                              # grid only (either or both; the other is derived)
    grid_cols: 2
    output_hw: [384, 320]                     # optional: checked against the layout
    slop_s: 0.02                              # max spread of capture stamps within one set, seconds
    max_age_s: 0.5                            # max (now - stamp) of an emitted set, seconds
    max_future_s: 0.5                         # max (stamp - now), seconds
    joint_state_tolerance_s: 0.05             # max (frame stamp - joint-state stamp), seconds
    joint_names: [left_joint1, ...]           # proprio order; empty = no proprio, no joint state needed
    buffer_size: 16                           # frames kept per camera
    joint_buffer_size: 256                    # joint states kept
    stream_timeout_s: 1.0                     # a stream whose newest stamp is older than this is "stopped"
    clock_jump_threshold_s: 1.0               # a stamp further than this from its stream (and the others) is
                                              # implausible; so is a receiver clock going back by more (every
                                              # node then starts a new time base: bag loop, simulator reset)
    jump_confirm_count: 3                     # this many consecutive agreeing implausible stamps = a real time
                                              # jump: that stream alone is reset
    max_image_pixels: 16777216                # compressed images whose header says more pixels are refused
    scaled_decode: true                       # decode JPEG at 1/2, 1/4, 1/8 (DCT scaling) and box-reduce raw
                                              # images by 2, 4, 8 when the tile needs no more pixels; false:
                                              # full resolution, bit-identical to preprocess_frames
    resize_backend: auto                      # auto | torch | numpy
    resize: training                          # training: apply each camera's pre_resize_hw first (as the training
                                              #   data pipeline did); deploy: straight from the camera image into
                                              #   the tile (the official RoboTwin evaluation); equal without pre_resize_hw
    fit: stretch                              # stretch: resize to the tile size; crop: keep the aspect ratio, cover
                                              #   the tile, cut the centre (the official LIBERO evaluation)
    use_cv_bridge: null                       # null = auto, true, false
    jpeg_guard: true                          # refuse decoded JPEGs with a DC-drift seam (corrupt_jpeg_seam)
    jpeg_guard_step_levels: 8.0               # smallest drift step looked for, 0..255 levels
    jpeg_guard_agreement: 0.75                # refuse when this fraction of the seam's blocks agree (0..1]
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .compressed import SEAM_AGREEMENT, SEAM_STEP_LEVELS
from .errors import ConfigError
from .tiling import (
    BACKENDS,
    FITS,
    LAYOUTS,
    TRANSFORMS,
    TilingSpec,
    crop_geometry,
    make_tiling_spec,
    transformed_hw,
)

__all__ = ["CameraConfig", "ConfigError", "PerceptionConfig"]

TRANSPORTS = ("raw", "compressed")
RESIZE_MODES = ("training", "deploy")


def _hw(value: Any, name: str) -> tuple[int, int]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise ConfigError(name, f"must be a pair of integers [H, W], got {value!r}")
    if value[0] < 1 or value[1] < 1:
        raise ConfigError(name, f"sizes must be >= 1, got {value!r}")
    return int(value[0]), int(value[1])


def _pos_float(value: Any, name: str, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(name, f"must be a number of seconds, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ConfigError(name, f"must be a finite {'non-negative' if allow_zero else 'positive'} number, got {v}")
    return v


def _number(value: Any, name: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= float(value) <= hi:
        raise ConfigError(name, f"must be a number in [{lo}, {hi}], got {value!r}")
    return float(value)


def _pos_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(name, f"must be a positive integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class CameraConfig:
    """One camera. ``transport``: ``raw`` (sensor_msgs/Image) or ``compressed`` (CompressedImage)."""

    name: str
    topic: str = ""
    transport: str = "raw"
    transform: str = "none"
    pre_resize_hw: tuple[int, int] | None = None

    @classmethod
    def from_dict(cls, d: Any, where: str) -> CameraConfig:
        if not isinstance(d, dict):
            raise ConfigError(where, f"must be a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        for key in d:
            if key not in known:
                raise ConfigError(f"{where}.{key}", f"unknown field (known: {sorted(known)})")
        if "name" not in d:
            raise ConfigError(f"{where}.name", "missing")
        name = d["name"]
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}.name", f"must be a non-empty string, got {name!r}")
        topic = d.get("topic", "")
        if not isinstance(topic, str):
            raise ConfigError(f"{where}.topic", f"must be a string, got {topic!r}")
        transport = d.get("transport", "raw")
        if transport not in TRANSPORTS:
            raise ConfigError(f"{where}.transport", f"must be one of {TRANSPORTS}, got {transport!r}")
        transform = d.get("transform", "none")
        if transform is None:
            transform = "none"
        if transform not in TRANSFORMS:
            raise ConfigError(f"{where}.transform", f"must be one of {TRANSFORMS}, got {transform!r}")
        pre = d.get("pre_resize_hw")
        pre = None if pre is None else _hw(pre, f"{where}.pre_resize_hw")
        return cls(name=name, topic=topic, transport=transport, transform=transform, pre_resize_hw=pre)


@dataclass(frozen=True)
class PerceptionConfig:
    """Everything the observation pipeline needs. Times in seconds, sizes (H, W) in pixels."""

    cameras: tuple[CameraConfig, ...]
    layout: str = "horizontal"
    tile_hw: tuple[int, int] = (224, 224)
    top_hw: tuple[int, int] = (256, 320)
    bottom_tile_hw: tuple[int, int] = (128, 160)
    grid_rows: int | None = None
    grid_cols: int | None = None
    output_hw: tuple[int, int] | None = None
    slop_s: float = 0.02
    max_age_s: float = 0.5
    max_future_s: float = 0.5
    joint_state_tolerance_s: float = 0.05
    joint_names: tuple[str, ...] = ()
    buffer_size: int = 16
    joint_buffer_size: int = 256
    stream_timeout_s: float = 1.0
    clock_jump_threshold_s: float = 1.0
    jump_confirm_count: int = 3
    max_image_pixels: int = 4096 * 4096
    scaled_decode: bool = True
    resize_backend: str = "auto"
    resize: str = "training"
    fit: str = "stretch"
    use_cv_bridge: bool | None = None
    jpeg_guard: bool = True
    jpeg_guard_step_levels: float = SEAM_STEP_LEVELS
    jpeg_guard_agreement: float = SEAM_AGREEMENT
    _spec: TilingSpec | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        # Validate the constructed object too (direct construction must not bypass checks).
        checked = PerceptionConfig._validated(self.to_dict())
        for key, value in checked.items():  # normalised values (tuples, floats)
            object.__setattr__(self, key, value)

    # -- construction ----------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Any) -> PerceptionConfig:
        """Build and validate from a plain mapping (YAML). Raises ConfigError naming the bad field."""
        if not isinstance(d, dict):
            raise ConfigError("<root>", f"must be a mapping, got {type(d).__name__}")
        v = cls._validated(d)
        v.pop("_spec")
        return cls(**v)

    @staticmethod
    def _validated(d: dict) -> dict:
        known = {f.name for f in fields(PerceptionConfig) if not f.name.startswith("_")}
        for key in d:
            if key not in known:
                raise ConfigError(str(key), f"unknown field (known: {sorted(known)})")
        if "cameras" not in d:
            raise ConfigError("cameras", "missing")
        cams_in = d["cameras"]
        if not isinstance(cams_in, (list, tuple)) or len(cams_in) == 0:
            raise ConfigError("cameras", "must be a non-empty list")
        cams = []
        for i, c in enumerate(cams_in):
            cams.append(c if isinstance(c, CameraConfig) else CameraConfig.from_dict(c, f"cameras[{i}]"))
        names = [c.name for c in cams]
        for i, n in enumerate(names):
            if n in names[:i]:
                raise ConfigError(f"cameras[{i}].name", f"duplicate camera name {n!r}")
        out: dict[str, Any] = {"cameras": tuple(cams)}

        layout = d.get("layout", "horizontal")
        if layout not in LAYOUTS:
            raise ConfigError("layout", f"must be one of {LAYOUTS}, got {layout!r}")
        out["layout"] = layout
        out["tile_hw"] = _hw(d.get("tile_hw", (224, 224)), "tile_hw")
        out["top_hw"] = _hw(d.get("top_hw", (256, 320)), "top_hw")
        out["bottom_tile_hw"] = _hw(d.get("bottom_tile_hw", (128, 160)), "bottom_tile_hw")
        for key in ("grid_rows", "grid_cols"):
            val = d.get(key)
            out[key] = None if val is None else _pos_int(val, key)
        try:
            spec = make_tiling_spec(
                layout,
                len(cams),
                tile_hw=out["tile_hw"],
                top_hw=out["top_hw"],
                bottom_tile_hw=out["bottom_tile_hw"],
                grid_rows=out["grid_rows"],
                grid_cols=out["grid_cols"],
            )
        except ValueError as exc:
            fld = {"robotwin": "cameras" if len(cams) != 3 else "bottom_tile_hw", "grid": "grid_rows"}.get(
                layout, "layout"
            )
            raise ConfigError(fld, str(exc)) from None
        ohw = d.get("output_hw")
        if ohw is not None:
            ohw = _hw(ohw, "output_hw")
            if ohw != spec.out_hw:
                raise ConfigError("output_hw", f"{ohw} does not match the {layout} layout's size {spec.out_hw}")
        out["output_hw"] = ohw
        out["_spec"] = spec

        out["slop_s"] = _pos_float(d.get("slop_s", 0.02), "slop_s", allow_zero=True)
        out["max_age_s"] = _pos_float(d.get("max_age_s", 0.5), "max_age_s")
        out["max_future_s"] = _pos_float(d.get("max_future_s", 0.5), "max_future_s", allow_zero=True)
        out["joint_state_tolerance_s"] = _pos_float(
            d.get("joint_state_tolerance_s", 0.05), "joint_state_tolerance_s", allow_zero=True
        )
        out["stream_timeout_s"] = _pos_float(d.get("stream_timeout_s", 1.0), "stream_timeout_s")
        out["clock_jump_threshold_s"] = _pos_float(d.get("clock_jump_threshold_s", 1.0), "clock_jump_threshold_s")
        out["jump_confirm_count"] = _pos_int(d.get("jump_confirm_count", 3), "jump_confirm_count")
        jn = d.get("joint_names", ())
        if not isinstance(jn, (list, tuple)) or not all(isinstance(n, str) and n for n in jn):
            raise ConfigError("joint_names", f"must be a list of non-empty strings, got {jn!r}")
        for i, n in enumerate(jn):
            if n in jn[:i]:
                raise ConfigError("joint_names", f"duplicate joint name {n!r}")
        out["joint_names"] = tuple(jn)
        out["buffer_size"] = _pos_int(d.get("buffer_size", 16), "buffer_size")
        out["joint_buffer_size"] = _pos_int(d.get("joint_buffer_size", 256), "joint_buffer_size")
        out["max_image_pixels"] = _pos_int(d.get("max_image_pixels", 4096 * 4096), "max_image_pixels")
        jsd = d.get("scaled_decode", True)
        if not isinstance(jsd, bool):
            raise ConfigError("scaled_decode", f"must be true or false, got {jsd!r}")
        out["scaled_decode"] = jsd
        backend = d.get("resize_backend", "auto")
        if backend not in BACKENDS:
            raise ConfigError("resize_backend", f"must be one of {BACKENDS}, got {backend!r}")
        out["resize_backend"] = backend
        for key, allowed, default in (("resize", RESIZE_MODES, "training"), ("fit", FITS, "stretch")):
            val = d.get(key, default)
            if val not in allowed:
                raise ConfigError(key, f"must be one of {allowed}, got {val!r}")
            out[key] = val
        ucb = d.get("use_cv_bridge")
        if ucb is not None and not isinstance(ucb, bool):
            raise ConfigError("use_cv_bridge", f"must be true, false or null, got {ucb!r}")
        out["use_cv_bridge"] = ucb
        guard = d.get("jpeg_guard", True)
        if not isinstance(guard, bool):
            raise ConfigError("jpeg_guard", f"must be true or false, got {guard!r}")
        out["jpeg_guard"] = guard
        out["jpeg_guard_step_levels"] = _number(d.get("jpeg_guard_step_levels", SEAM_STEP_LEVELS),
                                                "jpeg_guard_step_levels", 1.0, 255.0)
        out["jpeg_guard_agreement"] = _number(d.get("jpeg_guard_agreement", SEAM_AGREEMENT),
                                              "jpeg_guard_agreement", 0.05, 1.0)
        return out

    # -- views -----------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        d["cameras"] = [asdict(c) if isinstance(c, CameraConfig) else c for c in self.cameras]
        return d

    @property
    def tiling(self) -> TilingSpec:
        return self._spec

    @property
    def out_hw(self) -> tuple[int, int]:
        """(H, W) of the tiled frame, pixels."""
        return self._spec.out_hw

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cameras)

    def decode_target_hw(self, name: str, camera_hw: tuple[int, int] | None = None) -> tuple[int, int]:
        """(H, W) the decoded image of camera ``name`` is resized to first, in the camera's own orientation:
        ``pre_resize_hw`` if set and ``resize`` is ``training``, else its tile -- with ``fit: crop`` the covering
        size of the tile for a ``camera_hw`` image (the tile itself when the camera size is not given). With
        :func:`~fastwam_ros.perception.decode.decode_scale_for` this decides the camera's decode scale."""
        i = self.camera_names.index(name)
        cam = self.cameras[i]
        slot = next(s for s in self._spec.slots if s.camera_index == i)
        if cam.pre_resize_hw is not None and self.resize == "training":
            return transformed_hw(cam.pre_resize_hw, cam.transform)
        hw = (slot.h, slot.w)
        if self.fit == "crop" and camera_hw is not None:
            hw = crop_geometry(transformed_hw(camera_hw, cam.transform), hw)[0]
        return transformed_hw(hw, cam.transform)  # rotations by 90 degrees swap H and W (their own inverse)

    def camera(self, name: str) -> CameraConfig:
        for c in self.cameras:
            if c.name == name:
                return c
        raise KeyError(name)
