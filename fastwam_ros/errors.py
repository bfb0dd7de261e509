"""The configuration errors of the whole package (one hierarchy, one place).

:class:`ConfigError` is raised for any invalid configuration value: robot files, perception / controller
configs, model configs, training configs. It is a :class:`ValueError`. Two call forms::

    raise ConfigError("cameras[1].name", "duplicate camera name 'head'")   # field + message: "field: message"
    raise ConfigError("groups: at least one group is required")            # one message (starts with the field)

``err.field`` is the dotted field path when given (else None).

:class:`ContractError` is raised when a checkpoint was trained for another robot than the robot file describes;
``err.differences`` lists every differing field (see :mod:`fastwam_ros.contract`).

:class:`PerceptionError` / :class:`ProprioError` are the input errors of perception (re-exported by
:mod:`fastwam_ros.perception.errors`); they live here so that NumPy-only modules (the joint-state rule the
controller shares, :mod:`fastwam_ros.joint_state`) can raise them without importing perception's decoders.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ConfigError", "ContractError", "Difference", "PerceptionError", "ProprioError"]


class ConfigError(ValueError):
    """An invalid configuration value; the message starts with the offending field's path."""

    def __init__(self, *args: object) -> None:
        self.field: str | None = None
        if len(args) == 2 and all(isinstance(a, str) for a in args):
            self.field, message = str(args[0]), str(args[1])
            super().__init__(f"{self.field}: {message}")
        else:
            super().__init__(*args)


class Difference(tuple):
    """One differing contract field: ``(field, checkpoint_value, robot_value)``."""

    __slots__ = ()

    def __new__(cls, field: str, checkpoint: object, robot: object) -> Difference:
        return super().__new__(cls, (field, checkpoint, robot))

    @property
    def field(self) -> str:
        return self[0]

    @property
    def checkpoint(self) -> object:
        return self[1]

    @property
    def robot(self) -> object:
        return self[2]


class ContractError(ConfigError):
    """The checkpoint's robot contract differs from the robot file: every differing field is listed."""

    def __init__(self, checkpoint: str, robot: str, differences: Sequence[Difference], hint: str = "") -> None:
        self.differences = [Difference(*d) for d in differences]
        lines = [f"checkpoint {checkpoint} was trained for another robot than {robot} "
                 f"({len(self.differences)} differing field(s)):"]
        for d in self.differences:
            other = "requested" if d.field == "variant" else "robot"  # the variant is a deployment request
            lines.append(f"  - {d.field}: checkpoint {d.checkpoint!r} vs {other} {d.robot!r}{_first_difference(d)}")
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))
        self.field = "robot_contract"


def _first_difference(d: Difference) -> str:
    """`` (first difference at [i]: a vs b)`` for two sequences, else ""."""
    a, b = d.checkpoint, d.robot
    if not isinstance(a, (list, tuple)) or not isinstance(b, (list, tuple)) or max(len(a), len(b)) <= 3:
        return ""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f" (first difference at [{i}]: {x!r} vs {y!r})"
    return f" (lengths {len(a)} vs {len(b)})" if len(a) != len(b) else ""


class PerceptionError(ValueError):
    """Base class: ``reason`` is a short code (used as a counter key in /diagnostics)."""

    def __init__(self, reason: str, message: str = ""):
        self.reason = str(reason)
        super().__init__(f"[{self.reason}] {message}" if message else f"[{self.reason}]")


class ProprioError(PerceptionError):
    """The proprio vector could not be assembled; ``joint`` names the offending joint (or None).

    Reasons: ``missing_joint``, ``nonfinite_joint``, ``out_of_range_joint``, ``duplicate_joint``,
    ``bad_joint_state``, ``bad_pose``.
    """

    def __init__(self, reason: str, joint: str | None = None, message: str = ""):
        self.joint = joint
        super().__init__(reason, message or (f"joint {joint!r}" if joint is not None else ""))
