"""The ROS-free closed-loop demo (`python -m fastwam_ros.demo`) with the bundled checkpoint, headless, in the
kinematic sim (always available) and, where it works here, in MuJoCo."""

from __future__ import annotations

import json

import imageio.v2 as iio
import numpy as np
import pytest

from fastwam_ros.demo import main, run_demo
from fastwam_ros.sim import HOME_POSITIONS, JOINT_NAMES, joint_limits

SECONDS = 4.0


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    summary = run_demo(seconds=SECONDS, out_dir=out, sim_mode="kinematic", policy="checkpoint", latency=0.15)
    return out, summary


def test_commands_stay_within_the_robot_limits(demo_run):
    out, summary = demo_run
    trace = np.load(out / "trace.npz")
    names = [str(n) for n in trace["joint_names"]]
    assert sorted(names) == sorted(JOINT_NAMES)
    lim = joint_limits()
    lower = np.array([lim[n].lower for n in names])
    upper = np.array([lim[n].upper for n in names])
    vmax = np.array([lim[n].velocity for n in names])
    cmd = trace["command"]
    assert cmd.shape == (int(SECONDS * 60), 14) and np.isfinite(cmd).all()
    assert np.all(cmd >= lower - 1e-9) and np.all(cmd <= upper + 1e-9)
    vel = np.abs(np.diff(cmd, axis=0)) * 60.0
    assert np.all(vel <= vmax * 1.01 + 1e-6)
    assert summary["commands_within_limits"] is True
    assert summary["sim_command_clamps"] == 0
    # the policy actually drives the arms away from the home pose
    home = HOME_POSITIONS[[JOINT_NAMES.index(n) for n in names]]
    assert np.abs(cmd - home).max() > 0.05


def test_chunks_arrive_at_the_expected_rate(demo_run):
    out, summary = demo_run
    # replan every 0.5 sim s, latency 0.15 s: inferences at t = 0, 0.5, ..., 3.5 -> 8 chunks, all accepted
    assert summary["chunks_produced"] == 8
    assert summary["chunks_accepted"] == 8 and summary["chunks_rejected"] == {}
    assert summary["chunks_with_rtc_prefix"] == 7  # every chunk after the first is guided by the committed prefix
    assert summary["chunk_rate_hz"] == pytest.approx(2.0)
    assert summary["expected_chunk_rate_hz"] == pytest.approx(2.0)
    arrivals = np.load(out / "trace.npz")["chunk_arrival_s"]
    np.testing.assert_allclose(np.diff(arrivals), 0.5, atol=1e-9)
    assert arrivals[0] == pytest.approx(9 / 60)  # ceil(0.15 s / control period) = 9 ticks after t = 0
    assert summary["latency"]["sim_latency_s_mean"] == pytest.approx(9 / 60)
    assert summary["latency"]["wall_inference_s_mean"] > 0


