"""fastwam-eval: seeded closed-loop episodes through PolicyRuntime + ControllerRuntime (kinematic sim, headless).

The CI-cheap evaluation is the module fixture: 2 scripted episodes through the CLI, no video."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastwam_ros.demo import default_checkpoint
from fastwam_ros.eval import (
    EpisodeVariation,
    SuccessCriterion,
    episode_start,
    main,
    run_eval,
    wilson_interval,
    worst_index,
)
from fastwam_ros.robot import load_robot
from fastwam_ros.sim import HOME_POSITIONS, JOINT_NAMES, BimanualSim, SimConfig
from fastwam_ros.sim.scripted import make_folder

LATENCY_S = 0.15
CONTROL_HZ = 60.0  # demo_aloha control rate
REPLAN_S = 0.5  # DemoConfig.replan_period_s
EPISODE_S = 6.0  # shorter than the default time limit (CI cost); the scripted fold is done by ~4.5 s


@pytest.fixture(scope="module")
def scripted_eval(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    assert main(["--policy", "scripted", "--episodes", "2", "--seed", "0", "--out", str(out), "--no-video",
                 "--time-limit", str(EPISODE_S)]) == 0
    return out, json.loads((out / "eval.json").read_text())


# -- success criterion (synthetic fold traces) -------------------------------------------------------------------
def test_success_requires_reaching_and_holding_the_threshold_to_the_end():
    c = SuccessCriterion(fold_fraction=0.8, time_limit_s=1.0)
    t = np.arange(10) * 0.1
    held = np.array([0, 0, 0.2, 0.5, 0.79, 0.8, 0.9, 1.0, 1.0, 1.0])
    # first tick with fold >= 0.8 is index 5 (the state after the tick starting at 0.5 s) -> 0.6 s
    assert c.completion_time_s(t, held) == pytest.approx(0.6)
    assert c.success(t, held)
    undone = np.array([0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.5, 0.5])  # folded, then dropped again
    assert c.completion_time_s(t, undone) is None and not c.success(t, undone)
    dip = np.array([0, 0.9, 0.9, 0.7, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9])  # counts from the last time it got there
    assert c.completion_time_s(t, dip) == pytest.approx(0.5)
    assert not c.success(t, np.full(10, 0.79))
    assert c.completion_time_s(t, np.full(10, 0.8)) == pytest.approx(0.1)


def test_wilson_interval_and_worst_episode():
    lo, hi = wilson_interval(20, 20)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(0.8389, abs=1e-3)  # 20/(20+z^2), z = 1.96
    lo, hi = wilson_interval(10, 20)
    assert lo == pytest.approx(0.2993, abs=1e-3) and hi == pytest.approx(0.7007, abs=1e-3)
    eps = [{"success": True, "completion_time_s": 3.0, "fold_fraction_final": 1.0},
           {"success": False, "completion_time_s": None, "fold_fraction_final": 0.4},
           {"success": False, "completion_time_s": None, "fold_fraction_final": 0.1},
           {"success": True, "completion_time_s": 5.0, "fold_fraction_final": 1.0}]
    assert worst_index(eps) == 2
    assert worst_index([eps[0], eps[3]]) == 1  # all succeeded: the slowest


# -- seeding -----------------------------------------------------------------------------------------------------
def test_seeds_vary_the_towel_pose_and_the_start_state():
    cfg = SimConfig.from_dict(load_robot("demo_aloha").sim)
    poses, starts = [], []
    for seed in range(4):
        sim = BimanualSim(cfg, mode="kinematic", seed=seed)
        p = sim.towel.params
        poses.append((*p.centre_xy_m, p.yaw_rad))
        starts.append(episode_start(seed, HOME_POSITIONS, JOINT_NAMES))
        x_rng, y_rng, yaw_rng = cfg.towel_centre_x_range_m, cfg.towel_centre_y_range_m, cfg.towel_yaw_range_rad
        assert x_rng[0] <= p.centre_xy_m[0] <= x_rng[1] and y_rng[0] <= p.centre_xy_m[1] <= y_rng[1]
        assert yaw_rng[0] <= p.yaw_rad <= yaw_rng[1]
    assert len({tuple(np.round(p, 9)) for p in poses}) == 4
    assert all(not np.allclose(starts[0], s) for s in starts[1:])
    v = EpisodeVariation()
    grip = np.array(["gripper" in n for n in JOINT_NAMES])
    for s in starts:
        off = np.abs(s - HOME_POSITIONS)
        assert np.all(off[~grip] <= v.arm_jitter_rad) and np.all(off[grip] <= v.gripper_jitter)
    np.testing.assert_array_equal(episode_start(3, HOME_POSITIONS, JOINT_NAMES), starts[3])


def test_same_seed_same_episode(scripted_eval, tmp_path):
    """Episode seed 1 evaluated on its own gives what it gave as the second of two episodes."""
    _, report = scripted_eval
    again = run_eval("scripted", episodes=1, seed=1, out_dir=tmp_path,
                     criterion=SuccessCriterion(time_limit_s=EPISODE_S))
    a, b = report["episodes"][1], again["episodes"][0]
    assert a["seed"] == b["seed"] == 1
    for key in ("towel_centre_xy_m", "towel_yaw_rad", "start_positions", "success", "completion_time_s",
                "fold_fraction_final", "clamps", "chunks_produced"):
        assert a[key] == b[key], key
    e0 = report["episodes"][0]
    assert e0["towel_centre_xy_m"] != a["towel_centre_xy_m"] and e0["start_positions"] != a["start_positions"]


# -- metrics on the scripted policy ------------------------------------------------------------------------------
def test_scripted_policy_succeeds_with_the_expected_completion_time(scripted_eval):
    out, report = scripted_eval
    s = report["summary"]
    assert report["sim_mode"] == "kinematic" and report["seeds"] == [0, 1]
    assert s["episodes"] == 2 and s["successes"] == 2 and s["success_rate"] == 1.0
    cfg = SimConfig.from_dict(load_robot("demo_aloha").sim)
    for e in report["episodes"]:
        assert e["success"] and e["fold_fraction_final"] > 0.95
        # the script's own timing: no corner moves before the grasp phase ends; both are down when "at_near"
        # ends, plus the first chunk's latency and the controller's enable ramp
        sim = BimanualSim(cfg, mode="kinematic", seed=e["seed"])
        folder = make_folder(sim.towel, np.random.default_rng(e["seed"] + 100_000),
                             home=np.asarray(e["start_positions"]))  # as ScriptedPolicy builds it
        ends = dict(zip(folder.phase_names, folder.times_s))
        assert ends["grasp"] < e["completion_time_s"] < ends["at_near"] + LATENCY_S + 0.5
        assert e["chunks_rejected"] == {} and e["sim_command_clamps"] == 0
        n_chunks = e["chunks_produced"]
        assert n_chunks == int(EPISODE_S / REPLAN_S) == len(e["replan_latency_s"])
        assert e["clamps_per_s"] == pytest.approx(sum(e["clamps"].values()) / EPISODE_S)
        # the script is feasible with a margin: the limiter has nothing to clamp (seams, enable ramp included)
        assert e["clamped_tick_fraction"] <= 0.02, e["clamps"]
    assert s["completion_time_s_mean"] == pytest.approx(np.mean([e["completion_time_s"] for e in report["episodes"]]))
    # chunk age: a chunk arrives ceil(0.15 s * 60 Hz) = 9 ticks after its observation and is replaced 30 ticks
    # later, so ages run from 9/60 s to (9 + 29)/60 s
    assert s["chunk_age_s_max"] == pytest.approx(38 / CONTROL_HZ)
    assert 9 / CONTROL_HZ <= s["chunk_age_s_p50"] <= s["chunk_age_s_p95"] <= 38 / CONTROL_HZ
    assert 0 < s["replan_latency_s_p50"] <= s["replan_latency_s_p95"]
    assert (out / "eval.png").stat().st_size > 10_000 and report["worst_episode"]["run"] is None


def test_eval_runs_a_policy_directory(tmp_path, capsys):
    """Any policy directory (here the bundled one, by path), with the worst episode re-run on video."""
    assert main(["--policy", str(default_checkpoint()), "--episodes", "1", "--seed", "5", "--time-limit", "1.5",
                 "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["policy"] == str(default_checkpoint()) and report["seeds"] == [5]
    e = report["episodes"][0]
    assert e["chunks_produced"] == 3 and e["chunks_accepted"] == 3
    assert not e["success"]  # nothing folds a towel in 1.5 s
    video = report["worst_episode"]["run"]["video"]
    assert video["frames"] == len(range(0, int(1.5 * CONTROL_HZ), 4))  # every 4th tick: 15 fps at 60 Hz
    assert "success rate" in capsys.readouterr().out


def test_missing_policy_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="policy directory"):
        run_eval(str(tmp_path / "nope"), episodes=1, out_dir=tmp_path)


def test_umbrella_cli_runs_the_same_evaluation(tmp_path):
    from fastwam_ros.cli import main as fastwam

    assert fastwam(["sim-eval", "--policy", "scripted", "--episodes", "1", "--seed", "2", "--time-limit", "0.5",
                    "--no-video", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["policy"] == "scripted" and report["seeds"] == [2] and report["success_criterion"]["time_limit_s"] == 0.5


def test_bundled_checkpoint_two_episode_eval(tmp_path):
    """CI's closed-loop check of the bundled checkpoint: `fastwam-eval --episodes 2 --seed 0` (full 8 s episodes,
    kinematic sim). The limiter must clamp on few ticks (README, seeds 0..19: 4.3 %, seeds 0 and 1: 5.2 and 2.9 %;
    chunks sampled from N(0, I) noise instead of its mean: most ticks) and the policy must fold the towel in at
    least one of the two (here both fold; one of two leaves room for another CPU's rounding in a closed loop)."""
    assert main(["--episodes", "2", "--seed", "0", "--no-video", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    s = report["summary"]
    assert report["policy"] == str(default_checkpoint()) and report["seeds"] == [0, 1]
    assert s["clamped_tick_fraction_mean"] <= 0.10, [e["clamps"] for e in report["episodes"]]
    assert s["successes"] >= 1, [e["fold_fraction_final"] for e in report["episodes"]]
    for e in report["episodes"]:
        assert e["chunks_rejected"] == {} and e["sim_command_clamps"] == 0
