"""The `fastwam` command: sub-commands and parsing, deprecated aliases, fast --help (no torch import), where
`fastwam stats` writes, training observability (summary, line logs, smoothing, validation split, trackers) and
`fastwam eval` reproducing the validation loss logged in training from the saved policy directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import training_bagfactory as bf
import yaml

from fastwam_ros.cli import main
from fastwam_ros.training.cli import split_args, stats_command
from fastwam_ros.training.config import config_from_dict, load_train_config
from fastwam_ros.training.episode import Episode
from fastwam_ros.training.errors import TrainConfigError
from fastwam_ros.training.observe import (
    check_tracker,
    ema_update,
    loss_series,
    smoothed,
    spaced_indices,
    split_episodes,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> Path:
    return bf.write_recordings(tmp_path_factory.mktemp("fwcli") / "recordings")


@pytest.fixture(scope="module")
def train_yaml(tmp_path_factory, bags) -> Path:
    d = tmp_path_factory.mktemp("cfg")
    cfg = {"output_dir": str(d / "run"),
           "model": {"config": "tiny", "vae": "random", "text_encoder": "random"},
           "data": {"format": "rosbag", "paths": [str(bags)], "perception": bf.perception_dict(),
                    "latent_cache": "memory"},
           "train": {"batch_size": 2, "max_steps": 6, "save_every": 6, "lr": 1e-3, "log_every": 2, "val_every": 3,
                     "val_samples": 4, "val_fraction": 0.5, "val_seed": 3}}
    p = d / "train.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


# ------------------------------------------------------------------------------------------------ parsing
def test_top_level_help_lists_commands_and_unknown_command_fails(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("train", "stats", "convert", "eval", "sim-eval", "info", "parity", "push"):
        assert f"  {name}" in out
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", ["train", "stats", "convert", "eval", "sim-eval", "info", "parity", "push"])
def test_subcommand_help_is_fast_and_lists_the_keys(cmd):
    code = (f"import sys\nfrom fastwam_ros.cli import main\ntry:\n    main([{cmd!r}, '--help'])\n"
            "except SystemExit as e:\n    assert e.code == 0\nprint('TORCH', 'torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "TORCH False" in res.stdout  # lazy imports: --help never loads torch
    if cmd in ("train", "stats", "convert", "eval"):
        for key in ("train.max_steps", "train.val_fraction", "train.report_to", "data.stats", "model.variant"):
            assert key in res.stdout
    if cmd == "sim-eval":
        for flag in ("--policy", "--episodes", "--seed", "--sim-mode", "--success-fold", "--no-video"):
            assert flag in res.stdout


def test_split_args_config_overrides_datasets(tmp_path, train_yaml):
    d = tmp_path / "bag_dir"
    d.mkdir()
    cfg, ov, ds = split_args([str(train_yaml), "train.max_steps=3", str(d), "data.paths=[/a/b]"])
    assert cfg == str(train_yaml) and ov == ["train.max_steps=3", "data.paths=[/a/b]"] and ds == [str(d)]


def test_deprecated_aliases_still_work(bags, train_yaml, tmp_path, capsys):
    from fastwam_ros.cli import stats_alias

    out = tmp_path / "s.json"
    robot = tmp_path / "robot.yaml"
    robot.write_text(yaml.safe_dump({"perception": bf.perception_dict()}))
    assert stats_alias([str(bags / "ep_a"), "--perception", str(robot), "--out", str(out)]) == 0  # old style
    err = capsys.readouterr().err
    assert "fastwam-stats is deprecated" in err and "fastwam stats" in err
    assert json.loads(out.read_text())["num_episodes"] == 1
    assert stats_alias(["--config", str(train_yaml), "--out", str(tmp_path / "t.json")]) == 0  # old --config
    assert json.loads((tmp_path / "t.json").read_text())["num_episodes"] == 2
    text = (REPO / "setup.py").read_text()
    for old in ("fastwam-train", "fastwam-stats", "fastwam-convert", "fastwam-parity"):
        assert f'"{old} = fastwam_ros.cli:' in text
    assert '"fastwam = fastwam_ros.cli:main"' in text
    import importlib
    import re

    for module, func in re.findall(r'"fastwam[\w-]* = ([\w.]+):(\w+)"', text):  # every console script resolves
        assert callable(getattr(importlib.import_module(module), func))


def test_step_log_is_a_bar_on_a_terminal_and_lines_otherwise():
    import io

    from fastwam_ros.training.observe import StepLog

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    rec = {"step": 1, "epoch": 0, "loss": 1.0, "loss_smoothed": 1.0, "loss_video": 0.5, "loss_action": 0.5,
           "lr": 1e-4, "samples_per_s": 2.0}
    outputs = {}
    for name, stream in (("tty", Terminal()), ("file", io.StringIO())):
        log = StepLog(total=2, initial=0, enabled=True, progress=True, stream=stream)
        log.step(rec, line_due=True)
        log.step({**rec, "step": 2}, line_due=True)
        log.close()
        outputs[name] = stream.getvalue()
    assert "\r" in outputs["tty"] and "step 1/2" not in outputs["tty"]  # tqdm redraws one line
    assert outputs["file"].splitlines()[0].startswith("step 1/2") and "\r" not in outputs["file"]
    assert len(outputs["file"].splitlines()) == 2


# ------------------------------------------------------------------------------------------------ stats location
def test_stats_written_to_data_stats_or_output_dir_never_into_recordings(bags, train_yaml, tmp_path):
    target = tmp_path / "stats" / "ds.json"
    assert stats_command([str(train_yaml), f"data.stats={target}"]) == 0
    assert json.loads(target.read_text())["num_episodes"] == 2
    out_dir = tmp_path / "run2"
    assert stats_command([str(train_yaml), f"output_dir={out_dir}"]) == 0  # no data.stats: where train looks
    assert (out_dir / "dataset_stats.json").is_file()
    assert not list(bags.rglob("dataset_stats.json"))  # the recordings were not touched
    assert stats_command([str(train_yaml), "--into-recordings"]) == 0  # only when asked
    assert (bags / "dataset_stats.json").is_file()
    (bags / "dataset_stats.json").unlink()


# ------------------------------------------------------------------------------------------------ observability units
def _eps(n: int) -> list[Episode]:
    return [Episode(name=f"e{i}", fps=10.0, state=np.zeros((3, 2)), action=np.zeros((3, 2)), instruction="x")
            for i in range(n)]


def test_validation_split_is_deterministic_and_disjoint():
    eps = _eps(10)
    tr, va = split_episodes(eps, 0.2, seed=7)
    tr2, va2 = split_episodes(eps, 0.2, seed=7)
    assert [e.name for e in va] == [e.name for e in va2] and len(va) == 2 and len(tr) == 8
    assert {e.name for e in tr} | {e.name for e in va} == {e.name for e in eps}
    assert not {e.name for e in tr} & {e.name for e in va}
    assert [e.name for e in tr] == sorted((e.name for e in tr), key=lambda s: int(s[1:]))  # input order kept
    others = {tuple(e.name for e in split_episodes(eps, 0.2, seed=s)[1]) for s in range(8)}
    assert len(others) > 1  # the seed chooses the episodes
    tr1, va1 = split_episodes(_eps(1), 0.5, 0)
    assert len(tr1) == 1 and va1 == []  # one episode: nothing to hold out
    assert len(split_episodes(_eps(2), 0.1, 0)[1]) == 1 and len(split_episodes(_eps(3), 0.99, 0)[0]) == 1
    assert split_episodes(eps, 0.0, 0)[1] == []
    assert spaced_indices(10, 4) == [0, 3, 6, 9] and spaced_indices(3, 8) == [0, 1, 2]


def test_smoothing_is_the_debiased_ema():
    assert smoothed([1.0, 3.0], 0.5) == pytest.approx([1.0, (0.5 * 0.5 + 0.5 * 3.0) / 0.75])  # by hand
    assert smoothed([2.0] * 5, 0.9) == pytest.approx([2.0] * 5)  # debiased: a constant stays constant
    assert smoothed([1.0, 5.0], 0.0) == [1.0, 5.0]
    vals, acc, run = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0], (None, 0), []
    for v in vals:  # the trainer's incremental update (also after a resume) gives the same curve
        acc = ema_update(acc, v, 0.8)
        run.append(acc[0])
    assert run == pytest.approx(smoothed(vals, 0.8))
    s = loss_series([{"step": 1, "loss": 1.0}, {"step": 2, "loss": 3.0}], [{"step": 2, "val_loss": 2.5}], 0.5)
    assert s["val"] == ([2], [2.5]) and s["train_smoothed"][1] == pytest.approx(smoothed([1.0, 3.0], 0.5))


def test_report_to_missing_package_is_a_clear_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("tensorboard", "tensorboardX", "wandb") else real(name, *a))
    with pytest.raises(TrainConfigError, match="pip install tensorboard"):
        check_tracker("tensorboard")
    with pytest.raises(TrainConfigError, match="pip install wandb"):
        check_tracker("wandb")
    assert check_tracker("none") is None
    with pytest.raises(TrainConfigError, match="train.report_to must be one of"):
        load_train_config(None, ["data.paths=[a]", "train.report_to=mlflow"])


# ------------------------------------------------------------------------------------------------ training + eval
def test_training_observability_and_eval_reproduces_validation_loss(train_yaml, tmp_path, capsys):
    from fastwam_ros.hub import describe

    out = tmp_path / "run"
    assert main(["train", str(train_yaml), f"output_dir={out}"]) == 0
    err = capsys.readouterr().err
    # start-up summary (pytest's stderr is not a terminal: plain lines, no tqdm carriage returns)
    assert "episodes:    1 train / 1 validation (split seed 3)" in err
    assert "parameters" in err and "precision no" in err and "= 2 effective" in err
    assert "\r" not in err
    assert "step 2/6" in err and "step 4/6" in err and "validation @ step 3" in err
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["effective_batch"] == 2 and summary["train_episodes"] == 1 and summary["val_episodes"] == 1
    recs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    train_recs = [r for r in recs if "loss" in r]
    val_recs = [r for r in recs if "val_loss" in r]
    assert [r["step"] for r in train_recs] == [1, 2, 3, 4, 5, 6]  # every step, as lines
    assert [r["step"] for r in val_recs] == [3, 6]
    np.testing.assert_allclose([r["loss_smoothed"] for r in train_recs],
                               smoothed([r["loss"] for r in train_recs], 0.9), rtol=1e-9)
    policy = out / "checkpoints" / "step_00000006" / "policy"
    meta = json.loads((policy / "meta.json").read_text())
    assert meta["metrics"]["val_loss"] == pytest.approx(val_recs[-1]["val_loss"])
    assert meta["training_data"]["val_episodes"] == 1
    assert "val_loss" in (policy / "README.md").read_text()
    # the model card summarises the robot contract training saved (fastwam_ros.contract's robot_contract.json)
    from huggingface_hub import ModelCard

    from fastwam_ros.contract import CONTRACT_FILE

    contract = json.loads((policy / CONTRACT_FILE).read_text())
    card_robot = ModelCard.load(policy / "README.md").data.to_dict()["fastwam"]["robot"]
    assert card_robot["cameras"] == contract["camera_names"] == ["head", "left_wrist", "right_wrist"]
    assert card_robot["joints"] == contract["joint_names"] == bf.JOINTS
    assert card_robot["chunk_step_period_s"] == pytest.approx(contract["chunk_step_period_s"])
    assert describe(policy)["contract"] == contract
    assert describe(policy)["parameters"]["total"] > 0
    # fastwam eval on the saved policy gives the validation loss the trainer logged with the in-memory model (same
    # samples, same noise seeds). Without a config everything comes from the policy directory: model config,
    # weights, perception.json, dataset stats, the bundled VAE and the stored instruction embeddings.
    bags = yaml.safe_load(train_yaml.read_text())["data"]["paths"][0]
    for extra in ([f"data.paths=[{bags}]"], [str(train_yaml)]):
        capsys.readouterr()
        assert main(["eval", "--policy", str(policy), *extra, "train.val_fraction=0.5", "train.val_seed=3",
                     "--split", "val", "--max-samples", "4", "--seeds", "4"]) == 0
        line = capsys.readouterr().out
        got = float(line.split(": loss ")[1].split(" ")[0])
        assert got == pytest.approx(val_recs[-1]["val_loss"], rel=1e-3, abs=1e-4), extra
        assert "4 samples of 1 episodes" in line


def test_eval_errors_are_named(train_yaml, tmp_path, capsys):
    assert main(["eval", "--policy", str(tmp_path / "nope"), str(train_yaml)]) == 2
    assert "not a policy directory" in capsys.readouterr().err
    assert config_from_dict(yaml.safe_load(train_yaml.read_text())).train.val_fraction == 0.5


def test_report_to_tensorboard_logs_train_and_validation_curves(train_yaml, tmp_path):
    pytest.importorskip("tensorboard", reason="the tracking extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb"
    assert main(["train", str(train_yaml), f"output_dir={out}", "train.max_steps=2", "train.val_every=2",
                 "train.save_every=100", "--report-to", "tensorboard"]) == 0
    tags, acc = set(), None
    for folder in sorted({e.parent for e in out.rglob("events.out.tfevents.*")}):  # scalars + an hparams run
        a = EventAccumulator(str(folder))
        a.Reload()
        if a.Tags()["scalars"]:
            tags, acc = set(a.Tags()["scalars"]), a
    assert {"train/loss", "train/loss_smoothed", "val/loss"} <= tags
    recs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    logged = {e.step: e.value for e in acc.Scalars("val/loss")}
    for r in (r for r in recs if "val_loss" in r):
        assert logged[r["step"]] == pytest.approx(r["val_loss"], rel=1e-6)
    train_logged = {e.step: e.value for e in acc.Scalars("train/loss")}
    assert train_logged == {r["step"]: pytest.approx(r["loss"], rel=1e-6) for r in recs if "loss" in r}
