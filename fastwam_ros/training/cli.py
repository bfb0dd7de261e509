"""Command-line entry points (console scripts registered in setup.py).

* ``fastwam-train CONFIG.yaml [key=value ...]``   train (single process; for several GPUs / FSDP / DeepSpeed:
  ``accelerate launch --config_file config/accelerate/<x>.yaml -m fastwam_ros.training CONFIG.yaml ...``);
* ``fastwam-stats DATASET [--config CONFIG.yaml]`` write ``DATASET/dataset_stats.json``;
* ``fastwam-convert --config CONFIG.yaml --out CACHE_DIR`` rosbag2 / LeRobot → training-ready ``.npz`` cache.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import DatasetError, TrainConfigError


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def train_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fastwam-train",
        description="Fine-tune Fast-WAM with video co-training. Overrides are dotted key=value pairs, e.g. "
        "train.max_steps=1000 model.variant=idm data.paths=[/data/bags].",
    )
    parser.add_argument("config", help="training YAML (see config/train_*.yaml)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides")
    args = parser.parse_args(argv)
    from .config import load_train_config
    from .trainer import Trainer

    try:
        cfg = load_train_config(args.config, args.overrides)
        trainer = Trainer(cfg)
        history = trainer.train()
    except (TrainConfigError, DatasetError) as exc:
        return _fail(str(exc))
    if trainer.is_main and history:
        last = history[-1]
        print(f"done: step {last['step']}, loss {last['loss']:.4f} (video {last['loss_video']:.4f}, action "
              f"{last['loss_action']:.4f}); checkpoints in {Path(cfg.output_dir) / 'checkpoints'}")
    return 0


def _data_settings(args) -> tuple[str, list[str], dict, object]:
    """(format, paths, source settings, perception config) from --config / --perception / the dataset path."""
    from .config import load_train_config
    from .frames import load_perception_config
    from .sources import detect_format

    if args.config:
        cfg = load_train_config(args.config, getattr(args, "overrides", None) or [])
        paths = list(args.dataset) if getattr(args, "dataset", None) else list(cfg.data.paths)
        fmt = cfg.data.format
        settings = cfg.data.rosbag if fmt == "rosbag" else cfg.data.lerobot
        pcfg = load_perception_config(cfg.data.perception) if cfg.data.perception is not None else None
        return fmt, paths, settings, pcfg
    paths = list(args.dataset or [])
    if not paths:
        raise TrainConfigError("give a dataset path or --config")
    fmt = args.format if args.format != "auto" else detect_format(paths[0])
    pcfg = load_perception_config(args.perception) if args.perception else None
    if fmt == "rosbag" and pcfg is None:
        raise TrainConfigError("rosbag2 recordings need the camera topics and joint names: pass --perception "
                               "ROBOT.yaml or --config TRAIN.yaml")
    settings = {} if fmt != "lerobot" or pcfg is not None else {"cameras": {}}
    return fmt, paths, settings, pcfg


def stats_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fastwam-stats",
        description="Compute normalisation statistics (global/stepwise min, max, q01, q99, mean, std; episodes "
        "weighted equally) and write dataset_stats.json next to the dataset.",
    )
    parser.add_argument("dataset", nargs="*", help="dataset / recordings (default: data.paths of --config)")
    parser.add_argument("--config", help="training YAML providing the data section")
    parser.add_argument("--perception", help="robot / perception YAML (cameras, joint names) for rosbag2 input")
    parser.add_argument("--format", default="auto", choices=["auto", "rosbag", "lerobot", "cache"])
    parser.add_argument("--out", help="output file or directory (default: <first dataset>/dataset_stats.json)")
    args = parser.parse_args(argv)
    from .sources import load_episodes
    from .stats import STATS_FILENAME, compute_stats, save_stats

    try:
        fmt, paths, settings, pcfg = _data_settings(args)
        episodes = load_episodes(fmt, paths, settings, pcfg, load_images=False)
        stats = compute_stats([(ep.state, ep.action) for ep in episodes])
        first = Path(paths[0])
        out = Path(args.out) if args.out else (first if first.is_dir() else first.parent) / STATS_FILENAME
        written = save_stats(stats, out)
    except (TrainConfigError, DatasetError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write the statistics: {exc} (use --out)")
    print(f"{written}: {stats['num_episodes']} episodes, {stats['num_transition']} frames, "
          f"state dim {len(stats['state.default.global_mean'])}, action dim {len(stats['action.default.global_mean'])}")
    return 0


def convert_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fastwam-convert",
        description="Convert rosbag2 recordings (or a LeRobot dataset) into a training-ready cache: one .npz per "
        "episode with the resampled state/action arrays and the used camera frames (original JPEG/PNG bytes, raw "
        "frames as lossless PNG). Train on it with data.format=cache data.paths=[OUT].",
    )
    parser.add_argument("dataset", nargs="*", help="recordings (default: data.paths of --config)")
    parser.add_argument("--config", help="training YAML providing the data section")
    parser.add_argument("--perception", help="robot / perception YAML (cameras, joint names) for rosbag2 input")
    parser.add_argument("--format", default="auto", choices=["auto", "rosbag", "lerobot"])
    parser.add_argument("--out", required=True, help="output directory")
    args = parser.parse_args(argv)
    from .cache import save_episode_cache
    from .sources import load_episodes
    from .stats import compute_stats, save_stats

    try:
        fmt, paths, settings, pcfg = _data_settings(args)
        if fmt == "cache":
            raise TrainConfigError("the input is already a cache")
        episodes = load_episodes(fmt, paths, settings, pcfg, load_images=True)
        out = Path(args.out)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(train_main())
