"""Scripted "fold the towel in half" demonstrations for the demo robot.

Each arm takes the towel's far corner on its side, lifts it over the hinge line and puts it down on the near
corner: reach above -> descend -> close -> lift over -> lower -> open -> retreat -> home. Way-points are solved
with :func:`kinematics.solve_reach` once per episode (from the towel pose the simulator drew, i.e. privileged
state) and joined by minimum-jerk joint-space segments (zero velocity and acceleration at every way-point);
timing is jittered per episode.

The motion is feasible with a wide margin: each segment lasts at least as long as it needs to keep every joint's
peak velocity under ``SPEED_FRACTION`` of its velocity limit and its peak acceleration under ``ACCEL_RAD_S2``
(a third of the demo robot file's limits), and the grippers move between ``GRIPPER_OPEN`` and ``GRIPPER_CLOSED``,
inside their 0..1 range, so a controller that tracks the script never has to clamp it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import kinematics as K
from .robot import GRIPPER_INDICES, HOME_POSITIONS, limit_arrays
from .towel import Towel

INSTRUCTION = "fold the towel in half"

SPEED_FRACTION = 0.6  # peak joint speed of a segment <= this fraction of the joint's velocity limit
ACCEL_RAD_S2 = (4.0, 12.0)  # peak acceleration of a segment: (arm joints rad/s^2, grippers 1/s^2)
GRIPPER_OPEN = 0.9  # normalised openings the script commands (the towel is grasped below 0.3, released above 0.6)
GRIPPER_CLOSED = 0.1
GRASP_Z_M = 0.045  # finger-tip height of the grasp and the put-down (m): the fingers clear the table (MuJoCo)
# minimum-jerk profile s(u) = 10u^3 - 15u^4 + 6u^5: peak ds/du = 15/8, peak |d2s/du2| = 10/sqrt(3)
MINJERK_PEAK_VEL = 1.875
MINJERK_PEAK_ACC = 5.7735

# (name, nominal duration of the move *to* this way-point in seconds; stretched where the motion needs longer)
PHASES: tuple[tuple[str, float], ...] = (
    ("above_far", 1.2),
    ("at_far", 0.7),
    ("grasp", 0.6),
    ("lift_over", 0.8),
    ("at_near", 0.8),
    ("release", 0.6),
    ("retreat", 0.5),
    ("home", 0.8),
)


@dataclass
class ScriptedFolder:
    """Open-loop joint-space plan for one episode; ``command(t_s)`` gives the 14-value position command."""

    towel: Towel
    home: np.ndarray
    time_scale: float = 1.0
    pitch_rad: float = 1.2
    start: np.ndarray | None = None  # where the robot starts (default: home); the script ends at home

    def __post_init__(self) -> None:
        self.home = np.asarray(self.home, float)
        self.start = self.home.copy() if self.start is None else np.asarray(self.start, float)
        lower, upper, vmax = limit_arrays()
        grip = np.zeros(14, dtype=bool)
        grip[list(GRIPPER_INDICES)] = True
        amax = np.where(grip, ACCEL_RAD_S2[1], ACCEL_RAD_S2[0])
        far = self.towel.grasp_points_xy()  # [far-left, far-right]
        near = self.towel.near_xy  # [near-left, near-right]
        times = [0.0]
        poses = [np.clip(self.start, lower, upper)]
        warm = {s: self.home[7 * i : 7 * i + 6] for i, s in enumerate(("left", "right"))}
        for name, dur in PHASES:
            q = np.empty(14)
            for i, side in enumerate(("left", "right")):
                f3 = np.array([*far[i], 0.0])
                n3 = np.array([*near[i], 0.0])
                target, grip = {
                    "above_far": (f3 + [0, 0, 0.10], GRIPPER_OPEN),
                    "at_far": (f3 + [0, 0, GRASP_Z_M], GRIPPER_OPEN),
                    "grasp": (f3 + [0, 0, GRASP_Z_M], GRIPPER_CLOSED),
                    "lift_over": (0.5 * (f3 + n3) + [0, 0, 0.13], GRIPPER_CLOSED),
                    "at_near": (n3 + [0, 0, GRASP_Z_M], GRIPPER_CLOSED),
                    "release": (n3 + [0, 0, GRASP_Z_M], GRIPPER_OPEN),
                    "retreat": (n3 + [0, 0, 0.12], GRIPPER_OPEN),
                    "home": (None, self.home[7 * i + 6]),
                }[name]
                if target is None:
                    q[7 * i : 7 * i + 6] = self.home[7 * i : 7 * i + 6]
                else:
                    warm[side] = K.solve_reach(side, target, self.pitch_rad, q_init=warm[side])
                    q[7 * i : 7 * i + 6] = warm[side]
                q[7 * i + 6] = grip
            q = np.clip(q, lower, upper)
            dq = np.abs(q - poses[-1])
            need = max(float(np.max(MINJERK_PEAK_VEL * dq / (SPEED_FRACTION * vmax))),
                       float(np.sqrt(np.max(MINJERK_PEAK_ACC * dq / amax))))
            times.append(times[-1] + max(dur * self.time_scale, need))
            poses.append(q)
        self.times_s = np.asarray(times)
        self.poses = np.stack(poses)
        self.phase_names = ("start",) + tuple(p[0] for p in PHASES)

    @property
    def duration_s(self) -> float:
        return float(self.times_s[-1])

    def command(self, t_s: float) -> np.ndarray:
        """Position command [14] at `t_s` seconds from the episode start (holds the final pose afterwards)."""
        if t_s <= 0.0:
            return self.poses[0].copy()
        if t_s >= self.times_s[-1]:
            return self.poses[-1].copy()
        k = int(np.searchsorted(self.times_s, t_s, side="right")) - 1
        u = (t_s - self.times_s[k]) / (self.times_s[k + 1] - self.times_s[k])
        s = u * u * u * (10.0 + u * (6.0 * u - 15.0))  # minimum jerk
        return (1.0 - s) * self.poses[k] + s * self.poses[k + 1]


def make_folder(towel: Towel, rng: np.random.Generator, home: np.ndarray | None = None,
                start: np.ndarray | None = None) -> ScriptedFolder:
    """A ScriptedFolder for `towel` with per-episode timing jitter (±10 %) and gripper pitch jitter, from `start`
    (default: `home`) back to `home` (default: the robot's home pose)."""
    return ScriptedFolder(
        towel=towel,
        home=HOME_POSITIONS if home is None else home,
        time_scale=float(rng.uniform(0.9, 1.1)),
        pitch_rad=float(rng.uniform(1.1, 1.3)),
        start=start,
    )


def smooth_offsets(rng: np.random.Generator, duration_s: float, amplitude: np.ndarray, period_s: float = 0.6,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random perturbation for DART-style recording: way-point times [K] (s) and offsets [K, J], uniform
    in ±`amplitude` [J] every ~`period_s` (jittered), starting and ending at 0; :func:`offset_at` interpolates
    them with minimum-jerk segments."""
    n = max(2, int(np.ceil(duration_s / period_s)) + 1)
    times = np.concatenate([[0.0], np.cumsum(rng.uniform(0.7, 1.3, n - 1) * period_s)])
    values = rng.uniform(-1.0, 1.0, (n, len(amplitude))) * np.asarray(amplitude, float)
    values[0] = 0.0
    values[-1] = 0.0
    return times, values


def offset_at(times: np.ndarray, values: np.ndarray, t_s: float) -> np.ndarray:
    """The perturbation of :func:`smooth_offsets` at `t_s` (0 outside its span)."""
    if t_s <= times[0] or t_s >= times[-1]:
        return np.zeros(values.shape[1])
    k = int(np.searchsorted(times, t_s, side="right")) - 1
    u = (t_s - times[k]) / (times[k + 1] - times[k])
    s = u * u * u * (10.0 + u * (6.0 * u - 15.0))
    return (1.0 - s) * values[k] + s * values[k + 1]
