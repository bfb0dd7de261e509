"""Normalisation statistics in the official ``dataset_stats.json`` layout (reference spec §3.3).

Flat keys ``state.default.<stat>`` and ``action.default.<stat>`` plus ``num_episodes`` and ``num_transition``:

* ``global_{min,max,q01,q99,mean,std}`` shape [D];
* ``stepwise_*`` shape [32, D] for actions (a sliding 32-step window replicating the last action at an episode
  end) and [1, D] for the state.

min/max are the true extrema; q01/q99 are per-episode quantiles, then the min (q01) / max (q99) across episodes;
mean/std weight each episode equally, the std pooled as sqrt(mean_e(var_e + (mu_e - mu)^2)).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DatasetError

STATS_FILENAME = "dataset_stats.json"
STAT_NAMES = ("min", "max", "q01", "q99", "mean", "std")


def _pooled(per_episode: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Global stats over a list of [N_e, ...] arrays, each episode weighted equally for mean/std."""
    mins = np.stack([x.min(axis=0) for x in per_episode])
    maxs = np.stack([x.max(axis=0) for x in per_episode])
    q01 = np.stack([np.quantile(x, 0.01, axis=0) for x in per_episode])
    q99 = np.stack([np.quantile(x, 0.99, axis=0) for x in per_episode])
    mus = np.stack([x.mean(axis=0) for x in per_episode])
    vars_ = np.stack([x.var(axis=0) for x in per_episode])
    mu = mus.mean(axis=0)
    std = np.sqrt(np.mean(vars_ + (mus - mu) ** 2, axis=0))
    return {"min": mins.min(0), "max": maxs.max(0), "q01": q01.min(0), "q99": q99.max(0), "mean": mu, "std": std}


def _action_windows(action: np.ndarray, horizon: int) -> np.ndarray:
    """[T, horizon, D]: the action chunk starting at every tick, the last action replicated past the end."""
    n = len(action)
    idx = np.minimum(np.arange(n)[:, None] + np.arange(horizon)[None, :], n - 1)
    return action[idx]


def compute_stats(episodes: Iterable[tuple[np.ndarray, np.ndarray]], action_horizon: int = 32) -> dict[str, Any]:
    """Stats from (state [T, P], action [T, A]) pairs, one per episode, in robot units. Returns JSON-able lists."""
    states, actions = [], []
    for k, (s, a) in enumerate(episodes):
        s = np.asarray(s, dtype=np.float64)
        a = np.asarray(a, dtype=np.float64)
        if s.ndim != 2 or a.ndim != 2 or len(s) != len(a) or len(s) == 0:
            raise DatasetError(f"episode {k}: state {s.shape} / action {a.shape} must be non-empty [T, D] of equal T")
        for what, x in (("state", s), ("action", a)):
            if not np.isfinite(x).all():
                t, d = np.argwhere(~np.isfinite(x))[0]
                raise DatasetError(f"episode {k}: non-finite {what} at tick {t}, dim {d}")
        if states and (s.shape[1] != states[0].shape[1] or a.shape[1] != actions[0].shape[1]):
            raise DatasetError(
                f"episode {k}: state/action dims {s.shape[1]}/{a.shape[1]} differ from the first episode's "
                f"{states[0].shape[1]}/{actions[0].shape[1]}"
            )
        states.append(s)
        actions.append(a)
    if not states:
        raise DatasetError("no episodes to compute statistics from")

    out: dict[str, Any] = {}
    for field, per_ep in (("state", states), ("action", actions)):
        g = _pooled(per_ep)
        for name in STAT_NAMES:
            out[f"{field}.default.global_{name}"] = g[name].tolist()
    sw = _pooled([_action_windows(a, action_horizon) for a in actions])
    for name in STAT_NAMES:
        out[f"action.default.stepwise_{name}"] = sw[name].tolist()
        out[f"state.default.stepwise_{name}"] = [out[f"state.default.global_{name}"]]
    out["num_episodes"] = len(states)
    out["num_transition"] = int(sum(len(s) for s in states))
    return out


def save_stats(stats: dict[str, Any], path: str | Path) -> Path:
    """Write ``stats`` as JSON to ``path`` (a file, or a directory → ``<dir>/dataset_stats.json``)."""
    path = Path(path)
    if path.is_dir():
        path = path / STATS_FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stats, indent=1), encoding="utf-8")
    return path


def load_stats(path: str | Path) -> dict[str, Any]:
    """Read a ``dataset_stats.json`` (a file or a directory holding one); also accepts the nested layout
    ``{"state": {"default": {...}}}`` and returns the flat one."""
    path = Path(path)
    if path.is_dir():
        path = path / STATS_FILENAME
    if not path.is_file():
        raise DatasetError(f"statistics file {path} not found; run `fastwam stats CONFIG` first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is not valid JSON: {exc}") from exc
    flat: dict[str, Any] = {}
    for k, v in data.items():
        if k in ("state", "action") and isinstance(v, dict):
            for sub, stats in v.items():
                for name, val in stats.items():
                    flat[f"{k}.{sub}.{name}"] = val
        else:
            flat[k] = v
    for field in ("state", "action"):
        for name in ("mean", "std", "min", "max"):
            if f"{field}.default.global_{name}" not in flat:
                raise DatasetError(f"{path}: missing {field}.default.global_{name}")
    return flat


def global_stats(stats: dict[str, Any], field: str) -> dict[str, np.ndarray]:
    """{"mean", "std", "min", "max", ...} float32 arrays of ``field`` ("state" or "action")."""
    prefix = f"{field}.default.global_"
    return {k[len(prefix):]: np.asarray(v, dtype=np.float32) for k, v in stats.items() if k.startswith(prefix)}
