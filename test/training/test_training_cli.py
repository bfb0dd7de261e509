"""CLI: fastwam stats (official stats layout, equal-weight pooling), fastwam convert (cache = live samples),
fastwam train on a YAML config with overrides, config errors, accelerate configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import training_bagfactory as bf

from fastwam_ros.training.cli import convert_command, stats_command, train_command
from fastwam_ros.training.config import apply_overrides, load_train_config
from fastwam_ros.training.dataset import FastWAMDataset
from fastwam_ros.training.errors import TrainConfigError
from fastwam_ros.training.frames import load_perception_config
from fastwam_ros.training.sources import load_episodes
from fastwam_ros.training.stats import compute_stats

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> Path:
    return bf.write_recordings(tmp_path_factory.mktemp("cli") / "recordings")


@pytest.fixture(scope="module")
def perception_yaml(tmp_path_factory) -> Path:
    return bf.write_robot_yaml(tmp_path_factory.mktemp("robot") / "robot.yaml")


def test_stats_cli_official_layout_and_pooling(bags, perception_yaml, tmp_path):
    out = tmp_path / "stats.json"
    assert stats_command([str(bags), "--perception", str(perception_yaml), "--out", str(out)]) == 0
    s = json.loads(out.read_text())
    eps = load_episodes("rosbag", [bags], {}, load_perception_config(str(perception_yaml)), load_images=False)
    assert [len(e) for e in eps] == [45, 27]
    assert s["num_episodes"] == 2 and s["num_transition"] == 72
    for field, arrs in (("state", [e.state for e in eps]), ("action", [e.action for e in eps])):
        x = np.concatenate(arrs).astype(np.float64)
        # each episode weighted equally: frame weights 1 / (E * T_e); pooled std = std of that mixture
        w = np.concatenate([np.full(len(a), 1.0 / (len(arrs) * len(a))) for a in arrs])
        mu = np.average(x, axis=0, weights=w)
        sd = np.sqrt(np.average((x - mu) ** 2, axis=0, weights=w))
        np.testing.assert_allclose(s[f"{field}.default.global_mean"], mu, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(s[f"{field}.default.global_std"], sd, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(s[f"{field}.default.global_min"], x.min(0))
        np.testing.assert_allclose(s[f"{field}.default.global_max"], x.max(0))
        q01 = np.min([np.percentile(a.astype(np.float64), 1, axis=0) for a in arrs], axis=0)
        np.testing.assert_allclose(s[f"{field}.default.global_q01"], q01, rtol=1e-9, atol=1e-12)
    assert np.asarray(s["action.default.stepwise_mean"]).shape == (32, 14)
    assert np.asarray(s["state.default.stepwise_mean"]).shape == (1, 14)
    # unequal episode lengths: the pooled mean differs from the plain frame mean
    assert not np.allclose(s["state.default.global_mean"], np.concatenate([e.state for e in eps]).mean(0))


def test_stats_reject_nan():
    from fastwam_ros.training.errors import DatasetError

    a = np.zeros((5, 2))
    a[3, 1] = np.nan
    with pytest.raises(DatasetError, match="non-finite state at tick 3, dim 1"):
        compute_stats([(a, np.zeros((5, 2)))])


def test_convert_cache_equals_live_samples(bags, perception_yaml, tmp_path):
    out = tmp_path / "cache"
    assert convert_command([str(bags / "ep_a"), "--perception", str(perception_yaml), "--out", str(out)]) == 0
    assert (out / "dataset_stats.json").is_file() and len(list(out.glob("*.npz"))) == 1
    pcfg = load_perception_config(str(perception_yaml))
    live = FastWAMDataset(load_episodes("rosbag", [bags / "ep_a"], {}, pcfg), pcfg)
    cached = FastWAMDataset(load_episodes("cache", [out], {}, pcfg), pcfg)
    assert len(live) == len(cached) == 45
    for i in (0, 17, 44):
        a, b = live[i], cached[i]
        for k in ("video", "actions", "state", "action_is_pad", "image_is_pad"):
            np.testing.assert_array_equal(a[k].numpy(), b[k].numpy(), err_msg=k)
        assert a["instruction"] == b["instruction"]


def test_train_cli_with_overrides(bags, tmp_path):
    out = tmp_path / "run"  # the smoke-test config on the repository's own sample recording
    rc = train_command([str(REPO / "config" / "train_tiny_sample.yaml"), f"output_dir={out}",
                        f"data.paths=[{REPO / 'data' / 'sample_episode'}]", f"data.stats={out / 'dataset_stats.json'}",
                     "train.max_steps=3", "train.save_every=3", "train.progress=false", "model.variant=idm"])
    assert rc == 0
    ck = out / "checkpoints" / "step_00000003"
    assert (ck / "policy" / "model.safetensors").is_file() and (ck / "loss_curve.png").is_file()
    assert json.loads((ck / "policy" / "config.json").read_text())["variant"] == "idm"
    assert (out / "dataset_stats.json").is_file()


def test_config_errors_are_named(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("output_dir: x\ntrain: {batchsize: 4}\ndata: {paths: [a]}\n")
    assert train_command([str(bad)]) == 2
    assert "batchsize" in capsys.readouterr().err
    with pytest.raises(TrainConfigError, match="not key=value"):
        apply_overrides({}, ["train.lr"])
    d = apply_overrides({}, ["train.lr=3e-4", "data.paths=[a, b]", "model.init=null"])
    assert d == {"train": {"lr": "3e-4"}, "data": {"paths": ["a", "b"]}, "model": {"init": None}}
    cfg = load_train_config(None, ["train.lr=3e-4", "data.paths=[a, b]", "train.min_lr=1e-6"])
    assert cfg.train.lr == 3e-4 and cfg.train.min_lr == 1e-6 and cfg.data.paths == ["a", "b"]
    with pytest.raises(TrainConfigError, match="train.lr must be a number"):
        load_train_config(None, ["train.lr=fast", "data.paths=[a]"])
    with pytest.raises(TrainConfigError, match="model.variant must be one of"):
        load_train_config(None, ["data.paths=[a]", "model.variant=uncond"])


def test_accelerate_configs_load():
    from accelerate.commands.config.config_args import load_config_from_file

    kinds = {}
    for name in ("single_gpu", "multi_gpu", "deepspeed_zero1", "fsdp"):
        c = load_config_from_file(str(REPO / "config" / "accelerate" / f"{name}.yaml"))
        kinds[name] = (str(c.distributed_type), c.mixed_precision, c.num_processes)
    assert kinds["single_gpu"] == ("DistributedType.NO", "bf16", 1)
    assert kinds["multi_gpu"][0] == "DistributedType.MULTI_GPU" and kinds["multi_gpu"][2] > 1
    assert kinds["deepspeed_zero1"][0] == "DistributedType.DEEPSPEED"
    assert kinds["fsdp"][0] == "DistributedType.FSDP"
