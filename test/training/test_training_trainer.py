"""Trainer: a tiny Fast-WAM learns on a synthetic MCAP recording; resume is exact; checkpoints are deployable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import training_bagfactory as bf

from fastwam_ros.training.config import VARIANTS, config_from_dict
from fastwam_ros.training.rosbag_source import RosbagSpec, read_rosbag_episode
from fastwam_ros.training.trainer import Trainer, warmup_cosine_factor


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    return bf.write_bag(tmp_path_factory.mktemp("trainbag") / "ep0")


def make_cfg(out: Path, bag: Path, variant: str | None = None, **train):
    t = {"batch_size": 2, "max_steps": 30, "save_every": 15, "progress": False, "lr": 1e-3, "log_every": 5}
    t.update(train)
    return config_from_dict({
        "output_dir": str(out),
        "model": {"config": "tiny", "vae": "random", "text_encoder": "random", "variant": variant},
        "data": {"format": "rosbag", "paths": [str(bag)], "perception": bf.perception_dict(),
                 "latent_cache": "memory"},
        "train": t,
    })


def test_schedule_matches_torch_linear_then_cosine():
    total, warm, lr, min_lr = 100, 5, 1e-4, 1e-6
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=lr)
    ref = torch.optim.lr_scheduler.SequentialLR(opt, [
        torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0 / warm, total_iters=warm),
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warm, eta_min=min_lr),
    ], milestones=[warm])
    for step in range(total):
        assert warmup_cosine_factor(step, total, warm, lr, min_lr) * lr == pytest.approx(opt.param_groups[0]["lr"],
                                                                                         rel=1e-6, abs=1e-12)
        opt.step()
        ref.step()


def test_train_decreases_loss_resume_exact_and_checkpoint(tmp_path, bag):
    from fastwam_ros.model.checkpoints.serialization import load_policy_dir

    probe = [0, 11, 22, 33, 44]
    a = Trainer(make_cfg(tmp_path / "a", bag))
    assert a.total_steps == 30 and a.batches_per_epoch == 23  # 45 samples, batch 2
    before = a.evaluate(probe)
    hist_a = [dict(h) for h in a.train()]
    after = a.evaluate(probe)
    assert after["loss"] < 0.9 * before["loss"], (before, after)
    assert after["loss_action"] < before["loss_action"]
    assert len(hist_a) == 30 and all(np.isfinite(h["loss"]) for h in hist_a)
    assert hist_a[0]["lr"] == pytest.approx(1e-3 * warmup_cosine_factor(0, 30, 1, 1e-3, 1e-6))

    # checkpoints: policy directory with stats + instruction embedding, accelerate state, plot
    ck = tmp_path / "a" / "checkpoints" / "step_00000030"
    assert (ck / "state").is_dir() and (ck / "trainer_state.json").is_file()
    assert (ck / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "a" / "checkpoints" / "step_00000015").is_dir()
    bundle = load_policy_dir(ck / "policy")
    own = a.accelerator.unwrap_model(a.loss_module).model.state_dict()
    assert set(bundle.model_state) == set(own)
    for k, v in own.items():
        torch.testing.assert_close(bundle.model_state[k], v.cpu(), rtol=0, atol=0)
    x = torch.tensor(a.dataset.episodes[0].action[:5])
    torch.testing.assert_close(bundle.normalizer.action(x), a.normalizer.action(x))
    assert list(bundle.text_embeds) == [a.prompts[bf.INSTRUCTION]]
    assert (ck / "policy" / "dataset_stats.json").is_file() and (ck / "policy" / "perception.json").is_file()

    # deployable as is: the random tiny VAE is bundled, so FastWAMPolicy loads the checkpoint without vae_dir
    from fastwam_ros.model.inference.policy import FastWAMPolicy

    pol = FastWAMPolicy.from_pretrained(ck / "policy")
    trained_vae = a.vae.vae.state_dict()
    deployed_vae = pol.vae.vae.state_dict()
    assert set(deployed_vae) == set(trained_vae)
    for k, v in trained_vae.items():
        torch.testing.assert_close(deployed_vae[k], v.cpu(), rtol=0, atol=0)
    item = a.dataset[0]
    out = pol.predict(item["video"][:, 0].numpy(), bf.INSTRUCTION, item["state"].numpy())
    assert out.actions.shape == (32, a.model_config.action_dim) and np.isfinite(out.actions).all()
    _check_trained_contract(ck / "policy")

    # interrupted at step 15, resumed in a fresh trainer: identical losses and weights afterwards
    b = Trainer(make_cfg(tmp_path / "b", bag))
    b.train(stop_at=15)
    del b
    c = Trainer(make_cfg(tmp_path / "b", bag, resume="auto"))
    assert c.state.step == 15 and c.state.batch_in_epoch == 15
    hist_c = c.train()
    assert [h["loss"] for h in hist_c[15:]] == [h["loss"] for h in hist_a[15:]]
    assert [h["lr"] for h in hist_c] == [h["lr"] for h in hist_a]
    own_c = c.accelerator.unwrap_model(c.loss_module).model.state_dict()
    for k, v in own.items():
        torch.testing.assert_close(own_c[k], v, rtol=0, atol=0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_all_variants_train(tmp_path, bag, variant):
    spec = RosbagSpec(cameras=dict(bf.CAMERAS), joint_names=list(bf.JOINTS))
    eps = [read_rosbag_episode(bag, spec)]
    tr = Trainer(make_cfg(tmp_path / variant, bag, variant=variant, max_steps=3, save_every=100), episodes=eps)
    assert tr.accelerator.unwrap_model(tr.loss_module).model.variant == variant
    hist = tr.train()
    assert len(hist) == 3 and any(h["loss_video"] > 0 for h in hist)
    lam_v = 0.0 if variant == "fastwam_no_video" else 1.0
    for h in hist:
        assert np.isfinite(h["loss"]) and h["loss_action"] > 0
        assert h["loss"] == pytest.approx(lam_v * h["loss_video"] + h["loss_action"], rel=1e-5)


def _check_trained_contract(policy_dir: Path) -> None:
    """The trained checkpoint carries the robot it was trained for; deployment on another robot is refused."""
    import json

    import yaml

    from fastwam_ros.errors import ContractError
    from fastwam_ros.model.inference.policy import FastWAMPolicy

    c = json.loads((policy_dir / "robot_contract.json").read_text())
    assert c["joint_names"] == bf.JOINTS and c["camera_names"] == list(bf.CAMERAS)
    assert c["frame_hw"] == [64, 96] and c["tiling_layout"] == "robotwin" and c["variant"] == "fastwam"
    assert c["chunk_step_period_s"] == pytest.approx(1 / 30) and c["proprio_dim"] == c["action_dim"] == 14
    # the robot it was trained for, as a robot file: loads
    doc = yaml.safe_load((Path(__file__).parents[2] / "config/robots/towel_fold_bimanual.yaml").read_text())
    pd = bf.perception_dict()
    doc["cameras"] = [{"name": cam["name"], "topic": cam["topic"].lstrip("/"), "transport": cam["transport"]}
                      for cam in pd["cameras"]]
    doc["tiling"] = {"layout": "robotwin", "top_hw": pd["top_hw"], "bottom_tile_hw": pd["bottom_tile_hw"]}
    pol = FastWAMPolicy.from_pretrained(policy_dir, robot=doc)
    assert pol.robot_contract["joint_names"] == bf.JOINTS
    # the demo robot (other joints, frame size): refused, every differing field named
    with pytest.raises(ContractError) as ei:
        FastWAMPolicy.from_pretrained(policy_dir, robot="demo_aloha")
    assert {d.field for d in ei.value.differences} == {"joint_names", "frame_hw"}


def test_prefilled_latent_cache_matches_one_by_one_encoding_and_skips_tiling(tmp_path, bag):
    """prefill_latent_cache encodes in batches what encode_video would encode one sample at a time; afterwards the
    dataset hands out the cached latents instead of tiling frames, and training runs on them."""
    spec = RosbagSpec(cameras=dict(bf.CAMERAS), joint_names=list(bf.JOINTS))
    eps = [read_rosbag_episode(bag, spec)]
    tr = Trainer(make_cfg(tmp_path / "p", bag, max_steps=2, save_every=100, val_fraction=0.0), episodes=eps)
    n = len(tr.dataset)
    assert tr.prefill_latent_cache(batch_size=4, part=(1, 2)) == n // 2  # every 2nd missing sample from the 2nd
    assert tr.dataset.latent_source is None  # not complete yet: items still carry frames
    assert tr.prefill_latent_cache(batch_size=4) == n - n // 2
    assert tr.dataset.latent_source is not None
    item = tr.dataset[7]
    assert "video" not in item
    with torch.no_grad():
        ref = tr.processor.encode_video(_video_of(tr, 7)).float()[0]
    torch.testing.assert_close(item["latent"], ref, rtol=1e-4, atol=1e-4)
    hist = tr.train()
    assert len(hist) == 2 and all(np.isfinite(h["loss"]) for h in hist)


def _video_of(tr, index):
    """The sample's frames as the dataset tiles them (latent source off)."""
    src, tr.dataset.latent_source = tr.dataset.latent_source, None
    try:
        return tr.dataset[index]["video"][None]
    finally:
        tr.dataset.latent_source = src


