"""Property tests: whatever the chunk stream (including NaN, inf, huge jumps, wrong joint counts, unknown names,
out-of-order stamps, irregular or backwards tick times, e-stops, enables), the output never exceeds a position,
velocity or acceleration limit.

Each example is one random stream, generated from a hypothesis-drawn seed and knobs (drawing arrays through
hypothesis would be slow); the checks run vectorised over the whole stream. The examples add up to
10,000+ streams; ``scripts/stress_controller.py`` runs many more with the same generator.
"""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from fastwam_ros.control.stress import check_stream, random_stream

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
# fraction of the examples drawn (mutation testing runs these tests once per mutant: FASTWAM_PROPERTY_SCALE=0.02)
SCALE = float(os.environ.get("FASTWAM_PROPERTY_SCALE", "1"))


def _n(examples: int) -> int:
    return max(10, int(examples * SCALE))


def _check(seed, mode, adversarial, n_events, with_trajectory=False):
    rec = random_stream(seed, mode=mode, adversarial=adversarial, n_events=n_events,
                        with_trajectory=with_trajectory)
    problems = check_stream(rec)
    assert not problems, f"seed={seed} mode={mode}: {problems[:3]}"
    return rec


@settings(max_examples=_n(3000), deadline=None)
@given(seed=SEEDS, n_events=st.integers(4, 16))
def test_splice_streams_respect_limits(seed, n_events):
    _check(seed, "splice", 0.2, n_events)


@settings(max_examples=_n(2500), deadline=None)
@given(seed=SEEDS, n_events=st.integers(4, 16))
def test_ensemble_streams_respect_limits(seed, n_events):
    _check(seed, "ensemble", 0.2, n_events)


@settings(max_examples=_n(2000), deadline=None)
@given(seed=SEEDS, n_events=st.integers(4, 16))
def test_replace_streams_respect_limits(seed, n_events):
    _check(seed, "replace", 0.2, n_events)


@settings(max_examples=_n(2500), deadline=None)
@given(seed=SEEDS, mode=st.sampled_from(["splice", "ensemble", "replace"]), n_events=st.integers(4, 16))
def test_adversarial_streams_respect_limits(seed, mode, n_events):
    _check(seed, mode, 0.8, n_events)


@settings(max_examples=_n(100), deadline=None)
@given(seed=SEEDS, mode=st.sampled_from(["splice", "ensemble", "replace"]))
def test_trajectory_points_respect_limits(seed, mode):
    rec = _check(seed, mode, 0.3, 12, with_trajectory=True)
    assert rec["trajectory_points"] >= 0


def test_the_checker_catches_violations():
    """The checker itself can fail: corrupt a recorded stream and it must complain."""
    rec = random_stream(123, mode="splice", adversarial=0.0, n_events=40)
    assert not check_stream(rec)
    import numpy as np

    valid = np.isfinite(rec["p"]).all(axis=1)
    i = int(np.flatnonzero(valid)[-1])
    for key, bump in (("p", 100.0), ("v", 100.0), ("a", 1e4)):
        bad = {k: (v.copy() if hasattr(v, "copy") else v) for k, v in rec.items()}
        bad[key][i, 0] += bump
        assert check_stream(bad), key
