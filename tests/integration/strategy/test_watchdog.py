"""The deadline watchdog fails a stalled workflow once, naming the step that did not answer."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.strategy.watchdog import deadline_failure, deadline_watchdog
from services.strategy.workflow_status import project_workflow
from shared.events.workflow import WorkflowFailed, WorkflowStarted
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.service.runtime import PeriodicRunner
from tests.servers import create_postgres_database, drop_postgres_database
from tests.unit.events.examples import (
    order_events,
    rebalance_planned,
    signal_generated,
    workflow_failed,
    workflow_started,
)

DEADLINE_S = 600.0


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlEventStore]:
    on_postgres = request.param == "postgresql"
    url = (
        await create_postgres_database()
        if on_postgres
        else f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    )
    await upgrade(url)
    event_store = SqlEventStore(url)
    yield event_store
    await event_store.close()
    if on_postgres:
        await drop_postgres_database(url)


async def fail_overdue(store: SqlEventStore, deadline_s: float, now: dt.datetime) -> int:
    """One round of the watchdog at `now`, committed as the runtime commits it."""
    watchdog = deadline_watchdog(deadline_s, clock=lambda: now)
    return await PeriodicRunner("strategy", store).run_once(watchdog)


async def started(store: SqlEventStore) -> WorkflowStarted:
    event = WorkflowStarted(
        correlation_id=str(uuid.uuid4()),
        account_id="default",
        occurred_at=dt.datetime.now(dt.UTC),
        source="strategy",
        requested_by="test",
        configuration={"live_trading": False},
        trading_date=dt.date(2024, 11, 26),
        force=True,
        idempotency_key="paper:default:2024-11-26",
    )
    async with store.unit_of_work() as uow:
        await uow.append(f"daily/{uuid.uuid4()}", 0, [event])
    return event


async def test_a_workflow_past_its_deadline_fails_once_naming_the_stalled_step(
    store: SqlEventStore,
) -> None:
    start = await started(store)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=DEADLINE_S + 1)

    assert await fail_overdue(store, DEADLINE_S, later) == 1
    assert await fail_overdue(store, DEADLINE_S, later) == 0  # failed runs are not unfinished

    events = [item.event for item in await store.read_correlation(start.correlation_id)]
    failure = events[-1]
    assert isinstance(failure, WorkflowFailed)
    assert failure.deadline_exceeded
    assert failure.stalled_step == "signal_generation"
    assert failure.causation_id == str(start.event_id)
    assert "strategy service did not answer" in failure.failure_reason
    view = project_workflow(events)
    assert view is not None and view.status == "failed"


async def test_a_workflow_within_its_deadline_is_left_running(store: SqlEventStore) -> None:
    await started(store)
    assert await fail_overdue(store, DEADLINE_S, dt.datetime.now(dt.UTC)) == 0


def test_a_workflow_stalled_after_its_plan_names_execution_whatever_came_last() -> None:
    events = [workflow_started(), signal_generated(), rebalance_planned(), *order_events()]

    failure = deadline_failure(events, DEADLINE_S, dt.datetime.now(dt.UTC))

    assert failure is not None
    assert failure.stalled_step == failure.failure_step == "trade_execution"
    assert "the execution service did not answer" in failure.failure_reason
    assert failure.causation_id == str(events[-1].event_id)


def test_a_workflow_that_finished_after_it_was_found_overdue_is_not_failed() -> None:
    events = [workflow_started(), signal_generated(), workflow_failed()]

    assert deadline_failure(events, DEADLINE_S, dt.datetime.now(dt.UTC)) is None