@pytest.mark.parametrize("fps", [30.0, 25.0])
def test_the_contract_writes_the_step_period_as_the_robot_file_spells_it(fps):
    """Trained from a robot file whose chunk_step_period_s agrees with 1 / the data's fps, the contract carries
    the robot file's value (0.0333333333); another fps keeps 1 / fps; without a robot file, 1 / fps."""
    from types import SimpleNamespace

    from fastwam_ros.robot import load_robot
    from fastwam_ros.training.trainer import Trainer

    robot = load_robot("demo_aloha")
    fake = SimpleNamespace(perception_config=robot.perception_config(),
                           dataset=SimpleNamespace(episodes=[SimpleNamespace(fps=fps)]),
                           model_config=SimpleNamespace(proprio_dim=14, action_dim=14, variant="fastwam"),
                           cfg=SimpleNamespace(data=SimpleNamespace(perception="demo_aloha")))
    c = Trainer.robot_contract(fake)
    assert c["robot"] == "demo_aloha"
    want = float(robot.chunk_step_period_s) if fps == 30.0 else 1.0 / fps
    assert c["chunk_step_period_s"] == want
    assert (c["chunk_step_period_s"] == 1.0 / fps) == (fps != 30.0)  # 0.0333333333 != 1/30 in float64
    fake.cfg.data.perception = robot.perception_config().to_dict()
    assert Trainer.robot_contract(fake)["chunk_step_period_s"] == 1.0 / fps
