"""The demo simulator's ROS-free side: commands in (any output mode of the controller), sim steps, and
when cameras are due. Time is passed in (seconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .params import ParameterError, validate
from .stats import ReasonCounter


def sample_trajectory(t_s: float, start_s: float, times_s: Sequence[float], positions: np.ndarray) -> np.ndarray:
    """Linear interpolation of a trajectory's positions at absolute time ``t_s``; held at both ends.
    Before the first point the first point is returned (a controller ramps into it)."""
    p = np.asarray(positions, dtype=np.float64)
    t = start_s + np.asarray(times_s, dtype=np.float64)
    if p.shape[0] == 1 or t_s <= t[0]:
        return p[0].copy()
    if t_s >= t[-1]:
        return p[-1].copy()
    return np.array([np.interp(t_s, t, p[:, j]) for j in range(p.shape[1])])


class SimBridge:
    """Keeps the 14-value command the simulator follows, from per-group command messages."""

    def __init__(self, joint_names: Sequence[str], groups: Mapping[str, Sequence[str]], initial: np.ndarray):
        self.joint_names = list(joint_names)
        self._col = {n: i for i, n in enumerate(self.joint_names)}
        self.groups = {g: list(j) for g, j in groups.items()}
        for g, joints in self.groups.items():
            missing = [j for j in joints if j not in self._col]
            if missing:
                raise ValueError(f"group {g}: joints {missing} are not simulated ({self.joint_names})")
        self.command = np.asarray(initial, dtype=np.float64).copy()
        self._traj: dict[str, tuple[list[str], float, np.ndarray, np.ndarray]] = {}
        self.rejections = ReasonCounter()
        self.received = 0
        self._last_cam_s: float | None = None

    def _set(self, names: Sequence[str], values: Sequence[float]) -> None:
        v = np.asarray(values, dtype=np.float64)
        if len(names) != v.size or not np.all(np.isfinite(v)):
            self.rejections.count("command:bad_values")
            return
        for n, x in zip(names, v):
            i = self._col.get(n)
            if i is None:
                self.rejections.count("command:unknown_joint")
                continue
            self.command[i] = x

    def on_positions(self, group: str, values: Sequence[float]) -> None:
        """Float64MultiArray for one group (values in the group's joint order)."""
        self.received += 1
        joints = self.groups.get(group)
        if joints is None or len(values) != len(joints):
            self.rejections.count("command:bad_length")
            return
        self._set(joints, values)

    def on_joint_state(self, names: Sequence[str], positions: Sequence[float]) -> None:
        self.received += 1
        self._set(names, positions)

    def on_trajectory(self, group: str, names: Sequence[str], start_s: float, times_s: Sequence[float],
                      positions: np.ndarray, now_s: float) -> None:
        """A JointTrajectory; a zero stamp (start_s == 0) means "start now" as for ros2_control's JTC."""
        self.received += 1
        p = np.asarray(positions, dtype=np.float64)
        if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] != len(names) or len(times_s) != p.shape[0]:
            self.rejections.count("command:bad_trajectory")
            return
        if not np.all(np.isfinite(p)):
            self.rejections.count("command:bad_values")
            return
        self._traj[group] = (list(names), now_s if start_s == 0.0 else start_s, np.asarray(times_s, float), p)

    def command_at(self, now_s: float) -> np.ndarray:
        for names, start, times, p in self._traj.values():
            self._set(names, sample_trajectory(now_s, start, times, p))
        return self.command.copy()

    def camera_due(self, now_s: float, rate_hz: float) -> bool:
        if self._last_cam_s is None or now_s < self._last_cam_s or now_s - self._last_cam_s >= 1.0 / rate_hz - 1e-9:
            self._last_cam_s = now_s
            return True
        return False


def sim_config_dict(robot: Any) -> dict[str, Any]:
    """The robot file's ``sim:`` section (``SimConfig.from_dict`` input); ``robot``: a RobotSpec."""
    return dict(robot.sim)


def build_sim(p: Mapping[str, Any], node: str = "sim_node") -> tuple[Any, Any, Any, SimBridge]:
    """sim_node parameters → (RobotSpec, SimConfig, BimanualSim, SimBridge). Every problem with the parameters
    (schema, robot file, groups naming joints the simulator does not have) is raised as one
    :class:`ParameterError` naming the fix, so ``ros2 run fastwam_ros sim_node`` prints a clean message instead
    of a traceback."""
    from .schemas import DEMO_ROBOT, SIM_SCHEMA

    errors = validate(SIM_SCHEMA, p)
    if errors:
        raise ParameterError(node, errors)
    from fastwam_ros.robot import load_robot
    from fastwam_ros.sim.sim import BimanualSim, SimConfig

    try:
        robot = load_robot(p["robot_file"])
        cfg = SimConfig.from_dict(sim_config_dict(robot))
    except (OSError, ValueError) as exc:  # ConfigError is a ValueError
        raise ParameterError(node, [f"robot_file: {exc}"]) from None
    sim = BimanualSim(cfg, mode=p["mode"], seed=p["seed"])
    groups = {g.name: list(g.joints) for g in robot.groups}
    have = set(sim.joint_names)
    errs = [f"robot_file {p['robot_file']}: group {g} has joints {[j for j in joints if j not in have]} the "
            "simulated robot does not have" for g, joints in groups.items() if any(j not in have for j in joints)]
    if errs:
        sim.close()
        errs.append(f"the simulated robot's joints are {list(sim.joint_names)}; use its robot file "
                    f"(robot_file:={DEMO_ROBOT}, the default) or `ros2 launch fastwam_ros towel_fold.launch.py "
                    "demo:=true`")
        raise ParameterError(node, errs)
    return robot, cfg, sim, SimBridge(sim.joint_names, groups, sim.joint_positions())
