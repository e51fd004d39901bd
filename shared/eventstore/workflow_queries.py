"""Read-side questions about workflows that no single stream answers: which runs started on a
date, and which runs have not finished. Both return workflow (correlation) ids; the events of a
run are then read with `SqlEventStore.read_correlation`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.eventstore.schema import events
from shared.workflow import TERMINAL_EVENT_TYPES

if TYPE_CHECKING:
    from shared.eventstore.store import SqlEventStore


@dataclass(frozen=True)
class UnfinishedWorkflow:
    workflow_id: str
    last_event_at: datetime


async def started_in_streams(store: SqlEventStore, *stream_patterns: str) -> list[str]:
    """Ids of the workflows whose `WorkflowStarted` lies in a stream matching one of the SQL
    LIKE `stream_patterns`, oldest first."""
    query = (
        select(events.c.correlation_id)
        .where(
            events.c.event_type == "WorkflowStarted",
            or_(*(events.c.stream_id.like(pattern) for pattern in stream_patterns)),
        )
        .order_by(events.c.position)
    )
    async with store.engine.connect() as connection:
        return [str(row[0]) for row in await connection.execute(query)]


async def started_accounts(store: SqlEventStore) -> list[str]:
    """Every account that has started a workflow: the accounts of the installation, which a
    halt of every account names (docs/trading-rules.md, Halt)."""
    query = (
        select(events.c.account_id)
        .where(events.c.event_type == "WorkflowStarted")
        .distinct()
        .order_by(events.c.account_id)
    )
    async with store.engine.connect() as connection:
        return [str(row[0]) for row in await connection.execute(query)]


async def unfinished_since(
    connection: AsyncConnection, started_after: datetime
) -> list[UnfinishedWorkflow]:
    """Workflows started (recorded) after `started_after` with no terminal event yet, with the
    time of their latest event — what the deadline watchdog looks at (through
    `EventStoreReader.unfinished_workflows`)."""
    started = (
        select(events.c.correlation_id)
        .where(events.c.event_type == "WorkflowStarted", events.c.recorded_at > started_after)
        .scalar_subquery()
    )
    finished = func.sum(case((events.c.event_type.in_(TERMINAL_EVENT_TYPES), 1), else_=0))
    query = (
        select(
            events.c.correlation_id,
            func.max(events.c.occurred_at, type_=events.c.occurred_at.type),
        )
        .where(and_(events.c.correlation_id.in_(started)))
        .group_by(events.c.correlation_id)
        .having(finished == 0)
    )
    rows = (await connection.execute(query)).all()
    return [UnfinishedWorkflow(str(row[0]), row[1]) for row in rows]


async def requested_orders(
    connection: AsyncConnection, workflow_id: str | None = None
) -> dict[str, str]:
    """The workflow of each client order id recorded in an `OrderRequested` (only
    `workflow_id`'s, when given): the id itself does not say, and ids of every format this
    system has used are found the same way (docs/trading-rules.md, Client order ids)."""
    client_order_id = events.c.payload["client_order_id"].as_string()
    query = select(client_order_id, events.c.correlation_id).where(
        events.c.event_type == "OrderRequested"
    )
    if workflow_id is not None:
        query = query.where(events.c.correlation_id == workflow_id)
    return {str(row[0]): str(row[1]) for row in await connection.execute(query)}
