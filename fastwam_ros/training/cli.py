"""The training sub-commands of ``fastwam`` (``fastwam_ros.cli``): train, stats, convert, eval.

One argument style: ``CONFIG.yaml [key=value ...]`` (dotted keys of the training config; ``--help`` lists them).
Positional arguments that are neither the config file nor ``key=value`` are dataset paths (they replace
``data.paths``); ``--perception ROBOT.yaml`` and ``--format`` are shortcuts for ``data.perception`` /
``data.format``. Multi-GPU / FSDP / DeepSpeed training:
``accelerate launch --config_file config/accelerate/<x>.yaml -m fastwam_ros.training CONFIG.yaml ...``.

Nothing heavy is imported before the arguments are parsed, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .errors import DatasetError, TrainConfigError

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def config_keys_help() -> str:
    from .config import config_keys

    width = max(len(k) for k, _ in config_keys())
    lines = [f"  {k.ljust(width)}  {v!r}" for k, v in config_keys()]
    return ("configuration keys (in the YAML, or as key=value overrides; values parse as YAML):\n"
            + "\n".join(lines))


def _parser(prog: str, description: str, dataset_args: bool = True) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=description, epilog=config_keys_help(),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("args", nargs="*", metavar="CONFIG | key=value | DATASET",
                    help="training YAML (see config/train_*.yaml), dotted overrides such as train.max_steps=100, "
                    "and optionally dataset paths replacing data.paths")
    ap.add_argument("--config", help="training YAML (same as giving it positionally)")
    if dataset_args:
        ap.add_argument("--perception", help="robot / perception YAML (sets data.perception)")
        ap.add_argument("--format", choices=["auto", "rosbag", "lerobot", "cache"], default=None,
                        help="data.format (default: the config's, or detected from the first dataset)")
    return ap


def split_args(tokens: list[str], config: str | None = None) -> tuple[str | None, list[str], list[str]]:
    """(config path, key=value overrides, dataset paths) from positional tokens."""
    overrides, datasets = [], []
    for tok in tokens:
        if "=" in tok.split("/")[0] and not Path(tok).exists():
            overrides.append(tok)
        elif config is None and Path(tok).suffix.lower() in CONFIG_SUFFIXES and Path(tok).is_file():
            config = tok
        else:
            datasets.append(tok)
    return config, overrides, datasets


def load_cli_config(ns: argparse.Namespace, values: dict[str, Any] | None = None):
    """TrainConfig from the parsed arguments (config file, dataset paths, shortcuts, then overrides)."""
    from .config import load_train_config

    config, overrides, datasets = split_args(ns.args, ns.config)
    vals: dict[str, Any] = dict(values or {})
    if datasets:
        vals["data.paths"] = datasets
    if getattr(ns, "perception", None):
        vals["data.perception"] = ns.perception
    fmt = getattr(ns, "format", None)
    if fmt and fmt != "auto":
        vals["data.format"] = fmt
    elif config is None and datasets and "data.format" not in vals:
        from .sources import detect_format

        vals["data.format"] = detect_format(datasets[0])
    return load_train_config(config, overrides, vals)


def _source_settings(cfg) -> dict[str, Any]:
    return cfg.data.rosbag if cfg.data.format == "rosbag" else cfg.data.lerobot


def _perception(cfg):
    from .frames import load_perception_config

    if cfg.data.perception is None:
        if cfg.data.format == "rosbag":
            raise TrainConfigError("rosbag2 recordings need the camera topics and joint names: set data.perception "
                                   "(or --perception ROBOT.yaml)")
        return None
    return load_perception_config(cfg.data.perception)


# ------------------------------------------------------------------------------------------------ train
def train_command(argv: list[str], prog: str = "fastwam train") -> int:
    ap = _parser(prog, "Fine-tune Fast-WAM with video co-training. Example: fastwam train "
                 "config/train_tiny_sample.yaml train.max_steps=100 data.paths=[recordings/ep1]")
    ap.add_argument("--report-to", choices=["none", "tensorboard", "wandb"], default=None,
                    help="log metrics through accelerate's tracker (sets train.report_to; optional packages)")
    ns = ap.parse_args(argv)
    try:
        cfg = load_cli_config(ns, {"train.report_to": ns.report_to} if ns.report_to else None)
        from .trainer import Trainer

        trainer = Trainer(cfg)
        history = trainer.train()
    except (TrainConfigError, DatasetError) as exc:
        return _fail(str(exc))
    if trainer.is_main and history:
        last = history[-1]
        print(f"done: step {last['step']}, loss {last['loss']:.4f} (video {last['loss_video']:.4f}, action "
              f"{last['loss_action']:.4f}); checkpoints in {Path(cfg.output_dir) / 'checkpoints'}")
    return 0


def train_main(argv: list[str] | None = None) -> int:
    """``python -m fastwam_ros.training`` (what ``accelerate launch -m`` runs)."""
    return train_command(list(sys.argv[1:] if argv is None else argv), prog="python -m fastwam_ros.training")


# ------------------------------------------------------------------------------------------------ stats
def stats_output(cfg, out: str | None, into_recordings: bool) -> Path:
    """Where ``fastwam stats`` writes: --out, else data.stats, else (asked) the first recording folder, else
    ``<output_dir>/dataset_stats.json`` (where training looks for it)."""
    from .stats import STATS_FILENAME

    if out:
        return Path(out)
    if cfg.data.stats:
        return Path(cfg.data.stats)
    if into_recordings:
        first = Path(cfg.data.paths[0])
        return (first if first.is_dir() else first.parent) / STATS_FILENAME
    return Path(cfg.output_dir) / STATS_FILENAME


def stats_command(argv: list[str], prog: str = "fastwam stats") -> int:
    ap = _parser(prog, "Compute normalisation statistics (global/stepwise min, max, q01, q99, mean, std; episodes "
                 "weighted equally). Written to --out, else the config's data.stats, else "
                 "<output_dir>/dataset_stats.json (where `fastwam train` looks) -- never into the recordings "
                 "unless --into-recordings is given.")
    ap.add_argument("--out", help="output file or directory")
    ap.add_argument("--into-recordings", action="store_true",
                    help="write <first dataset>/dataset_stats.json (the recordings folder must be writable)")
    ns = ap.parse_args(argv)
    try:
        cfg = load_cli_config(ns)
        from .sources import load_episodes
        from .stats import compute_stats, save_stats

        episodes = load_episodes(cfg.data.format, cfg.data.paths, _source_settings(cfg), _perception(cfg),
                                 load_images=False)
        stats = compute_stats([(ep.state, ep.action) for ep in episodes])
        target = stats_output(cfg, ns.out, ns.into_recordings)
        written = save_stats(stats, target)
    except (TrainConfigError, DatasetError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write the statistics: {exc} (use --out)")
    print(f"{written}: {stats['num_episodes']} episodes, {stats['num_transition']} frames, "
          f"state dim {len(stats['state.default.global_mean'])}, action dim {len(stats['action.default.global_mean'])}")
    return 0


# ------------------------------------------------------------------------------------------------ convert
def convert_command(argv: list[str], prog: str = "fastwam convert") -> int:
    ap = _parser(prog, "Convert recordings. --to cache (default): one .npz per episode with the resampled "
                 "state/action arrays and the used camera frames (train on it with data.format=cache). "
                 "--to lerobot: a LeRobot v3.0 dataset (parquet + one video per camera), decoded by the same "
                 "perception decoder as training, for sharing / visualising with LeRobot's tools.")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--to", choices=["cache", "lerobot"], default="cache", help="output format")
    ap.add_argument("--codec", default="libsvtav1",
                    help="--to lerobot: video codec (libsvtav1 = AV1, LeRobot's default; libx264; ...)")
    ap.add_argument("--crf", type=int, default=30, help="--to lerobot: constant rate factor (lower = better)")
    ap.add_argument("--repo-id", default=None, help="--to lerobot: repo_id recorded in meta/info.json")
    ns = ap.parse_args(argv)
    try:
        cfg = load_cli_config(ns)
        if cfg.data.format == "cache":
            raise TrainConfigError("the input is already a cache")
        from .sources import load_episodes
        from .stats import compute_stats, save_stats

        pcfg = _perception(cfg)
        episodes = load_episodes(cfg.data.format, cfg.data.paths, _source_settings(cfg), pcfg, load_images=True)
        out = Path(ns.out)
        if ns.to == "lerobot":
            from .frames import robot_name
            from .lerobot_export import export_lerobot

            export_lerobot(episodes, out, codec=ns.codec, crf=ns.crf, repo_id=ns.repo_id,
                           joint_names=list(getattr(pcfg, "joint_names", None) or []) or None,
                           robot_type=robot_name(cfg.data.perception) or None)
            print(f"{out}: LeRobot v3.0 dataset, {len(episodes)} episodes, {sum(len(e) for e in episodes)} frames "
                  f"at {episodes[0].fps:g} Hz, codec {ns.codec}")
            return 0
        from .cache import save_episode_cache

        out.mkdir(parents=True, exist_ok=True)
        names = set()
        for k, ep in enumerate(episodes):
            name = ep.name if ep.name not in names else f"{ep.name}_{k}"
            names.add(name)
            save_episode_cache(ep, out / f"{k:05d}_{name}.npz")
        save_stats(compute_stats([(ep.state, ep.action) for ep in episodes]), out)
    except (TrainConfigError, DatasetError) as exc:
        return _fail(str(exc))
    print(f"{out}: {len(episodes)} episodes, {sum(len(e) for e in episodes)} frames at {episodes[0].fps:g} Hz "
          "(+ dataset_stats.json)")
    return 0


# ------------------------------------------------------------------------------------------------ eval
def eval_command(argv: list[str], prog: str = "fastwam eval") -> int:
    ap = _parser(prog, "Held-out loss of a trained policy directory on a dataset: the training loss "
                 "(Trainer.evaluate: fixed samples, fixed noise seeds) -- not a rollout / success-rate "
                 "evaluation. The policy supplies the model config, weights, dataset statistics, perception "
                 "config, bundled VAE and stored instruction embeddings unless the config/overrides set them.")
    ap.add_argument("--policy", required=True, help="policy directory (a checkpoint's policy/) or a Hub id")
    ap.add_argument("--max-samples", type=int, default=64, help="samples evaluated (evenly spaced; default 64)")
    ap.add_argument("--seeds", type=int, default=4, help="noise seeds averaged per sample (default 4)")
    ap.add_argument("--split", choices=["all", "val"], default="all",
                    help="all samples of the data, or the training validation split (train.val_* settings)")
    ns = ap.parse_args(argv)
    try:
        from .evaluate import evaluate_policy

        res = evaluate_policy(ns, load_cli_config)
    except (TrainConfigError, DatasetError) as exc:
        return _fail(str(exc))
    print(f"{res['policy']}: loss {res['loss']:.4f} (video {res['loss_video']:.4f}, action "
          f"{res['loss_action']:.4f}) on {res['num_samples']} samples of {res['num_episodes']} episodes, "
          f"{res['num_seeds']} noise seeds")
    return 0
