"""Output plausibility (issue 14 items 6, 9): chunk length = horizon, bounded, first step near the state,
normalisation statistics sane at load, a non-finite warm-up fails configure; the instruction length cap."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from fastwam_ros.runtime.plausibility import OutputLimits, check_actions, check_normalizer, model_horizon
from fastwam_ros.runtime.policy_runtime import PolicyRuntime, PolicyRuntimeConfig
from fastwam_ros.runtime.worker import InferenceJob, PolicyWorker, WorkerError

REPO = Path(__file__).resolve().parents[2]
H, A = 8, 3


def _norm(scale, offset=None, clamp=5.0):
    scale = np.asarray(scale, dtype=np.float64)
    offset = np.zeros_like(scale) if offset is None else np.asarray(offset, dtype=np.float64)
    return SimpleNamespace(normalizer=SimpleNamespace(action=SimpleNamespace(scale=scale, offset=offset,
                                                                              clamp=clamp)))


def test_check_actions_reasons():
    lim = OutputLimits(horizon=H, max_abs=10.0, max_first_step_distance=0.5)
    q = np.zeros(A)
    ok = np.zeros((H, A)) + 0.1
    assert check_actions(ok, lim, q) is None
    assert check_actions(np.zeros((5000, A)), lim, q)[0] == "horizon"
    assert check_actions(np.zeros(H), lim, q)[0] == "shape"
    assert check_actions(np.full((H, A), 1e300), lim, q)[0] == "magnitude"
    bad = ok.copy()
    bad[3, 1] = np.nan
    assert check_actions(bad, lim, q)[0] == "non_finite"
    jump = ok.copy()
    jump[0, 2] = 0.9
    r = check_actions(jump, lim, q)
    assert r[0] == "first_step_jump" and "dim 2" in r[1]
    assert check_actions(jump, lim, None) is None  # no state to compare against: not checked
    assert check_actions(jump, OutputLimits(horizon=H, max_first_step_distance=0.0), q) is None  # 0 = off


def test_normaliser_sanity():
    assert check_normalizer(_norm([1.0, 5.0, 1e8])) == []  # 1e8 = a constant joint (std 0): harmless
    assert check_normalizer(SimpleNamespace()) == []  # nothing to check
    p = check_normalizer(_norm([1.0, 1e-30, 2.0]))
    assert p and "dims [1]" in p[0] and "absurd" in p[0]
    assert "NaN or inf" in check_normalizer(_norm([1.0, np.nan, 2.0]))[0]
    assert "> 0" in check_normalizer(_norm([1.0, -2.0, 2.0]))[0]
    assert check_normalizer(_norm([1.0], offset=[1e6])) != []  # the offset pushes the range out too


def test_bundled_demo_stats_pass_and_a_tiny_scale_is_refused():
    from fastwam_ros.model.processing.normalizer import LinearNormalizer

    stats = json.loads((REPO / "models" / "demo" / "stats.json").read_text())["action"]
    good = LinearNormalizer(stats["scale"], stats["offset"], stats.get("clamp", 5.0))
    assert check_normalizer(SimpleNamespace(normalizer=SimpleNamespace(action=good))) == []
    scale = list(stats["scale"])
    scale[0] = 1e-30
    bad = LinearNormalizer(scale, stats["offset"], stats.get("clamp", 5.0))
    assert check_normalizer(SimpleNamespace(normalizer=SimpleNamespace(action=bad)))


class BlankPolicy:
    """Describes its inputs like FastWAMPolicy (image_size, proprio_dim, horizon) so the worker warms it up."""

    image_size = (4, 6)
    proprio_dim = A
    horizon = H

    def __init__(self, value=0.0, scale=1.0):
        self.value = value
        self.normalizer = SimpleNamespace(action=SimpleNamespace(scale=np.full(A, scale), offset=np.zeros(A),
                                                                 clamp=5.0))
        self.calls = []

    def predict(self, frame, instruction, proprio, **_kw):  # seed, prefix, rtc_mode, ... (unused)
        self.calls.append((frame.shape, np.asarray(proprio).shape))
        return np.full((H, A), self.value) + 0 * np.asarray(proprio)[None, :]


def _worker(policy):
    from fastwam_ros.runtime.policy_setup import make_worker

    return make_worker({"instruction": "fold", "model.warmup": True, "output.max_abs_action": 1e3},
                       lambda: policy)


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e12])
def test_implausible_warmup_output_fails_start(value):
    w = _worker(BlankPolicy(value))
    with pytest.raises(WorkerError, match="warm-up"):
        w.start(timeout_s=5.0)


def test_absurd_stats_fail_start_and_sane_ones_warm_up():
    with pytest.raises(WorkerError, match="absurd"):
        _worker(BlankPolicy(scale=1e-30)).start(timeout_s=5.0)
    pol = BlankPolicy(0.1)
    w = _worker(pol)
    w.start(timeout_s=5.0)
    try:
        assert pol.calls == [((3, 4, 6), (A,))] and "warmup" in w.load_timing_s
        assert model_horizon(w.policy) == H
    finally:
        w.stop()


def _wait(pred, timeout=5.0):
    t0 = time.monotonic()
    while not pred():
        assert time.monotonic() - t0 < timeout
        time.sleep(0.002)


class Scripted:
    horizon = H

    def __init__(self):
        self.out = []

    def predict(self, frame, instruction, proprio, **_kw):  # seed, prefix, rtc_mode, ... (unused)
        return self.out.pop(0)


@pytest.fixture
def rt():
    pol = Scripted()
    w = PolicyWorker(lambda: pol)
    w.start(timeout_s=5.0)
    r = PolicyRuntime(PolicyRuntimeConfig(joint_names=["a", "b", "c"], arms={}, step_period_s=0.1,
                                          max_first_step_distance=0.5, max_instruction_chars=40),
                      SimpleNamespace(), w, instruction="fold", enabled=True)
    yield r, pol, w
    w.stop()


def _submit(w, proprio, epoch=0):
    w.submit(InferenceJob(np.zeros((3, 2, 2), np.float32), np.asarray(proprio, np.float32), 1.0, "fold",
                          meta={"epoch": epoch}))


def test_runtime_refuses_implausible_chunks_and_counts_them(rt):
    r, pol, w = rt
    assert r.limits.horizon == H  # taken from the loaded model
    q = np.array([0.1, -0.2, 0.3])
    pol.out = [np.zeros((5000, A)), np.full((H, A), 1e300), np.tile(q + [0.0, 0.0, 2.0], (H, 1)),
               np.tile(q + 0.05, (H, 1))]
    for k in range(4):
        _submit(w, q)
        _wait(lambda k=k: w.completed == k + 1)
    outs = r.collect(2.0)
    assert len(outs) == 1 and outs[0].chunk.num_steps == H
    assert r.rejections.as_dict() == {"chunk:horizon": 1, "chunk:magnitude": 1, "chunk:first_step_jump": 1}
    inf = {d.name: d for d in r.diagnostics(2.0, active=True)}["inference"]
    assert inf.level == 1 and "implausible" in inf.message
    assert dict(inf.values)["chunks refused as implausible"] == "3"


def test_instruction_length_cap_and_truncated_diagnostic(rt):
    r, _, _ = rt
    long = "fold the towel " * 1000
    err = r.on_instruction(long)
    assert err and "max_instruction_chars 40" in err and len(err) < 200
    assert r.instruction == "fold" and r.rejections.as_dict() == {"instruction:too_long": 1}
    assert r.on_instruction("x" * 40) is None
    r.instruction = "y" * 5000  # e.g. set before the cap existed: the diagnostic still stays small
    inf = {d.name: d for d in r.diagnostics(2.0, active=True)}["inference"]
    text = dict(inf.values)["instruction"]
    assert len(text) < 200 and "5000 characters" in text


def test_instruction_parameter_is_capped_by_schema():
    from fastwam_ros.runtime.params import ParameterError, resolve, validate
    from fastwam_ros.runtime.schemas import POLICY_SCHEMA

    with pytest.raises(ParameterError, match="max_instruction_chars 512"):
        resolve(POLICY_SCHEMA, {"instruction": "z" * 600})
    p = resolve(POLICY_SCHEMA, {"instruction": "z" * 600, "max_instruction_chars": 1000})
    assert not any("max_instruction_chars" in e for e in validate(POLICY_SCHEMA, p))
