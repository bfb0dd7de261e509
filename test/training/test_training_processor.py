"""One processor for training and deployment: the trainer and the policy loaded from its checkpoint build the same
model inputs for the same sample, and ``predict_observation`` (raw camera images) matches the perception pipeline.

Everything here goes through real code: a real (synthetic) MCAP recording, the Trainer, a checkpoint written by
the trainer, ``FastWAMPolicy.from_pretrained`` on that checkpoint, and the node's ``ObservationPipeline``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import training_bagfactory as bf
from torch.utils.data import default_collate

from fastwam_ros.model.inference.policy import FastWAMPolicy
from fastwam_ros.perception.pipeline import ObservationPipeline
from fastwam_ros.training.config import config_from_dict
from fastwam_ros.training.trainer import Trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("proc")
    bag = bf.write_bag(root / "ep0")
    cfg = config_from_dict({
        "output_dir": str(root / "run"),
        "model": {"config": "tiny", "vae": "random", "text_encoder": "random"},
        "data": {"format": "rosbag", "paths": [str(bag)], "perception": bf.perception_dict(), "latent_cache": "none"},
        "train": {"batch_size": 2, "max_steps": 1, "save_every": 1, "progress": False},
    })
    trainer = Trainer(cfg)
    ckpt = trainer.save_checkpoint()
    policy = FastWAMPolicy.from_pretrained(ckpt / "policy")
    return trainer, policy


@pytest.mark.parametrize("index", [0, 17])
def test_trainer_and_policy_build_identical_model_inputs(trained, index):
    trainer, policy = trained
    assert type(trainer.processor) is type(policy.processor)
    batch = default_collate([trainer.dataset[index]])
    t_in = trainer.model_inputs(batch)
    p_in = policy.processor.inference_inputs(batch["video"][0, :, 0], batch["instruction"][0], batch["state"][0])
    # the policy sees the first frame of the training clip: the causal VAE's first latent frame depends on it only
    torch.testing.assert_close(p_in["video_latents"][:, :, 0], t_in["video_latents"][:, :, 0], rtol=0, atol=1e-5)
    torch.testing.assert_close(p_in["proprio"], t_in["proprio"], rtol=0, atol=0)
    torch.testing.assert_close(p_in["text_embeds"], t_in["text_embeds"], rtol=0, atol=0)
    torch.testing.assert_close(policy.processor.normalize_actions(batch["actions"]), t_in["actions"], rtol=0, atol=0)
    # and the inputs are not trivially equal: another sample's state and frame differ
    other = default_collate([trainer.dataset[index + 5]])
    assert not torch.equal(trainer.model_inputs(other)["proprio"], t_in["proprio"])


def test_one_instruction_cache_serves_embedding_and_text_kv(trained):
    _, policy = trained
    ctx = policy.processor.instruction(bf.INSTRUCTION)
    entry, hit = policy.text_cache.lookup(bf.INSTRUCTION)
    assert hit and entry.device_embedding is ctx.embeds and entry.text_kv is ctx.text_kv
    policy.predict(np.zeros((3, *policy.image_size), np.float32), bf.INSTRUCTION, np.zeros(policy.proprio_dim))
    assert policy.processor.instruction(bf.INSTRUCTION).text_kv is entry.text_kv  # reused, not recomputed
    assert policy._engine is None or policy._engine.stats["text_kv_computed"] == 0


def _raw_observation(trainer, tick: int):
    ep = trainer.dataset.episodes[0]
    images = {cam: ep.cameras[cam].frame(tick) for cam in trainer.dataset.camera_names}
    return images, ep.state[tick].astype(np.float64)


def test_predict_observation_matches_the_perception_pipeline(trained):
    trainer, policy = trained
    pc = policy.perception_config
    assert pc is not None and pc.camera_names == tuple(bf.CAMERAS)  # read from the checkpoint's perception.json
    images, state = _raw_observation(trainer, 7)
    # the node's path: decoded images + a joint state (reverse name order) -> synchronised, tiled observation
    pipe = ObservationPipeline(pc)
    t = 100.0
    for cam, rgb in images.items():
        assert pipe.add_decoded(cam, rgb, t)
    names = list(pc.joint_names)[::-1]
    assert pipe.add_joint_state(t, names, state[::-1])
    obs = pipe.poll(t + 0.01)
    assert obs is not None
    np.testing.assert_array_equal(obs.frame, trainer.dataset.tiled_frame(trainer.dataset.episodes[0], 7))
    ref = policy.predict(obs.frame, bf.INSTRUCTION, obs.proprio, seed=3)

    out = policy.predict_observation(images, dict(zip(names, state[::-1])), bf.INSTRUCTION, seed=3)
    np.testing.assert_array_equal(out.actions, ref.actions)
    assert out.joint_names == tuple(bf.JOINTS) and out.actions.shape == (32, len(bf.JOINTS))
    vec = policy.predict_observation(images, state, bf.INSTRUCTION, seed=3)  # a vector in robot joint order
    np.testing.assert_array_equal(vec.actions, ref.actions)
    moved = policy.predict_observation(images, state + 0.5, bf.INSTRUCTION, seed=3)
    assert not np.array_equal(moved.actions, ref.actions)


def test_predict_observation_rejects_bad_input(trained):
    trainer, policy = trained
    images, state = _raw_observation(trainer, 3)
    with pytest.raises(KeyError, match="left_wrist"):
        policy.predict_observation({k: v for k, v in images.items() if k != "left_wrist"}, state, bf.INSTRUCTION)
    with pytest.raises(ValueError, match="uint8"):
        policy.predict_observation({**images, "head": images["head"].astype(np.float32)}, state, bf.INSTRUCTION)
    with pytest.raises(ValueError, match="missing_joint|right_gripper"):
        policy.predict_observation(images, dict(zip(bf.JOINTS[:-1], state)), bf.INSTRUCTION)
    bare = FastWAMPolicy.from_config("tiny")
    with pytest.raises(ValueError, match="perception_config"):
        bare.predict_observation(images, state, bf.INSTRUCTION)


def test_predict_observation_with_a_robot_file_on_the_bundled_demo_checkpoint():
    """Loaded with robot= (contract checked), the robot file's cameras / tiling / joint order tile the raw images."""
    from pathlib import Path

    from fastwam_ros.robot import load_robot
    from fastwam_ros.sim import BimanualSim, SimConfig
    from fastwam_ros.sim.robot import JOINT_NAMES
    from fastwam_ros.sim.scripted import INSTRUCTION

    demo = Path(__file__).resolve().parents[2] / "models" / "demo"
    policy = FastWAMPolicy.from_pretrained(demo, robot="demo_aloha")
    spec = load_robot("demo_aloha")
    assert policy.robot is not None and tuple(policy.robot.joints) == tuple(JOINT_NAMES)
    with BimanualSim(SimConfig(), mode="kinematic") as sim:
        sim.reset(seed=4)
        images = {cam: sim.render(cam) for cam in sim.cameras}
        q = sim.joint_positions().astype(np.float64)
    pipe = ObservationPipeline(spec.perception_config())
    for cam, rgb in images.items():
        pipe.add_decoded(cam, rgb, 5.0)
    pipe.add_joint_state(5.0, list(JOINT_NAMES), q)
    obs = pipe.poll(5.0)
    ref = policy.predict(obs.frame, INSTRUCTION, obs.proprio, seed=1)
    out = policy.predict_observation(images, dict(zip(JOINT_NAMES, q)), INSTRUCTION, seed=1)
    np.testing.assert_array_equal(out.actions, ref.actions)
    assert out.joint_names == tuple(JOINT_NAMES)
