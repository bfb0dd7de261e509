"""Message-field access shared by the raw and compressed decoders: byte buffers without copies, typed fields."""

from __future__ import annotations

import array
from typing import Any

import numpy as np

from .errors import DecodeError

MAX_DIM = 1 << 16  # 65536 pixels per side: far above any camera, below overflow trouble


def as_uint8_buffer(data: Any) -> np.ndarray:
    """A 1-D uint8 array over ``data``, without copying where the buffer protocol allows."""
    try:
        if isinstance(data, np.ndarray):
            if data.dtype == np.uint8:
                arr = data
            elif data.dtype.itemsize == 1 and data.dtype.kind in "iub":
                arr = data.view(np.uint8)
            else:
                raise DecodeError("bad_data", f"data array has dtype {data.dtype}, expected uint8")
            if arr.ndim != 1:
                arr = arr.reshape(-1)
            return arr
        if isinstance(data, (bytes, bytearray)):
            return np.frombuffer(data, dtype=np.uint8)
        if isinstance(data, memoryview):
            return np.frombuffer(data.cast("B") if data.format != "B" else data, dtype=np.uint8)
        if isinstance(data, array.array):
            if data.typecode not in ("B", "b"):
                raise DecodeError("bad_data", f"data array('{data.typecode}') is not a byte array")
            return np.frombuffer(data, dtype=np.uint8)
        if isinstance(data, (list, tuple)):
            if len(data) == 0:
                return np.zeros(0, np.uint8)
            ints = np.asarray(data)
            if ints.ndim != 1 or ints.dtype.kind not in "iu":
                raise DecodeError("bad_data", "data list must hold integers 0..255")
            if ints.min() < 0 or ints.max() > 255:
                raise DecodeError("bad_data", "data list holds values outside 0..255")
            return ints.astype(np.uint8)
    except DecodeError:
        raise
    except (TypeError, ValueError) as exc:
        raise DecodeError("bad_data", f"unusable data buffer: {exc}") from None
    raise DecodeError("bad_data", f"unsupported data type {type(data).__name__}")


def field(msg: Any, name: str) -> Any:
    try:
        return getattr(msg, name)
    except AttributeError:
        raise DecodeError("bad_message", f"message has no field {name!r}") from None


def int_field(msg: Any, name: str) -> int:
    value = field(msg, name)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise DecodeError("bad_message", f"field {name!r} must be an integer, got {type(value).__name__}")
    return int(value)


