"""Lifecycle and process hygiene for the node shells, decided without ROS.

* :func:`transition_refusal`: is a requested lifecycle transition available from the current state? rclpy
  raises ``RCLError`` (and, from a service callback, takes the process down) for one that is not; the shells
  ask first and answer ``success=False``.
* :class:`Autostart`: the one-shot configure → activate a node performs on itself at start (``autostart``
  parameter). It runs once; later transitions (deactivate, cleanup, configure, activate) are the operator's,
  so a paused node stays paused (a launch event handler on "inactive" re-activated it on every transition).
* :func:`guard_callback`: wraps a timer / subscription / service callback so no exception escapes into the
  executor; during shutdown (the context is already invalid, e.g. ``Failed to publish: publisher's context is
  invalid``) the error is expected and dropped silently.
* :func:`exit_status`: the process exit code after spinning (0 for Ctrl-C / SIGTERM / external shutdown and
  for errors that are only the shutdown race).

Transition ids are those of ``lifecycle_msgs/msg/Transition`` (stable across ROS 2 distributions).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

TRANSITION_CONFIGURE = 1
TRANSITION_CLEANUP = 2
TRANSITION_ACTIVATE = 3
TRANSITION_DEACTIVATE = 4

# state label → the transition Autostart takes from it (towards "active")
_AUTOSTART_STEP = {"unconfigured": TRANSITION_CONFIGURE, "inactive": TRANSITION_ACTIVATE}


def transition_refusal(available: Iterable[Sequence[Any]], current_state: str, transition_id: int,
                       label: str = "") -> str | None:
    """None when the transition (by ``label`` when given, else by id) is available now; else the reason.

    ``available``: rclpy's ``available_transitions`` rows ``(id, label, start_id, start_label, goal_id,
    goal_label)`` for the current state."""
    rows = [tuple(r) for r in available]
    if label:
        if any(r[1] == label for r in rows):
            return None
    elif any(int(r[0]) == int(transition_id) for r in rows):
        return None
    names = ", ".join(f"{r[1]} ({r[0]})" for r in rows) or "none"
    what = f"transition {label!r}" if label else f"transition id {transition_id}"
    return f"{what} is not available from state '{current_state}' (available: {names})"


class Autostart:
    """One-shot configure → activate. :meth:`next_transition` gives the transition to trigger for the current
    state, or None when finished (active reached, a step failed, or it already ran to the end)."""

    def __init__(self, enabled: bool):
        self.enabled = bool(enabled)
        self.done = not self.enabled
        self.failed: str | None = None
        self._tried: set[int] = set()

    def next_transition(self, state_label: str) -> int | None:
        if self.done:
            return None
        step = _AUTOSTART_STEP.get(state_label)
        if step is None:  # active, or a state we do not drive from
            self.done = True
            return None
        if step in self._tried:  # the step was taken and we are still here: it failed; do not retry
            self.failed = f"autostart stopped in state '{state_label}' (the transition failed; see above)"
            self.done = True
            return None
        self._tried.add(step)
        return step


def is_shutdown_error(exc: BaseException) -> bool:
    """Errors that only mean "the context is already shut down" (a timer fired during Ctrl-C)."""
    text = str(exc).lower()
    return any(s in text for s in ("context is invalid", "context is not valid", "context was shutdown",
                                   "context is shutdown", "rcl_shutdown already called"))


def guard_callback(fn: Callable[..., Any], *, report: Callable[[str], None], shutting_down: Callable[[], bool],
                   name: str = "", default: Any = None) -> Callable[..., Any]:
    """``fn`` that never raises an ``Exception`` (``KeyboardInterrupt``/``SystemExit`` still end the spin).

    During shutdown (``shutting_down()`` true, or a context-invalid error) the exception is dropped; otherwise
    ``report`` gets one line and the callback returns ``default`` (for a service: the response object is
    passed through when ``default`` is the string ``"response"``)."""
    label = name or getattr(fn, "__name__", "callback")

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - nothing escapes into the executor
            if not (shutting_down() or is_shutdown_error(exc)):
                try:
                    report(f"{label} failed: {type(exc).__name__}: {exc}")
                except Exception:  # noqa: BLE001 - the logger itself may be gone
                    pass
            if default == "response" and len(args) >= 2:
                return args[-1]
            return default

    return wrapper


def exit_status(exc: BaseException | None, context_ok: bool) -> tuple[int, str | None]:
    """Exit code and message after the executor stopped with ``exc`` (None = returned normally).

    Ctrl-C, SIGTERM and an external shutdown exit 0 silently; so does any error raised once the context is
    shut down (the race between a signal and a running callback). Anything else is a real failure: 1."""
    if exc is None or isinstance(exc, KeyboardInterrupt):
        return 0, None
    if isinstance(exc, SystemExit):
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return code, None
    if type(exc).__name__ == "ExternalShutdownException" or not context_ok or is_shutdown_error(exc):
        return 0, None
    return 1, f"{type(exc).__name__}: {exc}"
