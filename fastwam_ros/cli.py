"""``fastwam``: one command for the tools around the model (console script registered in setup.py).

    fastwam train   CONFIG [key=value ...]                 fine-tune (accelerate; see README "Training")
    fastwam stats   CONFIG [key=value ...] [--out FILE]     normalisation statistics (dataset_stats.json)
    fastwam convert CONFIG [key=value ...] --out DIR [--to cache|lerobot]
    fastwam eval    --policy DIR [CONFIG] [key=value ...]   held-out loss of a policy on a dataset
    fastwam sim-eval [--policy DIR|demo|scripted] [--episodes N] [--seed S]   closed-loop success rate in the demo
                                                            simulator (= fastwam-eval, python -m fastwam_ros.eval)
    fastwam info    POLICY_DIR | HUB_ID                     config, contract, metadata, parameter counts
                    [--robot ROBOT]                       ... and the contract check against a robot file
    fastwam parity  FIXTURE_DIR [--tol X] [--section S]     numerical parity with the reference model
    fastwam push    POLICY_DIR REPO_ID                      publish a policy directory to the Hugging Face Hub

Every sub-command is imported only when it runs, so ``fastwam --help`` and ``fastwam <cmd> --help`` do not load
torch. The old entry points (``fastwam-train``, ``fastwam-stats``, ``fastwam-convert``, ``fastwam-parity``) still
work for one release and print a deprecation line.
"""

from __future__ import annotations

import importlib
import sys

# name -> (one-line summary, "module:function" taking (argv, prog) and returning an exit code)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("fine-tune Fast-WAM from a training YAML", "fastwam_ros.training.cli:train_command"),
    "stats": ("compute dataset_stats.json (written to data.stats, or --out)", "fastwam_ros.training.cli:stats_command"),
    "convert": ("rosbag2 -> training cache (.npz) or a LeRobot v3 dataset (--to lerobot)",
                "fastwam_ros.training.cli:convert_command"),
    "eval": ("held-out loss of a policy directory on a dataset (training evaluate())",
             "fastwam_ros.training.cli:eval_command"),
    "sim-eval": ("closed-loop evaluation in the demo simulator: success rate, completion time, clamps, latency",
                 "fastwam_ros.eval:eval_command"),
    "info": ("print a policy directory's config, robot contract, metadata and parameter counts (--robot: check it)",
             "fastwam_ros.hub:info_command"),
    "parity": ("numerical parity against reference fixtures", "fastwam_ros.cli:parity_command"),
    "push": ("upload a policy directory to the Hugging Face Hub (model card included)",
             "fastwam_ros.hub:push_command"),
}

# old console script -> sub-command (kept for one release)
ALIASES = {"fastwam-train": "train", "fastwam-stats": "stats", "fastwam-convert": "convert",
           "fastwam-parity": "parity"}


def usage() -> str:
    from fastwam_ros.version import __version__

    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name.ljust(width)}  {summary}" for name, (summary, _) in COMMANDS.items())
    return (f"usage: fastwam <command> [args]   (fastwam_ros {__version__})\n\ncommands:\n{rows}\n\n"
            "Run `fastwam <command> --help` for its arguments; the training commands take a config file plus "
            "dotted key=value overrides and `--help` lists every key.")


def _resolve(target: str):
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from fastwam_ros.version import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"fastwam: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    return int(_resolve(COMMANDS[name][1])(rest, prog=f"fastwam {name}") or 0)


def _alias(old: str, argv: list[str] | None) -> int:
    new = ALIASES[old]
    print(f"{old} is deprecated and will be removed in the next release; use `fastwam {new}` "
          f"(see `fastwam {new} --help`)", file=sys.stderr)
    return int(_resolve(COMMANDS[new][1])(list(sys.argv[1:] if argv is None else argv), prog=old) or 0)


def train_alias(argv: list[str] | None = None) -> int:
    return _alias("fastwam-train", argv)


def stats_alias(argv: list[str] | None = None) -> int:
    return _alias("fastwam-stats", argv)


def convert_alias(argv: list[str] | None = None) -> int:
    return _alias("fastwam-convert", argv)


def parity_alias(argv: list[str] | None = None) -> int:
    return _alias("fastwam-parity", argv)


def parity_command(argv: list[str], prog: str = "fastwam parity") -> int:
    """Parse here (no torch), then hand the same arguments to the parity checker."""
    import argparse

    ap = argparse.ArgumentParser(prog=prog, description="Compare the model against reference fixtures "
                                 "(intermediate activations of the official implementation); exit 1 on a mismatch.")
    ap.add_argument("fixture_dir", help="folder with the parity fixtures")
    ap.add_argument("--tol", type=float, default=1e-5, help="max abs error allowed (default 1e-5)")
    ap.add_argument("--section", action="append", help="run only these sections (repeatable)")
    ap.parse_args(argv)
    from fastwam_ros.model.parity import main as parity_main

    return parity_main(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
