"""FastWAMPolicy runs the fast engine for the Fast-WAM variants and gives the plain infer_action loop's chunk."""

from __future__ import annotations

import numpy as np
import pytest

from fastwam_ros.model.config import load_config
from fastwam_ros.model.inference.policy import FastWAMPolicy


@pytest.fixture(scope="module")
def cfg():
    c = load_config("tiny")
    c.flow.num_inference_steps = 3
    return c


def _obs(cfg, seed):
    g = np.random.default_rng(seed)
    frame = g.uniform(-1, 1, (3, cfg.policy.image_height, cfg.policy.image_width)).astype(np.float32)
    return frame, g.normal(size=cfg.proprio_dim)


def test_fast_engine_is_used_and_matches_the_plain_loop(cfg):
    fast = FastWAMPolicy.from_config(cfg, seed=0)
    plain = FastWAMPolicy.from_config(cfg, seed=0, fast_path=False)
    assert fast.uses_fast_path and not plain.uses_fast_path
    for i, instr in enumerate(["fold the towel", "fold the towel", "open the gripper", "fold the towel"]):
        frame, state = _obs(cfg, i)
        a = fast.predict(frame, instr, state, seed=i)
        b = plain.predict(frame, instr, state, seed=i)
        np.testing.assert_allclose(a.actions_normalized, b.actions_normalized, rtol=0, atol=1e-5)
        assert a.timing_s["prefill"] > 0 and a.timing_s["action_steps"] > 0
    # context K/V: computed once per distinct instruction, reloaded (not recomputed) when switching back
    stats = fast._engine.stats
    assert stats["text_kv_computed"] == 0  # the policy hands over its own per-instruction TextKV
    assert stats["calls"] == 4


def test_instruction_change_changes_the_chunk_like_the_plain_loop(cfg):
    fast = FastWAMPolicy.from_config(cfg, seed=0)
    plain = FastWAMPolicy.from_config(cfg, seed=0, fast_path=False)
    frame, state = _obs(cfg, 9)
    fast.set_instruction("fold the towel")
    a1 = fast.predict(frame, None, state).actions_normalized
    fast.set_instruction("wave both arms")
    a2 = fast.predict(frame, None, state).actions_normalized
    assert not np.allclose(a1, a2)
    np.testing.assert_allclose(a2, plain.predict(frame, "wave both arms", state).actions_normalized, atol=1e-5)


def test_joint_variant_uses_the_plain_loop(cfg):
    c = load_config("tiny")
    c.variant = "joint"
    c.flow.num_inference_steps = 2
    p = FastWAMPolicy.from_config(c, seed=0)
    assert not p.uses_fast_path
    with pytest.raises(ValueError, match="fast_path"):
        FastWAMPolicy.from_config(c, seed=0, fast_path=True)


def test_tiny_preset_keeps_the_task_text_after_the_prompt_template(cfg):
    """text_len must leave room for the task after the template, or every instruction embeds the same."""
    p = FastWAMPolicy.from_config(cfg, seed=0)
    e1, e2 = p.text_cache.get("fold the towel"), p.text_cache.get("wave both arms")
    assert (e1 - e2).abs().max() > 1e-3
