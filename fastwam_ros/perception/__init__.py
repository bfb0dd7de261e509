"""perception core of fastwam_ros (ROS-free): decoding, camera sync, tiling, proprio, the observation pipeline."""

from .config import CameraConfig, PerceptionConfig
from .decode import ImageDecoder, decode_compressed, decode_image, decode_message
from .errors import ConfigError, DecodeError, PerceptionError, ProprioError
from .pipeline import Observation, ObservationPipeline, preprocess_frames, tile_frames
from .proprio import ProprioAssembler, assemble_proprio, pose_proprio
from .sync import MultiStreamSync, SyncedSet, stamp_to_seconds
from .tiling import apply_transform, make_tiling_spec, normalize_frame, resize_aa, tile_images

__all__ = [
    "CameraConfig",
    "ConfigError",
    "DecodeError",
    "ImageDecoder",
    "MultiStreamSync",
    "Observation",
    "ObservationPipeline",
    "PerceptionConfig",
    "PerceptionError",
    "ProprioAssembler",
    "ProprioError",
    "SyncedSet",
    "apply_transform",
    "assemble_proprio",
    "pose_proprio",
    "decode_compressed",
    "decode_image",
    "decode_message",
    "make_tiling_spec",
    "normalize_frame",
    "preprocess_frames",
    "resize_aa",
    "stamp_to_seconds",
    "tile_frames",
    "tile_images",
]
