"""Which settings of a stock ros2_control ``joint_trajectory_controller`` (JTC) would reject or degrade the
commands controller_node sends in ``output_mode: trajectory`` — ROS-free, from a plain parameter dict.

What we send (per group, every control period): a JointTrajectory with all the group's joints, positions and
velocities, header stamp one period ahead, points every ``trajectory_point_period_s`` over the tracking horizon,
then a braking tail whose last point has velocity exactly 0. So Humble/Jazzy defaults accept it
(``allow_nonzero_velocity_at_trajectory_end: false`` included). Settings we rely on:

* ``joints``: exactly the group's joints (with ``allow_partial_joints_goal: false``, the default, a JTC with
  more joints rejects every message; joints we send that the JTC does not have are rejected always).
* ``interpolation_method: splines`` (default): ``none`` jumps from point to point (20 ms steps).
* ``cmd_timeout``: 0 (default, off) or comfortably above the control period; a smaller one drops to hold
  between our messages.
* ``command_interfaces`` containing ``position``: velocity/effort-only JTCs need tuned gains.
* recommended: ``interpolate_from_desired_state: true`` (Jazzy; ``open_loop_control: true`` on Humble): each
  of our trajectories then starts from the previous desired state; with the default (from the *measured*
  state) a real arm's tracking lag is fed back into every new trajectory (mock hardware does not show it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# parameters to read from the controller (missing ones are simply not reported: older/newer distros differ)
JTC_PARAMETERS = ("joints", "allow_partial_joints_goal", "interpolation_method", "cmd_timeout",
                  "command_interfaces", "interpolate_from_desired_state", "open_loop_control",
                  "allow_nonzero_velocity_at_trajectory_end")

REJECT, DEGRADE = "reject", "degrade"


@dataclass(frozen=True)
class JTCProblem:
    severity: str  # REJECT (our messages are refused) or DEGRADE (accepted, tracking suffers)
    parameter: str
    value: Any
    why: str
    command: str | None  # the exact ``ros2 param set`` line, None when a parameter change cannot fix it

    def text(self) -> str:
        fix = f"; fix: {self.command}" if self.command else ""
        return f"{self.severity}: {self.parameter}={self.value!r}: {self.why}{fix}"


def _set(controller: str, name: str, value: str) -> str:
    return f"ros2 param set {controller} {name} {value}"


def jtc_problems(controller: str, params: Mapping[str, Any], joints: Sequence[str],
                 control_period_s: float) -> list[JTCProblem]:
    """Problems of the JTC ``controller`` (node name, e.g. ``/left_arm_controller``) with parameter values
    ``params`` for a group commanding ``joints`` every ``control_period_s`` seconds. Empty list: fine."""
    out: list[JTCProblem] = []
    ours = list(joints)
    theirs = params.get("joints")
    if theirs is not None:
        theirs = list(theirs)
        unknown = [j for j in ours if j not in theirs]
        if unknown:
            out.append(JTCProblem(REJECT, "joints", theirs, f"the controller does not have joints {unknown}: "
                                  "every trajectory is rejected (map the group onto this controller's joints)",
                                  None))
        extra = [j for j in theirs if j not in ours]
        if extra and not params.get("allow_partial_joints_goal", False):
            out.append(JTCProblem(REJECT, "allow_partial_joints_goal", params.get("allow_partial_joints_goal", False),
                                  f"the controller also has joints {extra} that this group does not command",
                                  _set(controller, "allow_partial_joints_goal", "true")))
    method = params.get("interpolation_method")
    if method is not None and method != "splines":
        out.append(JTCProblem(DEGRADE, "interpolation_method", method,
                              "no interpolation between our points: the command steps every point period",
                              _set(controller, "interpolation_method", "splines")))
    timeout = params.get("cmd_timeout")
    if timeout is not None and 0.0 < float(timeout) < 5.0 * control_period_s:
        out.append(JTCProblem(DEGRADE, "cmd_timeout", timeout,
                              f"below 5 control periods ({5.0 * control_period_s:.3g} s): scheduling jitter makes "
                              "the controller drop our trajectory and hold", _set(controller, "cmd_timeout", "0.5")))
    cmd = params.get("command_interfaces")
    if cmd is not None and "position" not in list(cmd):
        out.append(JTCProblem(DEGRADE, "command_interfaces", list(cmd),
                              "no position command interface: tracking depends on the controller's gains", None))
    if params.get("interpolate_from_desired_state") is False:
        out.append(JTCProblem(DEGRADE, "interpolate_from_desired_state", False,
                              "each new trajectory starts from the measured state: a real arm's lag is fed back "
                              "into every command (recommended: true)",
                              _set(controller, "interpolate_from_desired_state", "true")))
    elif "interpolate_from_desired_state" not in params and params.get("open_loop_control") is False:
        out.append(JTCProblem(DEGRADE, "open_loop_control", False,
                              "each new trajectory starts from the measured state (Humble): a real arm's lag is "
                              "fed back into every command (recommended: true)",
                              _set(controller, "open_loop_control", "true")))
    return out


def unreachable_advice(controller: str, joints: Sequence[str]) -> str:
    """What to check by hand when the controller's parameters cannot be read."""
    names = " ".join(JTC_PARAMETERS[:4])
    return (f"could not read {controller}'s parameters; check them with `ros2 param get {controller} <name>` for "
            f"{names}: joints must be exactly {list(joints)} (or `{_set(controller, 'allow_partial_joints_goal', 'true')}`), "
            f"interpolation_method splines, cmd_timeout 0 or >= 5 control periods; recommended: "
            f"`{_set(controller, 'interpolate_from_desired_state', 'true')}` (Humble: open_loop_control)")


def controller_of(command_topic: str, namespace: str = "/") -> str:
    """The JTC node name behind a command topic ``<controller>/joint_trajectory`` (relative names resolved in
    ``namespace``)."""
    base = command_topic.rsplit("/joint_trajectory", 1)[0] if command_topic.endswith("/joint_trajectory") \
        else command_topic.rsplit("/", 1)[0]
    if not base.startswith("/"):
        base = namespace.rstrip("/") + "/" + base
    return base
