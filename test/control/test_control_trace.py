"""Before/after trace comparison (issue 17): the optimised tick reproduces the controller's output as it was
recorded before the optimisation (``fixtures/controller_trace.npz``, written by
``fixtures/make_controller_trace.py`` from the pre-optimisation code)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import load_script

_HERE = Path(__file__).resolve().parent / "fixtures"
_gen = load_script("test/control/fixtures/make_controller_trace.py")
MODES, scenario = _gen.MODES, _gen.scenario
FIXTURE = _HERE / "controller_trace.npz"
# float rounding only: the natural-spline slopes are an O(H) tridiagonal solve now instead of a dense inverse
# (~1e-16 rad apart); accelerations are velocity differences / dt, so their rounding is ~100× larger
ATOL = 1e-12  # rad, rad/s
ATOL_ACC = 1e-10  # rad/s²


@pytest.mark.parametrize("mode", MODES)
def test_tick_output_matches_the_recorded_trace(mode):
    ref = np.load(FIXTURE)
    now = scenario(mode)
    for key in ("p", "v", "a", "prefix"):
        np.testing.assert_allclose(now[key], ref[f"{mode}/{key}"], rtol=0, atol=ATOL_ACC if key == "a" else ATOL,
                                   err_msg=f"{mode}/{key}")
    # the short trajectory: the tracking horizon is unchanged (a braking tail may follow it, see issue 13)
    n = ref[f"{mode}/traj_p"].shape[1]
    for key in ("traj_p", "traj_v"):
        np.testing.assert_allclose(now[key][:, :n], ref[f"{mode}/{key}"], rtol=0, atol=ATOL, err_msg=f"{mode}/{key}")


def test_the_trace_comparison_can_fail():
    """A small change to the controller's output is caught at this tolerance."""
    ref = np.load(FIXTURE)
    bumped = ref["splice/p"].copy()
    bumped[200, 3] += 1e-9
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(bumped, ref["splice/p"], rtol=0, atol=ATOL)
