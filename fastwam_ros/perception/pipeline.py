"""The observation pipeline: decode → per-camera buffers → synchronised set → tile → [-1, 1] frame + proprio.

:func:`preprocess_frames` is the single image preprocessing path: the training data pipeline calls it on decoded
camera images, and :class:`ObservationPipeline` (the policy node's core) calls it on each synchronised set.
Time is explicit (seconds); nothing here reads a clock. Thread-safe: ROS callbacks may call ``add_*`` while
another thread polls.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastwam_ros.joint_state import check_joint_state, checked_float32

from .config import PerceptionConfig
from .decode import ImageDecoder, decode_scale_for
from .errors import DecodeError, ProprioError
from .sync import MultiStreamSync, stamp_to_seconds
from .tiling import normalize_planar, tile_images, tile_planar

__all__ = ["Observation", "ObservationPipeline", "preprocess_frames", "tile_frames"]

_LOG = logging.getLogger("fastwam_ros.perception")


def tile_frames(
    images: Mapping[str, np.ndarray], config: PerceptionConfig, out: np.ndarray | None = None
) -> np.ndarray:
    """Per-camera transform + resize + tiling of RGB uint8 [H, W, 3] images (keyed by camera name) → uint8
    [H_out, W_out, 3]. Every configured camera must be present; extra keys are ignored. Each camera's
    ``pre_resize_hw`` applies only with ``config.resize == "training"`` (``deploy`` resizes straight into the
    tiles, as the official RoboTwin evaluation does)."""
    missing = [c.name for c in config.cameras if c.name not in images]
    if missing:
        raise KeyError(f"images missing for cameras {missing}")
    return tile_images(
        [images[c.name] for c in config.cameras],
        config.tiling,
        transforms=[c.transform for c in config.cameras],
        pre_resize_hw=[c.pre_resize_hw for c in config.cameras] if config.resize == "training" else None,
        backend=config.resize_backend,
        fit=config.fit,
        out=out,
    )


def _tile_planar(images: Sequence[np.ndarray], orders: Sequence[tuple[int, int, int]] | None,
                 config: PerceptionConfig, reduce: Sequence[int] | None = None,
                 normalize: bool = False) -> np.ndarray:
    return tile_planar(
        list(images),
        config.tiling,
        transforms=[c.transform for c in config.cameras],
        pre_resize_hw=[c.pre_resize_hw for c in config.cameras] if config.resize == "training" else None,
        backend=config.resize_backend,
        orders=None if orders is None else list(orders),
        reduce=None if reduce is None else list(reduce),
        fit=config.fit,
        normalize=normalize,
    )


def preprocess_frames(images: Mapping[str, np.ndarray], config: PerceptionConfig) -> np.ndarray:
    """THE image preprocessing of training and deployment: camera images (RGB uint8 [H, W, 3] by camera name)
    → float32 [3, H_out, W_out] in [-1, 1] (tiled per ``config.layout``)."""
    missing = [c.name for c in config.cameras if c.name not in images]
    if missing:
        raise KeyError(f"images missing for cameras {missing}")
    for c in config.cameras:
        img = images[c.name]
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"camera {c.name!r}: expected uint8 HxWx3 RGB, got {getattr(img, 'shape', img)}")
    return _tile_planar([images[c.name] for c in config.cameras], None, config, normalize=True)


@dataclass(frozen=True)
class Observation:
    """One model input. Times in seconds."""

    frame: np.ndarray  # float32 [3, H, W] in [-1, 1]
    stamp_s: float  # capture stamp of the reference (first) camera
    proprio: np.ndarray  # float32 [P], order = joint_names
    joint_names: tuple[str, ...]
    skew_s: float  # max − min of the camera stamps
    age_s: float  # now_s − stamp_s at poll time
    camera_stamps_s: dict[str, float]
    joint_stamp_s: float | None = None
    image_rgb: np.ndarray | None = None  # the tiled uint8 [H, W, 3] frame (debug image topic; a strided view)


class ObservationPipeline:
    """Policy-side core: feed it messages, poll it for observations.

    ``add_image`` decodes immediately (rejections counted as ``decode:<reason>``, never raised);
    ``add_joint_state`` buffers joint states; ``poll(now_s)`` returns the newest synchronised
    :class:`Observation` not yet returned, or None.
    """

    def __init__(self, config: PerceptionConfig, decoder: ImageDecoder | None = None):
        self.config = config
        self.decoder = decoder if decoder is not None else ImageDecoder(
            use_cv_bridge=config.use_cv_bridge, max_pixels=config.max_image_pixels,
            seam_agreement=config.jpeg_guard_agreement if config.jpeg_guard else None,
            seam_step_levels=config.jpeg_guard_step_levels)
        # per camera: the size its image is resized to first (the JPEG decode scale is chosen from it; with
        # fit: crop that size depends on the camera's, unknown before the header is read: JPEG decoded in full)
        self._need_hw = {c.name: config.decode_target_hw(c.name) if config.scaled_decode and config.fit == "stretch"
                         else None for c in config.cameras}
        self._needs_joints = len(config.joint_names) > 0
        self._reduce_cache: dict[tuple[str, tuple[int, int]], int] = {}
        self.sync = MultiStreamSync(
            config.camera_names,
            slop_s=config.slop_s,
            max_age_s=config.max_age_s,
            max_future_s=config.max_future_s,
            buffer_size=config.buffer_size,
            require_joint_state=self._needs_joints,
            joint_tolerance_s=config.joint_state_tolerance_s,
            joint_buffer_size=config.joint_buffer_size,
            stream_timeout_s=config.stream_timeout_s,
            clock_jump_threshold_s=config.clock_jump_threshold_s,
            joint_names=config.joint_names if self._needs_joints else None,
            jump_confirm_count=config.jump_confirm_count,
            log=_LOG.warning,
        )
        self._lock = threading.Lock()
        self._rejections: Counter[str] = Counter()
        self._last_error: dict[str, str] = {}
        self._received: Counter[str] = Counter()
        self._camera_rejections: dict[str, Counter[str]] = {c: Counter() for c in config.camera_names}
        self._decoded: Counter[str] = Counter()
        self._joint_received = 0

    def _reject(self, key: str, message: str, camera: str | None = None) -> None:
        with self._lock:
            self._rejections[key] += 1
            self._last_error[key] = message
            if camera is not None:
                self._camera_rejections[camera][key] += 1

    # -- input ---------------------------------------------------------------------------------------------
    def add_image(self, camera: str, msg: Any, stamp_s: float | None = None, now_s: float | None = None) -> bool:
        """Decode and buffer one Image/CompressedImage of ``camera``; ``stamp_s`` (s) defaults to the header stamp;
        ``now_s`` (s, optional) is the receiver's time, the reference for implausible stamps.
        Returns False if rejected (counted)."""
        if camera not in self.sync.streams:
            self._reject("unknown_camera", f"camera {camera!r} is not configured")
            return False
        with self._lock:
            self._received[camera] += 1
        if stamp_s is None:
            try:
                stamp_s = stamp_to_seconds(msg.header.stamp)
            except (AttributeError, TypeError, ValueError):
                self._reject("no_stamp", f"{camera}: message has no header.stamp and no stamp_s was given", camera)
                return False
        try:
            planes = self.decoder.decode_planes(msg, self._need_hw[camera])
        except DecodeError as exc:
            self._reject(f"decode:{exc.reason}", f"{camera}: {exc}", camera)
            return False
        except Exception as exc:  # noqa: BLE001 - bad data must never crash the node
            self._reject("decode:internal", f"{camera}: {type(exc).__name__}: {exc}", camera)
            return False
        with self._lock:
            self._decoded[camera] += 1
            return self.sync.add(camera, stamp_s, planes, now_s)

    def add_decoded(self, camera: str, rgb: np.ndarray, stamp_s: float) -> bool:
        """Buffer an already decoded RGB uint8 [H, W, 3] image (replay / simulators)."""
        if camera not in self.sync.streams:
            self._reject("unknown_camera", f"camera {camera!r} is not configured")
            return False
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            self._reject("bad_image", f"{camera}: expected uint8 HxWx3")
            return False
        with self._lock:
            self._received[camera] += 1
            self._decoded[camera] += 1
            return self.sync.add(camera, stamp_s, (rgb, (0, 1, 2)))

    def add_joint_state(self, stamp_s: float, names: Sequence[str], positions: Sequence[float],
                        now_s: float | None = None) -> bool:
        """Buffer a joint state stamped ``stamp_s`` (s), merged per joint with the other publishers' (see
        :class:`~fastwam_ros.perception.proprio.JointStore`). A malformed message (duplicate names, lengths,
        non-numbers) is refused now (``joint_state:<reason>``); values are checked when joined."""
        with self._lock:
            self._joint_received += 1
            if not self._needs_joints:  # no proprio configured: nothing to do (an event, not a rejection)
                self.sync.events["joint_state_unused"] += 1
                return False
        try:
            key, pos = check_joint_state(names, positions)
        except ProprioError as exc:
            self._reject(f"joint_state:{exc.reason}", str(exc))
            return False
        with self._lock:
            return self.sync.add_joint_state(stamp_s, (key, pos), now_s)

    # -- output --------------------------------------------------------------------------------------------
    def poll(self, now_s: float) -> Observation | None:
        """The newest synchronised observation at time ``now_s`` (s) not yet returned, or None."""
        with self._lock:
            s = self.sync.poll(now_s)
        if s is None:
            return None
        proprio = np.zeros(0, np.float32)
        if self._needs_joints:
            names, positions = s.joint_state
            try:
                proprio = checked_float32(positions, names)
            except ProprioError as exc:
                self._reject(f"proprio:{exc.reason}", str(exc))
                return None
        try:
            cams = [s.items[c.name] for c in self.config.cameras]
            images = [p for p, _ in cams]
            reduce = None
            if self.config.scaled_decode:  # raw images: box-reduce like a JPEG's DCT-scaled decode
                reduce = [self._reduce_factor(c.name, img.shape[:2]) for img, c in zip(images, self.config.cameras)]
            planar = _tile_planar(images, [o for _, o in cams], self.config, reduce)
        except Exception as exc:  # noqa: BLE001 - counted, never raised into a callback
            self._reject("tiling", f"{type(exc).__name__}: {exc}")
            return None
        return Observation(
            frame=normalize_planar(planar),
            stamp_s=s.stamp_s,
            proprio=proprio,
            joint_names=self.config.joint_names,
            skew_s=s.skew_s,
            age_s=s.age_s,
            camera_stamps_s=dict(s.stamps_s),
            joint_stamp_s=s.joint_stamp_s,
            image_rgb=planar.transpose(1, 2, 0),
        )

    def _reduce_factor(self, camera: str, hw: tuple[int, int]) -> int:
        """The box-reduction factor of a ``hw`` image of ``camera`` (cached: camera sizes rarely change)."""
        key = (camera, hw)
        d = self._reduce_cache.get(key)
        if d is None:
            if len(self._reduce_cache) > 64:  # a source changing size every frame must not grow this forever
                self._reduce_cache.clear()
            d = self._reduce_cache[key] = decode_scale_for(hw, self.config.decode_target_hw(camera, hw))
        return d

    def reset(self) -> None:
        """Drop buffered frames and joint states (counters are kept)."""
        with self._lock:
            self.sync.reset("manual_reset")

    # -- diagnostics -----------------------------------------------------------------------------------------
    def stats(self, now_s: float | None = None) -> dict[str, Any]:
        """Counters for /diagnostics: rejections by reason (pipeline + sync), events, per-camera counts;
        with ``now_s`` (s) also per-stream freshness and the stopped streams."""
        with self._lock:
            rejections = Counter(self._rejections)
            rejections.update(self.sync.rejections)
            out: dict[str, Any] = {
                "rejections": dict(rejections),
                "last_error": dict(self._last_error),
                "events": dict(self.sync.events),
                "cameras": {
                    c: {"received": self._received[c], "decoded": self._decoded[c],
                        "rejected": dict(self._camera_rejections[c])} for c in self.sync.streams
                },
                "joint_states_received": self._joint_received,
                "decoder": dict(self.decoder.counts),
                "cv_bridge": self.decoder.cv_bridge_status,
                "jpeg_decoder": getattr(self.decoder, "jpeg_decoder", "?"),
                "wait_reason": self.sync.wait_reason,
            }
            if self.sync.last_missing_joint is not None:
                out["last_missing_joint"] = self.sync.last_missing_joint
            if now_s is not None:
                out["streams"] = self.sync.stream_status(now_s)
                out["stopped_streams"] = self.sync.stopped_streams(now_s)
        return out
