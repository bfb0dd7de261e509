"""The tracking-error watchdog's rules, one by one (exact boundaries in binary-exact times and distances)."""

from __future__ import annotations

import numpy as np

from fastwam_ros.control.watchdog import TrackingWatchdog

ON = np.array([True, True])


def test_error_is_the_distance_outside_the_commanded_range_on_both_sides():
    w = TrackingWatchdog(np.array([1.0, 1.0]), np.array([1.0, 1.0]), lag_ticks=2)
    w.update(0.0, np.array([0.0, 0.0]), np.array([0.0, 0.0]), ON)
    w.update(0.25, np.array([0.5, 0.5]), np.array([-0.25, 0.75]), ON)  # range [0, 0.5]
    assert w.error.tolist() == [0.25, 0.25]  # below the range, above it
    w.update(0.5, np.array([0.5, 0.5]), np.array([0.5, 0.5]), ON)  # inside [0.5, 0.5]: no error
    assert w.error.tolist() == [0.0, 0.0]


def test_the_range_covers_exactly_the_last_lag_ticks_commands():
    w = TrackingWatchdog(np.array([1.0]), np.array([1.0]), lag_ticks=2)
    for k, c in enumerate([0.0, 0.5, 1.0]):
        w.update(0.25 * k, np.array([c]), np.array([0.0]), np.array([True]))
    assert w.error.tolist() == [0.5]  # 0.0 has left the window: range [0.5, 1.0]
    w1 = TrackingWatchdog(np.array([1.0]), np.array([1.0]), lag_ticks=0)  # at least one command
    assert w1.history.shape == (1, 1)
    w1.update(0.0, np.array([0.5]), np.array([0.0]), np.array([True]))
    assert w1.error.tolist() == [0.5]


def test_trips_when_over_the_threshold_for_the_duration_not_before_not_at_the_threshold():
    w = TrackingWatchdog(np.array([0.25, 0.25]), np.array([0.5, 0.5]), lag_ticks=1)
    meas = np.array([0.25, 0.5])  # joint 0 exactly at the threshold (not over), joint 1 over
    cmd = np.zeros(2)
    assert w.update(0.0, cmd, meas, ON).tolist() == [False, False]
    assert w.over_since.tolist()[1] == 0.0 and np.isnan(w.over_since[0])
    assert w.update(0.25, cmd, meas, ON).tolist() == [False, False]
    assert w.over_since[1] == 0.0  # counts from when it went over, not from the last tick
    assert w.update(0.5, cmd, meas, ON).tolist() == [False, True]  # exactly the duration: trips
    assert w.update(0.75, cmd, np.array([0.0, 0.0]), ON).tolist() == [False, False]  # back: starts over
    assert np.isnan(w.over_since).all()


def test_unwatched_and_unmeasured_joints_show_no_error_and_start_over():
    w = TrackingWatchdog(np.array([0.25, 0.25]), np.array([0.0, 0.0]), lag_ticks=1)
    trip = w.update(0.0, np.zeros(2), np.array([1.0, np.nan]), np.array([False, True]))
    assert trip.tolist() == [False, False] and w.error.tolist() == [0.0, 0.0]
    # an unwatched tick does not enter the command range
    w2 = TrackingWatchdog(np.array([9.0]), np.array([1.0]), lag_ticks=2)
    w2.update(0.0, np.array([5.0]), np.array([0.0]), np.array([False]))
    w2.update(0.25, np.array([0.0]), np.array([1.0]), np.array([True]))
    assert w2.error.tolist() == [1.0]


def test_clear_forgets_only_the_given_joints():
    w = TrackingWatchdog(np.array([0.25, 0.25]), np.array([1.0, 1.0]), lag_ticks=2)
    w.update(0.0, np.zeros(2), np.array([1.0, 1.0]), ON)
    w.clear(np.array([0]))
    assert np.isnan(w.history[:, 0]).all() and not np.isnan(w.history[0, 1])
    assert np.isnan(w.over_since[0]) and w.over_since[1] == 0.0
    assert w.error.tolist() == [0.0, 1.0]
    w.update(0.25, np.array([1.0, 0.0]), np.array([1.0, 1.0]), ON)
    assert w.error.tolist() == [0.0, 1.0]  # joint 0's old command (0.0) is forgotten
    assert w.over_since[0] != w.over_since[0] and w.over_since[1] == 0.0


def test_by_default_only_the_latest_command_counts():
    w = TrackingWatchdog(np.array([1.0]), np.array([1.0]))
    w.update(0.0, np.array([0.0]), np.array([0.0]), np.array([True]))
    w.update(0.25, np.array([0.5]), np.array([0.0]), np.array([True]))
    assert w.error.tolist() == [0.5]


def test_parameters_are_kept_as_float_arrays():
    w = TrackingWatchdog([1, 2], [1, 3], lag_ticks=2)
    assert w.threshold.dtype == np.float64 and w.duration.dtype == np.float64
    assert w.threshold.tolist() == [1.0, 2.0] and w.duration.tolist() == [1.0, 3.0]


def test_restart_timing_counts_an_error_in_progress_from_the_new_clock_and_keeps_the_commands():
    """After the clock went back (a re-base), an error that went over the threshold in the old time base trips
    a full duration after the first tick of the new one, not once the new clock has caught up with the old."""
    w = TrackingWatchdog(np.array([0.25, 0.25]), np.array([0.5, 0.5]), lag_ticks=2)
    w.update(99.9, np.zeros(2), np.zeros(2), ON)
    w.update(100.0, np.zeros(2), np.array([0.0, 0.5]), ON)
    assert w.over_since.tolist()[1] == 100.0
    hist = w.history.copy()
    w.restart_timing()
    assert np.isnan(w.over_since).all() and np.array_equal(w.history, hist, equal_nan=True)
    assert w.update(1.0, np.zeros(2), np.array([0.0, 0.5]), ON).tolist() == [False, False]
    assert w.update(1.5, np.zeros(2), np.array([0.0, 0.5]), ON).tolist() == [False, True]
