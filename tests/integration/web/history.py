"""A store holding several hand-built workflows (tests/unit/notify/workflows.py), each event
appended to its source service's stream as the services do, with a notification after each
ending; the last a halt's liquidation, after the halt of the account `default` was recorded
and announced."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, timedelta

from shared.events import (
    Event,
    NotificationSent,
    WorkflowCompleted,
    WorkflowConfiguration,
    WorkflowFailed,
    WorkflowStarted,
)
from shared.events.control import CONTROL_STREAM, TradingHalted, TradingResumed
from shared.eventstore.store import SqlEventStore
from tests.unit.notify import workflows


def runs() -> list[workflows.Workflow]:
    made = [
        workflows.success(),
        workflows.partial_failure(),
        workflows.execution_stalled(),
        workflows.strategy_failure(),
        workflows.no_trade(),
        liquidation(),
    ]
    for workflow in made:
        ending = next(
            e for e in workflow.events if isinstance(e, WorkflowCompleted | WorkflowFailed)
        )
        workflow.add(
            NotificationSent(
                correlation_id=workflow.id,
                causation_id=str(ending.event_id),
                account_id=ending.account_id,
                occurred_at=ending.occurred_at,
                source="notify",
                channel="email",
                status="sent",
                attempts=1,
            )
        )
    return made


HALTED_AT = workflows.STARTED_AT + timedelta(hours=1)
HALT_REASON = "broker outage"


def liquidation() -> workflows.Workflow:
    """A halt's liquidation of `default`, refused by the broker: the market had closed."""
    made = workflows.Workflow()
    made.add(
        WorkflowStarted(
            **{**made._envelope("strategy"), "occurred_at": HALTED_AT},
            workflow_type="liquidation",
            requested_by="operator",
            configuration=WorkflowConfiguration(live_trading=False),
            trading_date=date(2026, 3, 2),
            force=True,
            idempotency_key=f"liquidation:{made.id}:default",
        )
    )
    made.add(
        WorkflowFailed(
            **{**made._envelope("portfolio"), "occurred_at": HALTED_AT + timedelta(seconds=1)},
            failure_reason="the market is closed",
            failure_step="portfolio_analysis",
        )
    )
    return made


def halt() -> list[Event]:
    """The halt of `default` and the notification that announced it: events of no workflow."""
    halted = TradingHalted(
        correlation_id=str(uuid.uuid4()),
        account_id="default",
        occurred_at=HALTED_AT,
        source="strategy",
        reason=HALT_REASON,
        requested_by="operator",
        accounts=("default",),
    )
    announced = NotificationSent(
        correlation_id=halted.correlation_id,
        causation_id=str(halted.event_id),
        account_id="default",
        occurred_at=HALTED_AT,
        source="notify",
        channel="email",
        status="sent",
        attempts=1,
    )
    return [halted, announced]


def events_of(made: list[workflows.Workflow]) -> Iterator[Event]:
    for workflow in made[:-1]:
        yield from workflow.events
    yield from halt()
    yield from made[-1].events


async def record(store: SqlEventStore, event: Event) -> None:
    stream = (
        CONTROL_STREAM
        if isinstance(event, TradingHalted | TradingResumed)
        else f"{event.correlation_id}/{event.source}"
    )
    await store.append(stream, None, [event])
