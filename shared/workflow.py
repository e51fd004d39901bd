"""What a workflow is: its kind, the steps that answer its events with the service that runs
each, and the one fold over its recorded events that says where it stands.

Every "is this workflow finished?", "which step should answer now?" and "what is its status?"
is answered by `workflow_state`, so the services, the deadline watchdog, the workflow API,
notify and replay cannot come to different answers about the same events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from shared.events import Event, WorkflowCompleted, WorkflowFailed, WorkflowStarted
from shared.events.types import FailureStep

Status = Literal["running", "completed", "failed"]
StepName = FailureStep | Literal["notification"]


class WorkflowKind(StrEnum):
    """What a workflow is run for. The value is what its events record as `workflow_type`; the
    daily run was the only kind when that field was introduced, and records `trading`."""

    DAILY = "trading"
    LIQUIDATION = "liquidation"
    """A halt's sale of everything (`alchemiser halt --liquidate`): no strategy, a target of
    all cash, planned and executed like a daily run (docs/trading-rules.md, Halt)."""
    DRY_RUN = "dry_run"
    """Signal, plan and order preview against the current account, with nothing sent to the
    broker (docs/trading-rules.md, Dry runs): the same steps, execution branching where it
    would record an order's intent."""


RUNS_WHILE_HALTED = frozenset({WorkflowKind.LIQUIDATION, WorkflowKind.DRY_RUN})
"""The kinds a halted account still runs: the halt's own liquidation, and dry runs, which
never reach the broker."""

DRY_RUN_ID_PREFIX = "dry-run-"
"""A dry run's id starts with it: a namespace of its own, so a fold over the whole store (the
P&L) can leave dry runs out without reading each workflow's start."""


def is_dry_run_id(workflow_id: str) -> bool:
    return workflow_id.startswith(DRY_RUN_ID_PREFIX)


@dataclass(frozen=True)
class Step:
    """One step of a workflow: the service that runs it and the event types it answers."""

    name: StepName
    service: str
    follows: tuple[str, ...]

    @property
    def failure_step(self) -> FailureStep | None:
        """What a failure of this step is recorded as; None for the notification, whose
        failures are recorded in `NotificationSent` and never fail the workflow."""
        if self.name == "notification":
            return None
        return self.name


TERMINAL_EVENT_TYPES = ("WorkflowCompleted", "WorkflowFailed")
"""The events that finish a workflow; the first one recorded decides how it ended."""

SIGNAL_GENERATION = Step("signal_generation", "strategy", ("WorkflowStarted",))
PORTFOLIO_ANALYSIS = Step("portfolio_analysis", "portfolio", ("SignalGenerated",))
TRADE_EXECUTION = Step("trade_execution", "execution", ("RebalancePlanned",))
NOTIFICATION = Step("notification", "notify", TERMINAL_EVENT_TYPES)
"""Reports how the workflow ended; it reads the rest of the workflow from the store, so it
answers only the two endings."""
LIQUIDATION_PLANNING = Step("portfolio_analysis", "portfolio", ("WorkflowStarted",))
"""A liquidation has no signal: portfolio plans all cash from its start."""

STEPS: dict[WorkflowKind, tuple[Step, ...]] = {
    WorkflowKind.DAILY: (SIGNAL_GENERATION, PORTFOLIO_ANALYSIS, TRADE_EXECUTION, NOTIFICATION),
    WorkflowKind.LIQUIDATION: (LIQUIDATION_PLANNING, TRADE_EXECUTION, NOTIFICATION),
    WorkflowKind.DRY_RUN: (SIGNAL_GENERATION, PORTFOLIO_ANALYSIS, TRADE_EXECUTION, NOTIFICATION),
}
"""The steps of each kind, in the order a workflow goes through them."""

HALT_EVENT_TYPES = ("TradingHalted", "TradingResumed")
"""The kill switch's events (`shared.events.control`): execution cancels open orders on a halt,
notify announces both; they belong to no workflow's steps."""

