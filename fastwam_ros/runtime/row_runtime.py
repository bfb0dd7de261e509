"""Everything row_executor_node does, without ROS: chunk intake, e-stop / new episode, one row per step split
into command messages, chunk requests, diagnostics. Core: :class:`fastwam_ros.control.row_executor.RowExecutor`.

Messages: groups are published per command topic; groups that share a topic share one message with their
columns concatenated in group order (LIBERO: the 6 deltas then the gripper, one 7-value message per step).
Each message carries the row kind (``warmup`` | ``row`` | ``idle``) as its layout label, so a simulator bridge
can step its environment on rows only. Time: every method takes ``now_s`` (ROS time, seconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fastwam_ros.control.row_executor import Row, RowExecutor
from fastwam_ros.errors import ConfigError

from .chunks import parse_chunk_counted
from .clock import ClockWatch
from .diagnostics import DiagStatus
from .stats import RateMeter, ReasonCounter


@dataclass
class RowMessage:
    topic: str
    values: list[float]
    label: str  # the row kind: warmup | row | idle


@dataclass
class RowStep:
    row: Row
    messages: list[RowMessage] = field(default_factory=list)
    request: bool = False  # ask the policy for a chunk now


class RowRuntime:
    """Owns the :class:`RowExecutor`; the node shell calls :meth:`step` once per row period and publishes."""

    def __init__(self, params: Mapping[str, Any], robot: Any):
        if robot.output_mode != "rows":
            raise ConfigError(f"robot file {robot.source}: row_executor_node executes robots whose groups use "
                              f"command.output: rows, this one uses {robot.output_mode!r} (controller_node)")
        self.p = dict(params)
        self.robot = robot
        self.config = robot.controller_config()
        self.step_period_s = float(robot.chunk_step_period_s)
        retry = float(self.p["request_retry_s"])
        self.core = RowExecutor(self.config, self.step_period_s, request_retry_s=retry if retry > 0 else None)
        col = {n: i for i, n in enumerate(self.config.joint_names)}
        self.topics: dict[str, list[int]] = {}
        for g in robot.groups:
            self.topics.setdefault(g.command_topic, []).extend(col[j] for j in g.joints)
        self.rejections = ReasonCounter()
        self.chunk_rate = RateMeter()
        self.messages_sent = 0
        self.last_row: Row | None = None
        self.clock = ClockWatch(robot.perception_config().clock_jump_threshold_s)  # sync.clock_jump_threshold_s
        self.notices: list[str] = []  # warnings for the node's log; drained by pop_notices()

    def _watch_clock(self, now_s: float) -> None:
        """The clock going back by more than ``sync.clock_jump_threshold_s`` (bag loop, simulator reset) re-bases
        the executor (:meth:`RowExecutor.rebase_clock`) and queues one line to log."""
        back = self.clock.went_back(now_s)
        if back is not None:
            self.core.rebase_clock(now_s)
            self.notices.append(f"the clock went back {back:.3f} s (bag loop or simulator reset?): chunks stamped "
                                "in the new time base are accepted; the block in progress goes on")

    def pop_notices(self) -> list[str]:
        """Warnings for the node's log since the last call (a clock reset)."""
        out, self.notices = self.notices, []
        return out

    def on_chunk(self, now_s: float, **fields: Any) -> str | None:
        """An ActionChunk's fields (see :func:`parse_chunk`). Returns the rejection text or None."""
        self._watch_clock(now_s)
        self.chunk_rate.tick(now_s)
        pc, err = parse_chunk_counted(self.rejections, **fields)
        if pc is None:
            return err
        res = self.core.submit_chunk(pc.core_chunk(), now_s)
        return None if res.accepted else f"chunk {pc.chunk_id} refused: {res.reason} ({res.detail})"

    def on_estop(self, engaged: bool, now_s: float) -> str:
        self._watch_clock(now_s)
        if engaged:
            self.core.estop(now_s)
            return "e-stop latched: idle rows only; call ~/reset"
        return "e-stop stays latched until ~/reset" if self.core.estopped else "e-stop not engaged"

    def reset(self, now_s: float) -> str:
        self._watch_clock(now_s)
        self.core.reset(now_s)
        return f"new episode: e-stop cleared, {self.config.warmup_steps} no-op steps, then a new chunk"

    def count(self, reason: str) -> None:
        self.rejections.count(reason)

    def step(self, now_s: float) -> RowStep:
        self._watch_clock(now_s)
        row = self.last_row = self.core.step(now_s)
        out = RowStep(row, request=self.core.take_request(now_s))
        if row.values is None or (row.kind == "idle" and not self.p["publish_idle"]):
            return out
        for topic, cols in self.topics.items():
            out.messages.append(RowMessage(topic, [float(row.values[c]) for c in cols], row.kind))
        self.messages_sent += len(out.messages)
        return out

    def diagnostics(self, now_s: float) -> list[DiagStatus]:
        m = self.core.metrics
        st = DiagStatus("row executor", 0, "ok")
        if self.core.estopped:
            st.escalate(2, "E-STOP latched (call ~/reset)")
        elif self.last_row is not None and self.last_row.kind == "idle":
            st.escalate(1, f"idle: {self.last_row.reason}")
        st.values += [
            ("phase", self.core.phase),
            ("action space", self.config.action_space),
            ("rows per chunk", str(self.config.replace_execute_steps)),
            ("row period (s)", f"{self.step_period_s:.4g}"),
            ("episode step", str(self.core.step_index)),
            ("rows", str(m.rows)), ("warm-up steps", str(m.warmup_steps)),
            ("chunks accepted", str(m.chunks_accepted)), ("blocks completed", str(m.blocks_completed)),
            ("chunk requests", str(m.requests)), ("wait steps (last / max)", f"{m.last_wait_steps} / "
                                                                            f"{m.max_wait_steps}"),
            ("clipped rows", str(m.clipped_rows)),
            ("clock resets (time base changes)", str(m.clock_jumps)),
            ("chunk rate (Hz)", f"{self.chunk_rate.rate_hz(now_s):.2f}"),
            ("messages sent", str(self.messages_sent)),
        ]
        st.values += [(f"idle steps {k}", str(v)) for k, v in sorted(m.idle.items()) if v]
        st.values += [(f"core refused {k}", str(v)) for k, v in sorted(m.rejections.items()) if v]
        st.values += [(f"rejected {k}", str(v)) for k, v in sorted(self.rejections.as_dict().items())]
        return [st]
