"""controller_node's start-up check of the joint_trajectory_controllers it commands (output_mode: trajectory).

The rclpy half of :mod:`fastwam_ros.runtime.jtc_check`: a few seconds after start, each group's controller
(the node behind ``<controller>/joint_trajectory``) is asked for its parameters through its
``get_parameters`` service, without blocking the executor; settings that would reject or degrade our commands
are logged with the exact ``ros2 param set`` line, and a controller that does not answer gets a warning
saying what to check by hand.
"""

from __future__ import annotations

from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import GetParameters

from fastwam_ros.nodes.shell import guard
from fastwam_ros.runtime.jtc_check import (
    JTC_PARAMETERS,
    REJECT,
    controller_of,
    jtc_problems,
    unreachable_advice,
)

_FIELDS = {ParameterType.PARAMETER_BOOL: "bool_value", ParameterType.PARAMETER_INTEGER: "integer_value",
           ParameterType.PARAMETER_DOUBLE: "double_value", ParameterType.PARAMETER_STRING: "string_value",
           ParameterType.PARAMETER_STRING_ARRAY: "string_array_value",
           ParameterType.PARAMETER_DOUBLE_ARRAY: "double_array_value",
           ParameterType.PARAMETER_BOOL_ARRAY: "bool_array_value",
           ParameterType.PARAMETER_INTEGER_ARRAY: "integer_array_value"}


def _value(v):
    f = _FIELDS.get(v.type)
    if f is None:
        return None
    x = getattr(v, f)
    return list(x) if f.endswith("_array_value") else x


class JTCProbe:
    """Check the JTC behind each group's command topic once, ``delay_s`` after construction."""

    def __init__(self, node, command_topics: dict[str, str], joints: dict[str, list[str]], control_period_s: float,
                 delay_s: float = 3.0, wait_s: float = 2.0) -> None:
        self.node, self.joints, self.period = node, joints, control_period_s
        self.controllers = {g: controller_of(t, node.get_namespace()) for g, t in command_topics.items()}
        self.clients = {g: node.create_client(GetParameters, f"{c}/get_parameters")
                        for g, c in self.controllers.items()}
        self.results: dict[str, list] = {}
        self._wait_s = wait_s
        self._timer = node.create_timer(delay_s, guard(node, self._start, "jtc probe"))

    def _start(self) -> None:
        self._timer.cancel()
        log = self.node.get_logger()
        for g, cli in self.clients.items():
            ctrl = self.controllers[g]
            if not cli.service_is_ready():
                log.warning(f"group {g}: {unreachable_advice(ctrl, self.joints[g])}")
                continue
            fut = cli.call_async(GetParameters.Request(names=list(JTC_PARAMETERS)))
            fut.add_done_callback(guard(self.node, lambda f, g=g: self._done(g, f), "jtc probe"))

    def _done(self, group: str, fut) -> None:
        log = self.node.get_logger()
        ctrl = self.controllers[group]
        try:
            values = fut.result().values
        except Exception as exc:  # noqa: BLE001 - a failed call is a warning, never an executor error
            log.warning(f"group {group}: {ctrl} parameters unreadable ({exc}); "
                        f"{unreachable_advice(ctrl, self.joints[group])}")
            return
        params = {n: _value(v) for n, v in zip(JTC_PARAMETERS, values)}
        params = {n: v for n, v in params.items() if v is not None}
        problems = jtc_problems(ctrl, params, self.joints[group], self.period)
        self.results[group] = problems
        for p in problems:
            (log.error if p.severity == REJECT else log.warning)(f"group {group}: {ctrl}: {p.text()}")
        if not problems:
            log.info(f"group {group}: {ctrl} settings accept our trajectories")
