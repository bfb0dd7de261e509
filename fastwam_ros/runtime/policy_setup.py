"""policy_node's configure step without ROS: parameters → started worker → :class:`PolicyRuntime`.

rclpy swallows an exception raised in a lifecycle transition callback (the transition just fails, nothing is
logged), so every step here turns a failure into a message that names the step and the cause; the shell logs
them. A worker already started is stopped again when a later step fails.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .params import validate
from .plausibility import OutputLimits, check_actions, check_normalizer
from .policy_runtime import PolicyRuntime, PolicyRuntimeConfig, policy_factory
from .schemas import POLICY_SCHEMA, require_checkpoint
from .worker import PolicyWorker, WorkerError


@dataclass
class ConfigureResult:
    runtime: PolicyRuntime | None
    robot: Any = None  # the RobotSpec (cameras, joints, groups) the node wires its topics from
    errors: list[str] = field(default_factory=list)  # one line each: "<step>: <Type>: <cause>"
    details: list[str] = field(default_factory=list)  # tracebacks (debug log)
    load_timing_s: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.runtime is not None and not self.errors


def _default_pipeline(robot: Any) -> Any:
    from fastwam_ros.perception import ObservationPipeline

    return ObservationPipeline(robot.perception_config())


def with_threads(factory: Callable[[], Any], threads: int) -> Callable[[], Any]:
    """``factory`` that first sets torch's intra-op CPU threads (``model.num_threads``; 0 = leave the default).
    On a small, busy CPU one thread is several times faster than oversubscribed ones."""
    if threads <= 0:
        return factory

    def build():
        import torch

        torch.set_num_threads(int(threads))
        return factory()

    return build


def make_worker(p: Mapping[str, Any], factory: Callable[[], Any]) -> PolicyWorker:
    """A worker whose model is checked at load (normalisation statistics) and at warm-up (finite [H, A])."""
    max_abs = float(p.get("output.max_abs_action", 1e3))

    def validate_policy(policy: Any) -> list[str]:
        return check_normalizer(policy, max_abs)

    def check_warmup(actions: Any) -> str | None:
        bad = check_actions(actions, OutputLimits(horizon=None, max_abs=max_abs))
        return None if bad is None else bad[1]

    return PolicyWorker(factory, instruction=p["instruction"], warmup=p["model.warmup"],
                        validate=validate_policy, check_output=check_warmup)


def configure_policy(p: Mapping[str, Any], *, factory: Callable[[], Any] | None = None,
                     pipeline_factory: Callable[[Any], Any] | None = None,
                     exists: Callable[[str], bool] | None = None) -> ConfigureResult:
    """Validate ``p``, load the robot file, build and start the worker (model load + contract + checks + warm-up
    on its thread), build the observation pipeline and the runtime. Never raises an ``Exception``; the result
    lists what failed (``pipeline_factory(robot)`` defaults to the robot's ObservationPipeline)."""
    res = ConfigureResult(None)
    errors = [f"parameter {e}" for e in validate(POLICY_SCHEMA, p) + require_checkpoint(p, exists)]
    if errors:
        res.errors = errors
        return res
    worker = None
    step = "loading the robot file"
    try:
        from fastwam_ros.robot import load_robot

        try:
            robot = res.robot = load_robot(p["robot_file"])
            robot.perception_config()
        except ValueError as exc:  # ConfigError: names the file and the field
            res.errors.append(f"robot file: {exc}")
            return res
        step = "building the policy factory"
        factory = with_threads(factory or policy_factory(p, robot), int(p.get("model.num_threads", 0) or 0))
        step = "creating the worker"
        worker = make_worker(p, factory)
        step = "loading the model"
        try:
            worker.start(timeout_s=p["model.load_timeout_s"])
        except WorkerError as exc:
            res.errors.append(f"model load failed: {exc}")
            return res
        res.load_timing_s = dict(worker.load_timing_s)
        step = "building the observation pipeline"
        pipeline = (pipeline_factory or _default_pipeline)(robot)
        step = "building the runtime"
        model_id = f"{p['model.variant']}:{str(p['model.checkpoint']).rstrip('/').split('/')[-1]}"
        res.runtime = PolicyRuntime(PolicyRuntimeConfig.from_params(p, robot, model_id), pipeline, worker,
                                    instruction=p["instruction"], enabled=False)
        return res
    except Exception as exc:  # noqa: BLE001 - turned into a logged cause
        res.errors.append(f"{step} failed: {type(exc).__name__}: {exc}")
        res.details.append(traceback.format_exc())
        res.runtime = None
        if worker is not None:
            worker.stop(timeout_s=5.0)
        return res
    except BaseException:  # Ctrl-C during a long load: stop the thread, let the process exit
        if worker is not None:
            worker.stop(timeout_s=1.0)
        raise
