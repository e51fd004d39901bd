"""Runs the production execution shell in unit tests: the `Executor` itself (its `handle`, and
its `fire`, which runs a workflow's due timers side by side and merges them, committed once by
the runtime's `PeriodicRunner`) over a SQLite event store in the test's temporary directory,
against a `FakeBroker`, on a fake clock that jumps to the next due timer. So a 30-second
supervision runs in milliseconds, its times can be asserted, and what the tests exercise is the
code that trades; only the timer loop's polling is left out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from services.execution.executor import Executor
from services.execution.machine import SERVICE
from services.execution.state import PlanLine, WorkflowExecution, WorkflowPhase, from_document
from shared.bus.memory import InMemoryBus
from shared.events import Event
from shared.eventstore import service_state, timers
from shared.eventstore.store import SqlEventStore
from shared.messaging.consumer import Consumer
from shared.service.runtime import PeriodicRunner
from shared.settings import Settings, load_settings
from tests.integration.execution.world import message, plan_event
from tests.unit.execution.broker_fake import FakeBroker

T0 = datetime(2026, 11, 25, 20, 45, tzinfo=UTC)
WORKFLOW = "wf-1"
MAX_STEPS = 500
LEASE_S = 60.0

E = TypeVar("E", bound=Event)


def line(symbol: str, action: str, amount: str, target_weight: str = "0.5") -> PlanLine:
    return PlanLine(symbol, action, Decimal(amount), Decimal(target_weight))  # type: ignore[arg-type]


def workflow(
    *lines: PlanLine, phase: WorkflowPhase = WorkflowPhase.CANCELLING_STALE
) -> WorkflowExecution:
    """A workflow's state as the executor's plan handler makes it, for the pure rules."""
    return WorkflowExecution(
        workflow_id=WORKFLOW,
        account_id="default",
        plan_id="7f1b5a7e-0d38-5c5f-9b6e-2f4f9e0c1a11",
        plan_event_id="8d5c0f3e-7a43-4c1d-9a3e-1b2c3d4e5f60",
        phase=phase,
        lines=lines,
        started_at=T0 - timedelta(seconds=5),
    )


@dataclass
class Machine:
    """Starts a run on one migrated store (each test has its own)."""

    store: SqlEventStore

    async def start(self, broker: FakeBroker, lines: list[PlanLine], **settings: Any) -> MachineRun:
        """Deliver the plan to the executor's `RebalancePlanned` handler, as the consumer does;
        the phase it opens leaves its price timers due at T0."""
        run = MachineRun(broker, load_settings(**settings), self.store)
        event = plan_event(
            WORKFLOW,
            [
                (item.symbol, item.action, str(item.trade_amount), str(item.target_weight))
                for item in lines
            ],
        )
        planned = event.model_copy(update={"occurred_at": T0 - timedelta(seconds=5)})
        consumer = Consumer(SERVICE, self.store, InMemoryBus(), run.executor.handle, [])
        await consumer.handle_message(message(planned))
        await run.refresh()
        return run


@dataclass
class MachineRun:
    broker: FakeBroker
    settings: Settings
    store: SqlEventStore
    now: datetime = T0
    executor: Executor = field(init=False)
    state: WorkflowExecution = field(init=False)
    version: int = 0
    """The stored state's version: one more per committed batch."""
    events: list[Event] = field(default_factory=list)
    fired: list[tuple[datetime, timers.Timer]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.executor = Executor(
            self.settings, lambda _account: self.broker, clock=lambda: self.now, jitter=lambda: 0.0
        )

    async def step(self) -> bool:
        """Move the clock to the earliest armed timer and fire, in one executor batch, every
        timer due by then; False when nothing is armed."""
        armed = await self.pending()
        if not armed:
            return False
        self.now = max(self.now, armed[0].due_at)
        due = await timers.claim_due(self.store, SERVICE, self.now, LEASE_S)
        self.fired.extend((self.now, timer) for timer in due)
        await PeriodicRunner(SERVICE, self.store).record(
            await self.executor.fire(self.store, WORKFLOW, due)
        )
        await self.refresh()
        return True

    async def run_to_end(self) -> None:
        for _ in range(MAX_STEPS):
            if self.state.phase is WorkflowPhase.DONE or not await self.step():
                return
        raise AssertionError(f"the workflow did not end within {MAX_STEPS} steps")

    async def pending(self) -> list[timers.Timer]:
        return await timers.pending(self.store, SERVICE, WORKFLOW)

    async def refresh(self) -> None:
        stored = await service_state.load(self.store, SERVICE, WORKFLOW)
        assert stored is not None, "the plan was not taken"
        self.state = from_document(stored.document)
        self.version = stored.version
        self.events = [recorded.event for recorded in await self.store.read_correlation(WORKFLOW)]

    def of(self, event_class: type[E]) -> list[E]:
        return [event for event in self.events if isinstance(event, event_class)]

    def seconds(self, moment: datetime) -> float:
        return (moment - T0).total_seconds()
