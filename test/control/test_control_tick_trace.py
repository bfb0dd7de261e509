"""Before/after trace comparison for the tick optimisation (issues 14 and 17): the controller reproduces, on
fixed seeded normal and adversarial streams, the whole output recorded from the code before the optimisation
(``fixtures/tick_trace.npz``, written by ``fixtures/make_tick_trace.py`` at commit 50acce1): setpoints, every
published trajectory point (tracking horizon + braking tail), committed prefixes and clamp counters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import load_script

_HERE = Path(__file__).resolve().parent / "fixtures"
_gen = load_script("test/control/fixtures/make_tick_trace.py")
FIXTURE = _HERE / "tick_trace.npz"
ATOL = 1e-12  # rad, rad/s: float rounding only
ATOL_ACC = 1e-10  # rad/s²: accelerations are velocity differences / dt (dt = 0.01 s)


@pytest.mark.parametrize("stream", _gen.STREAMS)
@pytest.mark.parametrize("mode", _gen.MODES)
def test_tick_output_matches_the_trace_recorded_before_the_optimisation(mode, stream):
    ref = np.load(FIXTURE)
    now = _gen.scenario(mode, stream)
    for key, val in now.items():
        want = ref[f"{mode}/{stream}/{key}"]
        assert val.shape == want.shape, key
        if val.dtype.kind in "iu":  # trajectory lengths, clamp counters: exactly
            np.testing.assert_array_equal(val, want, err_msg=f"{mode}/{stream}/{key}")
        else:
            np.testing.assert_allclose(val, want, rtol=0, atol=ATOL_ACC if key == "a" else ATOL,
                                       err_msg=f"{mode}/{stream}/{key}")


def test_the_tick_trace_covers_what_it_claims():
    """The recorded streams exercise the limiter (clamps), braking tails and refused garbage, and a small change
    to one trajectory point is caught at the tolerance."""
    ref = np.load(FIXTURE)
    for mode in _gen.MODES:
        assert ref[f"{mode}/adversarial/clamps"].sum() > 0
        assert ref[f"{mode}/adversarial/traj_n"].max() > 11  # a braking tail after the 10-point horizon
    bumped = ref["splice/adversarial/traj_p"].copy()
    i = tuple(np.argwhere(np.isfinite(bumped))[-1])
    bumped[i] += 1e-9
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(bumped, ref["splice/adversarial/traj_p"], rtol=0, atol=ATOL)
