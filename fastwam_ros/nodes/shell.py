"""What every node executable shares: a guarded ``main()`` (clean exit on Ctrl-C / SIGTERM), callbacks that
never raise into the executor, a lifecycle ``~/change_state`` that refuses an unavailable transition instead of
dying, and the one-shot autostart. The decisions are in fastwam_ros.runtime.lifecycle (tested without ROS).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import rclpy
from lifecycle_msgs.srv import ChangeState

from fastwam_ros.runtime.lifecycle import Autostart, exit_status, guard_callback, transition_refusal
from fastwam_ros.runtime.params import ParameterError


def shutting_down(node) -> bool:
    try:
        return not node.context.ok()
    except Exception:  # noqa: BLE001 - a destroyed context counts as shutting down
        return True


def guard(node, fn: Callable[..., Any], name: str = "", default: Any = None) -> Callable[..., Any]:
    """``fn`` for a timer/subscription (``default=None``) or service (``default="response"``) that logs a
    failure (throttled) instead of raising into the executor, and stays silent during shutdown."""

    def report(text: str) -> None:
        node.get_logger().error(text, throttle_duration_sec=2.0)

    return guard_callback(fn, report=report, shutting_down=lambda: shutting_down(node), name=name,
                          default=default)


class TeardownOnCleanup:
    """Lifecycle mixin: cleanup and shutdown both undo configure through the node's ``_teardown()``."""

    def on_cleanup(self, state):
        from rclpy.lifecycle import TransitionCallbackReturn

        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state):
        from rclpy.lifecycle import TransitionCallbackReturn

        self._teardown()
        return TransitionCallbackReturn.SUCCESS


def release(node, timers, subscriptions, lifecycle_publishers) -> None:
    """Destroy what a configure created (publishers that are None are skipped)."""
    for t in timers:
        node.destroy_timer(t)
    for s in subscriptions:
        node.destroy_subscription(s)
    for pub in lifecycle_publishers:
        if pub is not None:
            node.destroy_lifecycle_publisher(pub)


def guard_change_state(node) -> None:
    """Wrap the lifecycle ``~/change_state`` service: a transition not available from the current state is
    answered with success=False and a warning (rclpy would raise RCLError from the callback and kill us)."""
    own = getattr(node, "_service_change_state", None)  # rclpy's LifecycleNodeMixin attribute (Humble, Jazzy)
    for srv in [own] if own is not None else list(getattr(node, "services", [])):
        if getattr(srv, "srv_type", None) is not ChangeState:
            continue
        original = srv.callback

        def guarded(req, resp, _original=original):
            machine = node._state_machine  # rclpy's LifecycleStateMachine (Humble and Jazzy)
            try:
                state = machine.current_state[1]
                refusal = transition_refusal(machine.available_transitions, state, req.transition.id,
                                             req.transition.label)
            except Exception as exc:  # noqa: BLE001
                refusal = f"cannot read the lifecycle state: {exc}"
            if refusal is not None:
                node.get_logger().warning(f"change_state refused: {refusal}")
                resp.success = False
                return resp
            try:
                return _original(req, resp)
            except Exception as exc:  # noqa: BLE001 - the node survives any client
                node.get_logger().error(f"change_state failed: {type(exc).__name__}: {exc}")
                resp.success = False
                return resp

        srv.callback = guarded


def start_autostart(node, enabled: bool) -> None:
    """Configure and then activate the node once, from a one-shot timer after the executor starts spinning."""
    auto = Autostart(enabled)
    if not auto.enabled:
        return
    triggers = {1: node.trigger_configure, 3: node.trigger_activate}
    holder: dict[str, Any] = {}

    def step() -> None:
        try:
            state = node._state_machine.current_state[1]
        except Exception:  # noqa: BLE001
            state = ""
        transition = auto.next_transition(state)
        if transition is None:
            holder["timer"].cancel()
            node.destroy_timer(holder["timer"])
            if auto.failed:
                node.get_logger().error(auto.failed)
            else:
                node.get_logger().info(f"autostart done: {state}")
            return
        node.get_logger().info(f"autostart: {'configure' if transition == 1 else 'activate'} (from {state})")
        try:
            triggers[transition]()
        except Exception as exc:  # noqa: BLE001 - reported; the next tick sees the state and stops
            node.get_logger().error(f"autostart transition failed: {type(exc).__name__}: {exc}")

    holder["timer"] = node.create_timer(0.05, guard(node, step, "autostart"))


def spin_node(make_node, label: str, on_exit=None) -> None:
    """Shared ``main()``: init, build the node (a parameter error is printed and exits 2; any other start-up
    failure prints its cause and exits 1), spin until Ctrl-C / SIGTERM / shutdown, then ``on_exit(node)`` and
    clean up. Exit 0 after a signal, with no traceback even when a callback raced the context shutdown."""
    from rclpy.executors import SingleThreadedExecutor

    rclpy.init()
    try:
        node = make_node()
    except ParameterError as exc:
        print(f"[{label}] {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001 - a clear message instead of a traceback
        print(f"[{label}] failed to start: {type(exc).__name__}: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(1)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    error: BaseException | None = None
    try:
        executor.spin()
    except BaseException as exc:  # noqa: BLE001 - classified by exit_status below
        error = exc
    code, message = exit_status(error, rclpy.ok())
    if message:
        print(f"[{label}] stopped by an error: {message}", file=sys.stderr)
    for step in (lambda: on_exit(node) if on_exit is not None else None, executor.shutdown, node.destroy_node,
                 rclpy.try_shutdown):
        try:
            step()
        except Exception:  # noqa: BLE001 - best effort while the context goes away
            pass
    if code:
        sys.exit(code)
