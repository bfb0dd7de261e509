"""The presets' execution schedule: the official evaluations run the first 24 (RoboTwin) / 10 (LIBERO) steps of
each 32-step chunk open loop and only then take a new chunk; `replace` mode with those counts does the same."""

from __future__ import annotations

import numpy as np
import pytest

from fastwam_ros.control import Chunk, ChunkController, ControllerConfig
from fastwam_ros.robot import load_robot


def preset(name: str) -> tuple[ControllerConfig, float]:
    """(ControllerConfig, chunk step period s) of a preset robot file, through the one loader."""
    spec = load_robot(name)
    return spec.controller_config().with_overrides(trajectory_horizon_s=0.0), spec.chunk_step_period_s


@pytest.mark.parametrize(("name", "n_exec"), [("robotwin_aloha_agilex", 24), ("libero_franka", 10)])
def test_preset_executes_n_steps_open_loop_then_waits(name, n_exec):
    cfg, dt = preset(name)
    assert cfg.splice_mode == "replace" and cfg.replace_execute_steps == n_exec
    ctl = ChunkController(cfg)
    arm = next(g for g in cfg.groups if g.kind == "arm")
    names = cfg.joint_names
    zero = np.zeros(len(names))
    ctl.update_joint_state(0.0, names, zero)
    ctl.enable(0.0)
    ctl.tick(0.0)
    # arm joints ramp by 0.01 per step (0.3 rad/s at 30 Hz, 0.2 at 20 Hz: inside every limit); grippers fixed
    pos = np.zeros((32, len(names)))
    cols = [names.index(j) for j in arm.joints]
    pos[:, cols] = 0.01 * np.arange(32)[:, None]
    t = 0.0
    assert ctl.submit_chunk(Chunk(stamp_s=0.0, step_period_s=dt, joint_names=names, positions=pos), t).accepted
    last, p = None, zero
    period = cfg.period_s
    while t < 0.5 + (n_exec + 8) * dt:
        t += period
        out = ctl.tick(t)
        p = np.concatenate([out.groups[g.name].positions for g in cfg.groups])
        ctl.update_joint_state(t, names, p)
        if last is None and 0.1 <= t < (n_exec - 2) * dt:  # executing (past the hand-off): a new chunk is refused
            r = ctl.submit_chunk(Chunk(stamp_s=t, step_period_s=dt, joint_names=names, positions=pos), t)
            assert not r.accepted and r.reason == "busy"
            last = r
    # it stopped at step n_exec - 1 of the chunk and holds there, never reaching step n_exec (0.01 further); the
    # hold from the last step's velocity may coast up to half a step when one tick is one step (LIBERO, 20 Hz)
    np.testing.assert_allclose(p[cols], 0.01 * (n_exec - 1), atol=0.006)
    # after the N steps a new chunk is taken
    assert ctl.submit_chunk(Chunk(stamp_s=t, step_period_s=dt, joint_names=names, positions=pos), t).accepted
