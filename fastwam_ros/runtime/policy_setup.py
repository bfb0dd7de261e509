"""policy_node's configure step without ROS: parameters → started worker → :class:`PolicyRuntime`.

rclpy swallows an exception raised in a lifecycle transition callback (the transition just fails, nothing is
logged), so every step here turns a failure into a message that names the step and the cause; the shell logs
them. A worker already started is stopped again when a later step fails.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .params import validate
from .plausibility import OutputLimits, check_actions, check_normalizer
from .policy_runtime import PolicyRuntime, PolicyRuntimeConfig
from .schemas import POLICY_SCHEMA, perception_dict, require_checkpoint
from .worker import PolicyWorker, WorkerError


@dataclass
class ConfigureResult:
    runtime: PolicyRuntime | None
    errors: list[str] = field(default_factory=list)  # one line each: "<step>: <Type>: <cause>"
    details: list[str] = field(default_factory=list)  # tracebacks (debug log)
    load_timing_s: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.runtime is not None and not self.errors


def _default_pipeline(p: Mapping[str, Any]) -> Any:
    from fastwam_ros.perception import ObservationPipeline, PerceptionConfig

    return ObservationPipeline(PerceptionConfig.from_dict(perception_dict(p)))


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
                     pipeline_factory: Callable[[Mapping[str, Any]], Any] | None = None,
                     exists: Callable[[str], bool] | None = None) -> ConfigureResult:
    """Validate ``p``, build and start the worker (model load + checks + warm-up on its thread), build the
    observation pipeline and the runtime. Never raises an ``Exception``; the result lists what failed."""
    res = ConfigureResult(None)
    errors = [f"parameter {e}" for e in validate(POLICY_SCHEMA, p) + require_checkpoint(p, exists)]
    if errors:
        res.errors = errors
        return res
    worker = None
    step = "building the policy factory"
    try:
        factory = factory or policy_factory(p)
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
        pipeline = (pipeline_factory or _default_pipeline)(p)
        step = "building the runtime"
        model_id = f"{p['model.variant']}:{str(p['model.checkpoint']).rstrip('/').split('/')[-1]}"
        res.runtime = PolicyRuntime(PolicyRuntimeConfig.from_params(p, model_id), pipeline, worker,
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


def policy_factory(p: Mapping[str, Any], resolve_path: Callable[[str], str] | None = None) -> Callable[[], Any]:
    """A zero-argument factory (run on the worker thread) that loads the policy named by the params.

    Only keyword arguments ``FastWAMPolicy.from_pretrained`` accepts are passed.
    """
    resolve_path = resolve_path or (lambda s: s)

    def build():
        from pathlib import Path

        path = resolve_path(p["model.checkpoint"])
        if not Path(path).expanduser().exists():
            raise FileNotFoundError(f"model.checkpoint {path}: not found (no such file or directory)")
        from fastwam_ros.model.policy import FastWAMPolicy  # torch import happens here, on the worker

        threads = int(p.get("model.num_threads", 0) or 0)
        if threads > 0:
            import torch

            torch.set_num_threads(threads)

        fn = FastWAMPolicy.from_pretrained
        wanted = {
            "device": p["model.device"],
            "dtype": p["model.dtype"],
            "config": p["model.config"] or None,  # a preset name (wan22_5b) or a path
            "stats": resolve_path(p["model.stats"]) if p["model.stats"] else None,
            "vae_dir": p["model.vae_dir"] or None,
            "text_encoder_dir": p["model.text_encoder_dir"] or None,
            "tokenizer_dir": p["model.tokenizer_dir"] or None,
            "cache_dir": p["model.cache_dir"] or None,
            "variant": p["model.variant"],
            "num_inference_steps": p["model.num_inference_steps"],
        }
        kwargs = {k: v for k, v in wanted.items() if v is not None and _accepts(fn, k)}
        return fn(path, **kwargs)

    return build


def _accepts(fn: Callable, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
