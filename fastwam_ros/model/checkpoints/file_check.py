"""Fail fast on bad weight files: read a checkpoint's header and key set WITHOUT reading its tensor data.

A corrupt, truncated or mismatched file must give a clear error in seconds whatever its size, before any model is
built (building the 5 B Fast-WAM in fp32 first takes minutes and tens of GiB).

* safetensors: the 8-byte little-endian header length, the JSON header (dtype, shape, data offsets per tensor);
  every tensor's byte range must match its dtype x shape, the ranges must tile the data section, and the data
  section must end exactly at the end of the file (a truncated download fails here).
* ``torch.save`` files (zip archives since torch 1.6): the zip central directory (at the END of the file, so a
  truncated archive has none), every member inside the file, then the pickle only, with the storages
  memory-mapped (``torch.load(mmap=True, weights_only=True)``): shapes without reading the data.

:func:`read_header` returns {key: shape}; :func:`check_official_keys` compares an official checkpoint's keys and
shapes with the model a config would build (on the ``meta`` device: no memory, no weights).
"""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CheckpointError, convert_official_state_dict, flatten_official_payload

__all__ = ["check_official_keys", "read_header", "read_safetensors_header", "read_torch_zip_header"]

_MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit
_ST_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                "BOOL": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}
_ZIP_MAGIC = b"PK\x03\x04"


def _size(path: Path) -> int:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    return path.stat().st_size


def read_safetensors_header(path: str | Path) -> dict[str, tuple[int, ...]]:
    """{tensor name: shape} of a safetensors file, after checking that the header is sound and the file is
    complete (no tensor data is read). Raises :class:`CheckpointError` naming the file and the problem."""
    path = Path(path)
    size = _size(path)
    bad = f"{path} is not a valid safetensors file"
    if size < 8:
        raise CheckpointError(f"{bad}: only {size} bytes (truncated?)")
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n == 0 or n > _MAX_HEADER_BYTES or 8 + n > size:
            raise CheckpointError(f"{bad}: header length {n} bytes does not fit the {size}-byte file (corrupt or "
                                  "truncated)")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{bad}: the header is not JSON ({exc}); corrupt file") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{bad}: the header is not a JSON object")
    shapes: dict[str, tuple[int, ...]] = {}
    spans = []
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = entry["dtype"], tuple(int(s) for s in entry["shape"]), entry["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{bad}: malformed header entry for {key!r}: {entry!r}") from None
        if dtype not in _ST_ITEMSIZE:
            raise CheckpointError(f"{bad}: tensor {key!r} has unknown dtype {dtype!r}")
        numel = 1
        for s in shape:
            numel *= s
        if end - begin != numel * _ST_ITEMSIZE[dtype] or begin < 0:
            raise CheckpointError(f"{bad}: tensor {key!r} ({dtype} {list(shape)}) has a byte range [{begin}, {end}) "
                                  "of the wrong size")
        shapes[key] = shape
        spans.append((begin, end))
    spans.sort()
    pos = 0
    for begin, end in spans:
        if begin != pos:
            raise CheckpointError(f"{bad}: tensor data ranges overlap or leave a gap at byte {pos}")
        pos = end
    data = size - 8 - n
    if pos != data:
        what = "truncated" if pos > data else "has trailing bytes"
        raise CheckpointError(f"{path} is {what}: its header describes {pos} bytes of tensor data, the file holds "
                              f"{data} (size {size} bytes; re-download or re-save it)")
    return shapes


def _shapes_of(obj: Any, prefix: str, out: dict[str, tuple[int, ...]]) -> None:
    if isinstance(obj, torch.Tensor):
        out[prefix] = tuple(obj.shape)
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            _shapes_of(v, f"{prefix}.{k}" if prefix else str(k), out)


def _load_torch_zip(path: Path) -> Any:
    """The checked archive's payload with memory-mapped storages (nothing read but the pickle)."""
    size = _size(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if head != _ZIP_MAGIC:
        raise CheckpointError(
            f"{path} is neither a torch.save zip archive nor safetensors (starts with {head!r}); corrupt file, or "
            "a legacy (pre-1.6) torch file: re-save it with a current torch.save")
    try:
        with zipfile.ZipFile(path) as z:
            members = z.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{path} is corrupt or truncated: its zip directory cannot be read ({exc}); "
                              "re-download or re-save it") from None
    for m in members:
        if m.header_offset + m.compress_size > size:
            raise CheckpointError(f"{path} is truncated: member {m.filename} ends past the end of the file")
    if not any(m.filename.endswith("data.pkl") for m in members):
        raise CheckpointError(f"{path} is a zip archive but not a torch.save file (no data.pkl)")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - any failure to unpickle is a corrupt / foreign file
        raise CheckpointError(f"cannot read checkpoint {path} (corrupt or not a weights file?): "
                              f"{type(exc).__name__}: {exc}") from None


def read_torch_zip_header(path: str | Path) -> dict[str, tuple[int, ...]]:
    """{dotted key: shape} of every tensor in a ``torch.save`` zip archive (storages mapped, not read)."""
    out: dict[str, tuple[int, ...]] = {}
    _shapes_of(_load_torch_zip(Path(path)), "", out)
    return out


def read_header(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Validated {key: shape} of a ``.safetensors`` or ``torch.save`` file (chosen by the first bytes)."""
    path = Path(path)
    _size(path)
    with open(path, "rb") as f:
        head = f.read(4)
    return read_torch_zip_header(path) if head == _ZIP_MAGIC else read_safetensors_header(path)


def official_payload(path: str | Path) -> dict[str, torch.Tensor]:
    """An official checkpoint file as flat official keys, validated first; ``.pt`` storages memory-mapped."""
    path = Path(path)
    if path.suffix == ".safetensors":
        read_safetensors_header(path)
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as exc:  # noqa: BLE001 - any parse failure means a corrupt file
            raise CheckpointError(f"cannot read safetensors checkpoint {path}: {exc}") from None
    return flatten_official_payload(_load_torch_zip(path), str(path))


def official_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """{official flat key: shape} of an official checkpoint file (``mot.`` prefix dropped as in the payload)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return read_safetensors_header(path)
    flat = flatten_official_payload(_load_torch_zip(path), str(path))
    return {k: tuple(v.shape) for k, v in flat.items()}


def check_official_keys(config: Any, path: str | Path) -> dict[str, tuple[int, ...]]:
    """Check an official checkpoint's key set and shapes against the model ``config`` builds, before building it.

    The model is instantiated on the ``meta`` device (structure and shapes only: no memory, no init). Raises
    :class:`CheckpointError` listing every missing / unexpected / mis-shaped key; returns {key: shape}."""
    shapes = official_shapes(path)
    from ..network.fastwam import FastWAM  # after the file checks: importing diffusers alone takes seconds

    with torch.device("meta"):
        skeleton = FastWAM(config)
    fake = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    try:
        convert_official_state_dict(skeleton, fake)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc} (config {getattr(config, 'name', '?')!r})") from None
    return shapes
