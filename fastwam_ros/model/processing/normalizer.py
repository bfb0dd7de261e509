"""Linear normaliser of actions / state, as the official ``SingleFieldLinearNormalizer``.

``forward``: y = clamp(x * scale + offset, -clamp, clamp). ``inverse``: x = (y - offset) / scale (no clamp).
Modes: ``min/max`` (to [-1, 1]; dims whose range is below 1e-4 get scale 1 and offset -min) and ``z-score``
(scale = 1 / (std + 1e-8), offset = -mean * scale).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

RANGE_TOL = 1e-4
STD_REG = 1e-8
MODES = ("min/max", "z-score")


class NormalizerError(ValueError):
    """Bad statistics or inputs for a normaliser."""


class LinearNormalizer:
    """Per-dimension affine normaliser with a symmetric clamp on the forward map."""

    def __init__(self, scale, offset, clamp: float = 5.0, mode: str = "z-score"):
        self.scale = torch.as_tensor(np.asarray(scale, dtype=np.float32))
        self.offset = torch.as_tensor(np.asarray(offset, dtype=np.float32))
        if self.scale.ndim != 1 or self.scale.shape != self.offset.shape:
            raise NormalizerError(
                f"scale and offset must be 1-D of equal length, got {tuple(self.scale.shape)} and "
                f"{tuple(self.offset.shape)}"
            )
        if not torch.isfinite(self.scale).all() or not torch.isfinite(self.offset).all():
            raise NormalizerError("scale/offset contain non-finite values")
        if (self.scale == 0).any():
            raise NormalizerError("scale contains zeros (inverse undefined)")
        self.clamp = float(clamp)
        self.mode = mode

    @property
    def dim(self) -> int:
        return int(self.scale.shape[0])

    @classmethod
    def from_stats(cls, stats: Mapping[str, Any], mode: str, clamp: float = 5.0) -> LinearNormalizer:
        """Fit from per-dim stats: keys ``min``/``max`` (min/max) or ``mean``/``std`` (z-score); the
        official ``global_*`` names are accepted too."""
        if mode not in MODES:
            raise NormalizerError(f"mode must be one of {MODES}, got {mode!r}")

        def get(name: str) -> np.ndarray:
            for k in (name, f"global_{name}"):
                if k in stats:
                    return np.asarray(stats[k], dtype=np.float64).reshape(-1)
            raise NormalizerError(f"stats lack {name!r} (or 'global_{name}'); have {sorted(stats)}")

        if mode == "min/max":
            lo, hi = get("min"), get("max")
            if lo.shape != hi.shape:
                raise NormalizerError(f"min/max shapes differ: {lo.shape} vs {hi.shape}")
            lo_t = torch.as_tensor(lo, dtype=torch.float32)
            hi_t = torch.as_tensor(hi, dtype=torch.float32)
            rng = hi_t - lo_t
            ignore = rng < RANGE_TOL
            rng = torch.where(ignore, torch.full_like(rng, 2.0), rng)
            scale = 2.0 / rng
            offset = -1.0 - scale * lo_t
            offset = torch.where(ignore, -lo_t, offset)
            return cls(scale, offset, clamp, mode)
        mean = torch.as_tensor(get("mean"), dtype=torch.float32)
        std = torch.as_tensor(get("std"), dtype=torch.float32)
        if mean.shape != std.shape:
            raise NormalizerError(f"mean/std shapes differ: {tuple(mean.shape)} vs {tuple(std.shape)}")
        if (std < 0).any():
            raise NormalizerError("std has negative entries")
        scale = 1.0 / (std + STD_REG)
        return cls(scale, -mean * scale, clamp, mode)

    def _check(self, x: torch.Tensor) -> None:
        if x.shape[-1] != self.dim:
            raise NormalizerError(f"last dim {x.shape[-1]} does not match normaliser dim {self.dim}")

    def forward(self, x) -> torch.Tensor:
        """Normalise (clamped to +-clamp). Accepts tensors or array-likes [..., D]; returns float32 tensor."""
        x = torch.as_tensor(x, dtype=torch.float32)
        self._check(x)
        return torch.clamp(x * self.scale.to(x.device) + self.offset.to(x.device), -self.clamp, self.clamp)

    __call__ = forward

    def inverse(self, y) -> torch.Tensor:
        """Denormalise (no clamp)."""
        y = torch.as_tensor(y, dtype=torch.float32)
        self._check(y)
        return (y - self.offset.to(y.device)) / self.scale.to(y.device)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "clamp": self.clamp,
            "scale": self.scale.tolist(),
            "offset": self.offset.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LinearNormalizer:
        try:
            return cls(d["scale"], d["offset"], float(d.get("clamp", 5.0)), str(d.get("mode", "z-score")))
        except KeyError as e:
            raise NormalizerError(f"normaliser dict lacks {e.args[0]!r}") from e


def _field_stats(stats: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    """Stats of ``field`` (``state``/``action``) from the official dataset_stats layout: nested
    ``stats[field]['default']`` or flat ``'<field>.default.<name>'`` keys."""
    node = stats.get(field)
    if isinstance(node, Mapping):
        node = node.get("default", node)
        if isinstance(node, Mapping):
            return node
    prefix = f"{field}.default."
    flat = {k[len(prefix) :]: v for k, v in stats.items() if isinstance(k, str) and k.startswith(prefix)}
    if flat:
        return flat
    raise NormalizerError(f"dataset stats have no {field!r} entry (looked for {field}.default.*)")


class StateActionNormalizer:
    """The pair of normalisers a policy needs: state (proprio) and action, same mode, global stats."""

    def __init__(self, state: LinearNormalizer, action: LinearNormalizer):
        self.state = state
        self.action = action

    @classmethod
    def from_dataset_stats(cls, stats: Mapping[str, Any], mode: str, clamp: float = 5.0) -> StateActionNormalizer:
        return cls(
            LinearNormalizer.from_stats(_field_stats(stats, "state"), mode, clamp),
            LinearNormalizer.from_stats(_field_stats(stats, "action"), mode, clamp),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state.to_dict(), "action": self.action.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StateActionNormalizer:
        try:
            return cls(LinearNormalizer.from_dict(d["state"]), LinearNormalizer.from_dict(d["action"]))
        except KeyError as e:
            raise NormalizerError(f"normaliser dict lacks {e.args[0]!r}") from e