ANSWERED_EVENT_TYPES = frozenset(
    event_type for steps in STEPS.values() for step in steps for event_type in step.follows
) | frozenset(HALT_EVENT_TYPES)
"""The events some step answers: the only ones that must reach a queue. The others (orders,
`TradeExecuted`, `NotificationSent`) are facts for the store, read from it by whoever needs
them."""


def follows_of(service: str) -> tuple[str, ...]:
    """The event types a service's steps answer, over every kind of workflow."""
    return tuple(
        sorted(
            {
                event_type
                for steps in STEPS.values()
                for step in steps
                if step.service == service
                for event_type in step.follows
            }
        )
    )


def answering_service(event_type: str, kind: WorkflowKind = WorkflowKind.DAILY) -> str | None:
    """The service whose step of `kind` answers `event_type`: of the services bound to an event,
    the one a poisoned copy of it fails the workflow for (portfolio also consumes
    `WorkflowStarted`, for a liquidation only, and must not fail a daily run a second time)."""
    return next((step.service for step in STEPS[kind] if event_type in step.follows), None)


def step_named(name: str, kind: WorkflowKind = WorkflowKind.DAILY) -> Step | None:
    return next((step for step in STEPS[kind] if step.name == name), None)


def failure_step_of(service: str, kind: WorkflowKind = WorkflowKind.DAILY) -> FailureStep | None:
    """The step a service's failure is recorded as; None for a service whose failures never
    fail a workflow (notify, or one that runs no step)."""
    step = next((step for step in STEPS[kind] if step.service == service), None)
    return step.failure_step if step is not None else None


@dataclass(frozen=True)
class WorkflowState:
    """Where one workflow stands according to its recorded events."""

    workflow_id: str
    account_id: str
    kind: WorkflowKind
    status: Status
    awaiting: Step
    """The furthest step the events have reached: the one that should answer next, and for a
    finished workflow the notification."""
    started: WorkflowStarted | None
    ending: WorkflowCompleted | WorkflowFailed | None
    """The first completion or failure; a later one cannot reopen or flip the workflow."""
    last_event_at: datetime

    @property
    def finished(self) -> bool:
        return self.ending is not None

    @property
    def dry_run(self) -> bool:
        return self.kind is WorkflowKind.DRY_RUN

    @property
    def reported(self) -> bool:
        """Whether notify reports it on its channels: a dry run only when asked."""
        return self.started is None or self.started.notify

    def is_past(self, step: StepName) -> bool:
        """A later step has begun (or the workflow finished), so `step` has nothing left to do;
        a late or repeated event of an earlier step does not take the workflow back."""
        names = [each.name for each in STEPS[self.kind]]
        return names.index(self.awaiting.name) > names.index(step)


def workflow_state(events: Sequence[Event]) -> WorkflowState | None:
    """Fold one workflow's events, in store order (which is causal order), into where it
    stands; None when nothing is recorded for it."""
    if not events:
        return None
    started = next((e for e in events if isinstance(e, WorkflowStarted)), None)
    ending = next((e for e in events if isinstance(e, WorkflowCompleted | WorkflowFailed)), None)
    kind = WorkflowKind(started.workflow_type) if started is not None else WorkflowKind.DAILY
    recorded = {event.event_type for event in events}
    steps = STEPS[kind]
    reached = [step for step in steps if recorded.intersection(step.follows)]
    status: Status = "running"
    if isinstance(ending, WorkflowCompleted):
        status = "completed"
    elif isinstance(ending, WorkflowFailed):
        status = "failed"
    return WorkflowState(
        workflow_id=events[0].correlation_id,
        account_id=events[0].account_id,
        kind=kind,
        status=status,
        awaiting=reached[-1] if reached else steps[0],
        started=started,
        ending=ending,
        last_event_at=max(event.occurred_at for event in events),
    )


def is_finished(events: Sequence[Event]) -> bool:
    state = workflow_state(events)
    return state is not None and state.finished
