"""Host <-> device plumbing of the inference engine: pinned staging buffers and a per-stage timer."""

from __future__ import annotations

import time

import torch


def is_cuda(device: torch.device | str) -> bool:
    return torch.device(device).type == "cuda"


class StageTimer:
    """Stage marks: CUDA events on GPU (read after one final sync), perf_counter on CPU."""

    def __init__(self, device: torch.device):
        self.cuda = is_cuda(device)
        self.marks: list[tuple[str, object]] = []

    def mark(self, name: str) -> None:
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self.marks.append((name, ev))
        else:
            self.marks.append((name, time.perf_counter()))

    def durations(self) -> dict[str, float]:
        """Seconds between consecutive marks, keyed by the later mark's name (call after synchronising)."""
        out: dict[str, float] = {}
        for (_, a), (name, b) in zip(self.marks, self.marks[1:]):
            out[name] = (a.elapsed_time(b) / 1000.0) if self.cuda else (b - a)  # type: ignore[union-attr]
        return out


class HostStaging:
    """Page-locked (pinned) host buffers on GPU for the per-call inputs/outputs, with non-blocking copies.

    ``to_device(name, array)`` copies a NumPy array / CPU tensor into the named pinned buffer, then into a
    device buffer with ``non_blocking=True``; ``to_host(tensor)`` copies back into a pinned buffer and waits on
    a CUDA event. On CPU the buffers are plain tensors and the copies synchronous (same code path)."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.cuda = is_cuda(self.device)
        self._host: dict[str, torch.Tensor] = {}
        self._dev: dict[str, torch.Tensor] = {}

    def _host_buf(self, name: str, shape, dtype) -> torch.Tensor:
        t = self._host.get(name)
        if t is None or tuple(t.shape) != tuple(shape) or t.dtype != dtype:
            t = torch.empty(tuple(shape), dtype=dtype, pin_memory=self.cuda)
            self._host[name] = t
        return t

    def to_device(self, name: str, data, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Device tensor (a reused buffer: valid until the next call with this name) holding ``data``."""
        src = data if isinstance(data, torch.Tensor) else torch.from_numpy(data)
        host = self._host_buf(name, src.shape, src.dtype)
        host.copy_(src)
        dev = self._dev.get(name)
        if dev is None or tuple(dev.shape) != tuple(src.shape) or dev.dtype != src.dtype:
            dev = torch.empty(tuple(src.shape), dtype=src.dtype, device=self.device)
            self._dev[name] = dev
        dev.copy_(host, non_blocking=self.cuda)
        return dev if dtype is None or dtype == dev.dtype else dev.to(dtype)

    def to_host(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """float32 CPU copy of ``tensor`` (a reused pinned buffer on GPU: copy it if you keep it)."""
        src = tensor.detach()
        if src.dtype != torch.float32:
            src = src.float()
        if not self.cuda:
            return src.cpu().clone() if src.device.type == "cpu" else src.cpu()
        host = self._host_buf(name, src.shape, torch.float32)
        host.copy_(src, non_blocking=True)
        ev = torch.cuda.Event()
        ev.record()
        ev.synchronize()
        return host


__all__ = ["HostStaging", "StageTimer", "is_cuda"]
