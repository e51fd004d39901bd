"""Drives the execution state machine in memory for unit tests: the steps of `steps.py` and
`machine.py` against a `FakeBroker`, timers kept in a list and fired in due order on a fake
clock, so a 30-second supervision runs in microseconds and the times can be asserted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from services.execution.machine import StepResult, TimerRequest, open_phase
from services.execution.policy import ExecutionPolicy
from services.execution.state import PlanLine, WorkflowExecution, WorkflowPhase
from services.execution.steps import ChainSteps
from shared.events import Event
from shared.settings import Settings, load_settings
from shared.trading import Side
from tests.unit.execution.broker_fake import FakeBroker

T0 = datetime(2026, 11, 25, 20, 45, tzinfo=UTC)
WORKFLOW = "wf-1"
MAX_STEPS = 500

E = TypeVar("E", bound=Event)


def line(symbol: str, action: str, amount: str, target_weight: str = "0.5") -> PlanLine:
    return PlanLine(symbol, action, Decimal(amount), Decimal(target_weight))  # type: ignore[arg-type]


@dataclass
class MachineRun:
    broker: FakeBroker
    settings: Settings
    state: WorkflowExecution
    now: datetime = T0
    timers: list[TimerRequest] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    fired: list[tuple[datetime, TimerRequest]] = field(default_factory=list)

    @classmethod
    def start(cls, broker: FakeBroker, lines: list[PlanLine], **settings: Any) -> MachineRun:
        state = WorkflowExecution(
            workflow_id=WORKFLOW,
            account_id="default",
            plan_id="7f1b5a7e-0d38-5c5f-9b6e-2f4f9e0c1a11",
            plan_event_id="8d5c0f3e-7a43-4c1d-9a3e-1b2c3d4e5f60",
            phase=WorkflowPhase.CANCELLING_STALE,
            lines=tuple(lines),
            started_at=T0 - timedelta(seconds=5),
        )
        run = cls(broker, load_settings(**settings), state)
        run.apply(open_phase(state, Side.SELL, T0, ExecutionPolicy.from_settings(run.settings)))
        return run

    def apply(self, result: StepResult) -> None:
        self.state = result.state
        self.events.extend(result.events)
        self.timers.extend(result.timers)

    async def run_to_end(self) -> None:
        steps = ChainSteps(self.broker, self.settings, clock=lambda: self.now, jitter=lambda: 0.0)
        for _ in range(MAX_STEPS):
            if not self.timers or self.state.phase is WorkflowPhase.DONE:
                return
            self.timers.sort(key=lambda timer: timer.due_at)
            timer = self.timers.pop(0)
            self.now = max(self.now, timer.due_at)
            self.fired.append((self.now, timer))
            self.apply(await steps.fire(self.state, timer.chain, timer.kind, timer.payload))
        raise AssertionError(f"the workflow did not end within {MAX_STEPS} steps")

    def of(self, event_class: type[E]) -> list[E]:
        return [event for event in self.events if isinstance(event, event_class)]

    def seconds(self, moment: datetime) -> float:
        return (moment - T0).total_seconds()