def test_video_plot_and_frame_are_written(demo_run):
    out, summary = demo_run
    video = summary["video"]
    path = out / ("demo.mp4" if video["format"] == "mp4" else "demo.gif")
    assert path.is_file() and path.stat().st_size > 1000
    reader = iio.get_reader(path)
    frames = [f for f in reader]  # not list(reader): the ffmpeg reader's len() may be inf
    reader.close()
    assert len(frames) == video["frames"] == int(SECONDS * 15)
    assert frames[0].shape[:2] == (160, 544)
    assert np.std(frames[len(frames) // 2]) > 5
    plot = iio.imread(out / "joints.png")
    assert plot.shape[0] > 800 and plot.shape[1] > 800
    assert iio.imread(out / "frame.png").shape[:2] == (160, 544)
    assert json.loads((out / "summary.json").read_text())["chunks_produced"] == summary["chunks_produced"]


def test_closed_loop_with_a_perfect_predictor_folds_the_towel(tmp_path):
    """The loop itself (latency compensation, splicing, limits) executes a good plan: with the scripted fold as
    the 'policy' the towel ends up folded."""
    s = run_demo(seconds=6.5, out_dir=tmp_path, sim_mode="kinematic", policy="scripted", latency=0.15, video=False)
    assert s["fold_fraction_final"] > 0.85
    assert s["commands_within_limits"] and s["chunks_rejected"] == {}


def test_cli_runs_in_mujoco_when_available(tmp_path, capsys):
    from fastwam_ros.sim import mujoco_backend as mb

    ok, why = mb.mujoco_available()
    if not ok:
        pytest.skip(why)
    if mb.probe_render_backend() is None:
        pytest.skip("no offscreen GL backend for MuJoCo here")
    assert main(["--seconds", "1.5", "--sim-mode", "mujoco", "--out", str(tmp_path), "--latency", "0.1"]) == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["sim_mode"] == "mujoco" and s["render_backend"].startswith("mujoco-")
    assert s["commands_within_limits"] and s["chunks_produced"] == 3
    assert "chunks in 1.5 sim s" in capsys.readouterr().out


def test_demo_chunks_pass_through_the_shipped_runtimes(tmp_path, monkeypatch):
    """Spies on the real runtime methods (they still run): every chunk the demo executes was published by
    PolicyRuntime, handed to ControllerRuntime unchanged, computed by the PolicyWorker thread from an observation
    of the ObservationPipeline (each camera set tiled exactly once), and later jobs carry the controller's RTC
    prefix."""
    from fastwam_ros.perception import pipeline as pipeline_mod
    from fastwam_ros.runtime.controller_runtime import ControllerRuntime
    from fastwam_ros.runtime.policy_runtime import PolicyRuntime
    from fastwam_ros.runtime.worker import PolicyWorker

    published, received, jobs, worker_threads, tiled, observations = [], [], [], [], [], []

    def spy(cls, name, record):
        real = getattr(cls, name)

        def wrapper(self, *a, **kw):
            out = real(self, *a, **kw)
            record(self, a, kw, out)
            return out

        monkeypatch.setattr(cls, name, wrapper)

    spy(PolicyRuntime, "collect", lambda s, a, kw, out: published.extend(
        (o.chunk.chunk_id, o.chunk.positions_array()) for o in out))
    spy(ControllerRuntime, "on_chunk", lambda s, a, kw, out: received.append(
        (kw["chunk_id"], np.asarray(kw["positions"]).reshape(kw["num_steps"], -1), out)))
    spy(PolicyWorker, "submit", lambda s, a, kw, out: jobs.append(a[0]))
    spy(PolicyWorker, "_infer", lambda s, a, kw, out: worker_threads.append(
        __import__("threading").current_thread().name))
    spy(pipeline_mod.ObservationPipeline, "poll", lambda s, a, kw, out: out is not None and observations.append(out))
    real_tile = pipeline_mod._tile_planar  # the pipeline's one tiling step (camera set → planar uint8 frame)
    monkeypatch.setattr(pipeline_mod, "_tile_planar", lambda *a, **kw: tiled.append(1) or real_tile(*a, **kw))

    s = run_demo(seconds=2.0, out_dir=tmp_path, sim_mode="kinematic", policy="scripted", latency=0.15, video=False)
    n = s["chunks_produced"]
    assert n == 4 and [c for c, _ in published] == list(range(n))
    assert [c for c, _, _ in received] == list(range(n)) and all(err is None for _, _, err in received)
    for (_, sent), (_, got, _) in zip(published, received):
        np.testing.assert_array_equal(sent, got)
    assert len(jobs) == n and worker_threads == ["fastwam-policy-worker"] * n
    assert len(tiled) == len(observations) > n  # each synchronised camera set is tiled exactly once
    assert all(any(j.frame is o.frame for o in observations) for j in jobs)  # the pipeline's frames are submitted
    assert jobs[0].prefix is None and all(j.prefix is not None for j in jobs[1:])
    assert s["controller_runtime"]["last_chunk_id"] == n - 1
    assert s["robot"] == "demo_aloha"


def test_summary_and_console_report_the_limiter_clamps(tmp_path, monkeypatch, capsys):
    """summary.json's clamp counts are the controller's own counters; per second and per tick follow from the
    per-tick log in trace.npz; the console line reports them."""
    from fastwam_ros.control.limits import CLAMP_KINDS
    from fastwam_ros.runtime.controller_runtime import ControllerRuntime

    final = {}
    real_tick = ControllerRuntime.tick

    def tick(self, now_s):
        out = real_tick(self, now_s)
        final.update({k: int(v.sum()) for k, v in self.core.metrics.clamps.items()})
        return out

    monkeypatch.setattr(ControllerRuntime, "tick", tick)
    seconds = 2.0
    assert main(["--seconds", str(seconds), "--sim-mode", "kinematic", "--policy", "scripted", "--no-video",
                 "--out", str(tmp_path), "--latency", "0.15"]) == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    trace = np.load(tmp_path / "trace.npz")
    per_tick = trace["clamps_per_tick"]
    assert [str(k) for k in trace["clamp_kinds"]] == list(CLAMP_KINDS)
    assert per_tick.shape == (s["control_ticks"], len(CLAMP_KINDS))
    assert s["controller_clamps"] == final == {k: int(per_tick[:, i].sum()) for i, k in enumerate(CLAMP_KINDS)}
    for k, v in s["controller_clamps"].items():
        assert s["controller_clamps_per_s"][k] == pytest.approx(v / seconds)
    assert s["clamped_ticks"] == int(np.count_nonzero(per_tick.sum(axis=1)))
    assert s["clamped_tick_fraction"] == pytest.approx(s["clamped_ticks"] / s["control_ticks"])
    out = capsys.readouterr().out
    assert f"limiter clamped {100 * s['clamped_tick_fraction']:.1f} % of {s['control_ticks']} ticks" in out


def test_joint_plot_axes_do_not_magnify_noise():
    from fastwam_ros.demo import MIN_AXIS_SPAN, readable_ylim

    flat = 0.3 + 1e-10 * np.random.default_rng(0).standard_normal(100)
    lo, hi = readable_ylim(flat)
    assert hi - lo >= MIN_AXIS_SPAN and lo < 0.3 < hi
    wide = np.linspace(-1.0, 2.0, 50)
    lo, hi = readable_ylim(wide, flat)
    assert lo < -1.0 and hi > 2.0 and hi - lo < 3.5


def test_the_loop_runs_a_checkpoint_as_the_variant_it_was_trained_as(tmp_path):
    """A Joint or IDM policy directory runs with model.variant = its contract's variant (the node is told so by a
    parameter; the demo and fastwam-eval read it from the checkpoint); without a readable contract: fastwam, and
    the contract check at configure reports the file."""
    from fastwam_ros.closed_loop import _checkpoint_variant
    from fastwam_ros.demo import default_checkpoint

    assert _checkpoint_variant(default_checkpoint()) == "fastwam"
    for v in ("joint", "idm"):
        d = tmp_path / v
        d.mkdir()
        contract = json.loads((default_checkpoint() / "robot_contract.json").read_text())
        (d / "robot_contract.json").write_text(json.dumps({**contract, "variant": v}))
        assert _checkpoint_variant(d) == v
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "robot_contract.json").write_text("{not json")
    assert _checkpoint_variant(tmp_path / "bad") == "fastwam"
    assert _checkpoint_variant(tmp_path / "nowhere") == "fastwam"
    assert _checkpoint_variant(None) == "fastwam"


def test_the_loop_rides_through_a_clock_reset(tmp_path):
    """Under use_sim_time a bag loop or a simulator reset sends every node's clock back while the world goes on.
    The policy and controller runtimes re-base (one each) and the scripted fold completes with every command
    inside the limits and no chunk refused. Before, the trigger submitted nothing and the controller repeated its
    last output until the clock was past the old time again: the fold stopped at 0.45."""
    s = run_demo(seconds=7.0, out_dir=tmp_path, sim_mode="kinematic", policy="scripted", latency=0.15, video=False,
                 clock_reset=(3.0, 2.5))
    assert s["controller_runtime"]["clock_resets"] == 1
    assert s["fold_fraction_final"] > 0.85 and s["commands_within_limits"] and s["chunks_rejected"] == {}
    assert s["policy_runtime"]["rejections"].get("chunk:before_reset", 0) <= 1


def test_the_loop_rides_through_a_stalled_controller(tmp_path, monkeypatch):
    """The controller node's executor stalls for 0.5 s mid-fold (nothing handled: no tick, joint state or chunk)
    while the simulated arm runs the last trajectory into its braking tail, as a joint_trajectory_controller does.
    The controller resumes from there: the fold completes and no command step is faster than the velocity limit.
    With the gap not recognised (the limiter taking 0.5 s as one step) the first command after the stall jumped
    6.7x further than the limit allows in one tick."""
    import numpy as np

    from fastwam_ros.control import config as control_config

    def resume_steps(out_dir):
        s = run_demo(seconds=7.0, out_dir=out_dir, sim_mode="kinematic", policy="scripted", latency=0.15,
                     video=False, stall=(4.0, 0.5))
        tr = np.load(out_dir / "trace.npz")
        per_tick = np.abs(np.diff(tr["command"], axis=0)) * s["control_rate_hz"] / np.array(s["max_velocity_limit"])
        return s, per_tick.max()

    s, worst = resume_steps(tmp_path / "fixed")
    assert s["controller_runtime"]["tick_gaps"] == 1
    assert s["fold_fraction_final"] > 0.85 and s["commands_within_limits"] and s["chunks_rejected"] == {}
    assert worst <= 1.0 + 1e-6
    monkeypatch.setattr(control_config.ControllerConfig, "tick_gap_s", property(lambda self: 1e9))
    s_old, worst_old = resume_steps(tmp_path / "old")
    assert s_old["controller_runtime"]["tick_gaps"] == 0 and worst_old > 3.0
