"""A store holding several hand-built workflows (tests/unit/notify/workflows.py), each event
appended to its source service's stream as the services do, with a notification after each
ending; the last a halt's liquidation, after the halt of the account `default` was recorded
and announced; and, for sizes a test cannot append one by one, thousands of them written in
bulk."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from shared.events import (
    Event,
    NotificationSent,
    RebalancePlanned,
    WorkflowCompleted,
    WorkflowConfiguration,
    WorkflowFailed,
    WorkflowStarted,
)
from shared.events.control import CONTROL_STREAM, TradingHalted, TradingResumed
from shared.eventstore.schema import event_positions, events
from shared.eventstore.sqlite import _event_row
from shared.eventstore.store import SqlEventStore
from tests.unit.notify import workflows


def runs() -> list[workflows.Workflow]:
    return [
        notified(made)
        for made in (
            workflows.success(),
            workflows.partial_failure(),
            workflows.execution_stalled(),
            workflows.strategy_failure(),
            workflows.no_trade(),
            liquidation(),
        )
    ]


def notified(workflow: workflows.Workflow) -> workflows.Workflow:
    """The workflow with the email notify sends after its ending."""
    ending = next(e for e in workflow.events if isinstance(e, WorkflowCompleted | WorkflowFailed))
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
    return workflow


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


ACCOUNTS = 20
KINDS: tuple[tuple[Callable[[], workflows.Workflow], int], ...] = (
    (workflows.success, 70),
    (workflows.no_trade, 15),
    (workflows.partial_failure, 7),
    (workflows.execution_stalled, 4),
    (workflows.strategy_failure, 4),
)
INSERT_BATCH = 2000


def recorded_workflows(count: int, seed: int) -> Iterator[tuple[str, list[Event]]]:
    """(stream owner, events) of `count` workflows: workflow i belongs to account i mod 20 and
    runs on day i div 20, counted back from the hand-built workflows' date."""
    chooser = random.Random(seed)
    makers = [maker for maker, weight in KINDS for _ in range(weight)]
    days = count // ACCOUNTS + 1
    for index in range(count):
        made = notified(chooser.choice(makers)())
        shift = timedelta(days=index // ACCOUNTS - days)
        account = f"acct-{index % ACCOUNTS:02d}"
        yield made.id, [_moved(event, shift, account) for event in made.events]


def _moved(event: Event, shift: timedelta, account: str) -> Event:
    update_: dict[str, Any] = {"occurred_at": event.occurred_at + shift, "account_id": account}
    if isinstance(event, RebalancePlanned):
        update_["snapshot"] = event.snapshot.model_copy(
            update={"as_of": event.snapshot.as_of + shift}
        )
    return event.model_copy(update=update_)


async def write_fixture(store: SqlEventStore, count: int, seed: int) -> int:
    """`count` workflows' events straight into `events`, after those stored, in a few large
    inserts (one stream per workflow and service, as the services append them), and the
    position counter past them; returns the last position. No outbox rows: nothing relays
    them. For the benchmark (benchmarks/web.py) and the fault test of the web service."""
    rows: list[dict[str, Any]] = []
    versions: dict[str, int] = {}
    now = datetime.now(UTC)
    async with store.engine.begin() as connection:
        position = int(await connection.scalar(select(event_positions.c.last_position)) or 0)
        for workflow_id, made in recorded_workflows(count, seed):
            for event in made:
                position += 1
                stream = f"{workflow_id}/{event.source}"
                versions[stream] = versions.get(stream, 0) + 1
                rows.append(
                    {**_event_row(event, stream, position, versions[stream]), "recorded_at": now}
                )
            if len(rows) >= INSERT_BATCH:
                await connection.execute(insert(events), rows)
                rows = []
            versions.clear()
        if rows:
            await connection.execute(insert(events), rows)
        await connection.execute(
            update(event_positions).where(event_positions.c.id == 1).values(last_position=position)
        )
    return position
