"""Read-side questions about workflows that no single stream answers: which runs started on a
date, and which runs have not finished. Both return workflow (correlation) ids; the events of a
run are then read with `SqlEventStore.read_correlation`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.eventstore.schema import events
from shared.workflow import TERMINAL_EVENT_TYPES

if TYPE_CHECKING:
    from shared.eventstore.store import SqlEventStore


@dataclass(frozen=True)
class UnfinishedWorkflow:
    workflow_id: str
    last_event_at: datetime


async def started_in_streams(store: SqlEventStore, stream_pattern: str) -> list[str]:
    """Ids of the workflows whose `WorkflowStarted` lies in a stream matching the SQL LIKE
    `stream_pattern`, oldest first."""
    query = (
        select(events.c.correlation_id)
        .where(events.c.event_type == "WorkflowStarted", events.c.stream_id.like(stream_pattern))
        .order_by(events.c.position)
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
