"""``fastwam eval``: the training loss of a trained policy directory on a dataset (``Trainer.evaluate``).

The policy directory supplies what the config does not set: the model config (``config.json``), the weights
(``model.init``), the dataset statistics and perception config it was trained with, its bundled VAE and its stored
instruction embeddings. The result is a deterministic number (fixed, evenly spaced samples; fixed noise seeds), the
same measure as the validation loss logged during training -- not a closed-loop success rate.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from .errors import TrainConfigError


def _policy_values(policy: Path, ns: Any) -> dict[str, Any]:
    """Config values taken from the policy directory (the user's config / overrides win)."""
    vals: dict[str, Any] = {"model.config": str(policy / "config.json"), "model.init": str(policy)}
    if (policy / "dataset_stats.json").is_file():
        vals["data.stats"] = str(policy / "dataset_stats.json")
    if (policy / "perception.json").is_file() and not getattr(ns, "perception", None):
        vals["data.perception"] = str(policy / "perception.json")
    meta = json.loads((policy / "meta.json").read_text(encoding="utf-8")) if (policy / "meta.json").is_file() else {}
    if meta.get("bundled_vae"):
        vals["model.vae"] = "random"  # replaced by the bundled weights below
    vals["model.text_encoder"] = "policy"
    return vals


def evaluate_policy(ns: Any, load_cli_config) -> dict[str, Any]:
    """Run the evaluation described by the parsed ``fastwam eval`` arguments; returns the figures."""
    import torch

    from fastwam_ros.hub import resolve_policy_dir
    from fastwam_ros.model.checkpoints.serialization import load_policy_dir, load_state_strict
    from fastwam_ros.model.processing.text_cache import TextEmbeddingCache

    from .observe import spaced_indices
    from .trainer import Trainer

    policy = resolve_policy_dir(ns.policy)
    if (policy / "policy" / "meta.json").is_file():
        policy = policy / "policy"  # a checkpoint directory
    if not (policy / "meta.json").is_file():
        raise TrainConfigError(f"{policy} is not a policy directory (no meta.json); give a checkpoint's policy/")
    defaults = _policy_values(policy, ns)
    with tempfile.TemporaryDirectory(prefix="fastwam_eval_") as tmp:
        # the user's config and overrides are applied on top of the policy's values
        from .cli import split_args
        from .config import config_from_dict

        config, _, _ = split_args(ns.args, ns.config)
        user = load_cli_config(ns, {"data.paths": ["_"]} if config is None and not _has_data(ns) else None)
        d = user.to_dict()
        given = _explicit_keys(ns)
        for key, value in defaults.items():
            if key not in given:
                section, name = key.split(".")
                d[section][name] = value
        d["output_dir"] = tmp
        d["train"].update(max_steps=1, progress=False, report_to="none", resume=None)
        if ns.split == "all":
            d["train"]["val_fraction"] = 0.0
        cfg = config_from_dict(d)
        if cfg.data.paths == ["_"]:
            raise TrainConfigError("no data to evaluate on: give a config with data.paths, dataset paths, or "
                                   "data.paths=[...]")
        bundle = load_policy_dir(policy)
        cache = None
        if cfg.model.text_encoder == "policy":
            if not bundle.text_embeds:
                raise TrainConfigError(f"{policy} stores no instruction embeddings: set model.text_encoder=DIR")
            cache = TextEmbeddingCache(None, encoder_id=bundle.text_encoder_id,
                                       template=bundle.config.policy.prompt_template)
            for prompt, emb in bundle.text_embeds.items():
                cache.put_prompt(prompt, emb)
        try:
            trainer = Trainer(cfg, text_cache=cache)
        except KeyError as exc:
            raise TrainConfigError(f"an instruction of the data has no embedding stored in {policy} ({exc}); "
                                   "set model.text_encoder=DIR") from exc
        if bundle.vae_state is not None and cfg.model.vae == "random":
            load_state_strict(trainer.vae.vae, bundle.vae_state, where=f"{policy} (vae.*)")
        if ns.split == "val":
            if trainer.val_dataset is None:
                raise TrainConfigError("the data has no validation split (needs >= 2 episodes and "
                                       "train.val_fraction > 0)")
            ds = trainer.val_dataset
        else:
            ds = trainer.dataset
        indices = spaced_indices(len(ds), ns.max_samples)
        res = trainer.evaluate(indices, seeds=tuple(range(max(ns.seeds, 1))), dataset=ds)
        del trainer
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return {"policy": str(policy), **res, "num_samples": len(indices), "num_episodes": len(ds.episodes),
            "num_seeds": max(ns.seeds, 1)}


def _has_data(ns: Any) -> bool:
    from .cli import split_args

    _, overrides, datasets = split_args(ns.args, ns.config)
    return bool(datasets) or any(o.startswith("data.paths=") for o in overrides)


def _explicit_keys(ns: Any) -> set[str]:
    """Dotted keys the user set (overrides, the config file, shortcuts)."""
    import yaml

    from .cli import split_args

    config, overrides, _ = split_args(ns.args, ns.config)
    keys = {o.split("=", 1)[0].strip().lstrip("-") for o in overrides}
    if getattr(ns, "perception", None):
        keys.add("data.perception")
    if config:
        doc = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
        for section, body in doc.items():
            if isinstance(body, dict):
                keys.update(f"{section}.{k}" for k in body)
    return keys
