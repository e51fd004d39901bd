"""The SQLite adapter of the event store (aiosqlite). SQLite has one writer at a time: every
writing transaction begins IMMEDIATE (`shared.eventstore.engine`), so writers queue on the busy
timeout instead of failing to upgrade a read lock, and an append, statement by statement, runs
with no other writer in between."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Update, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.events import Event, encode
from shared.eventstore.engine import WRITE_OPTION
from shared.eventstore.errors import EVENT_ID_UNIQUE, ConcurrencyError, unique_violation
from shared.eventstore.schema import event_positions, inbox, outbox
from shared.eventstore.schema import events as events_table
from shared.eventstore.store import SqlEventStore, inbox_hits
from shared.eventstore.unit_of_work import UnitOfWork, stream_version_query


class SqliteUnitOfWork(UnitOfWork):
    async def _append(
        self,
        stream_id: str,
        expected_version: int | None,
        events: Sequence[Event],
        recorded_at: datetime,
    ) -> tuple[int, int]:
        """Statement by statement: the transaction began IMMEDIATE, so no other writer runs."""
        count = len(events)
        result = await self.connection.execute(
            _bump(count).returning(
                event_positions.c.last_position, stream_version_query(stream_id).scalar_subquery()
            )
        )
        last_position, version = result.one()
        if expected_version is not None and version != expected_version:
            # Give the positions back so the counter stays gap-free even if the caller catches
            # the error and commits the rest of its work.
            await self.connection.execute(_bump(-count))
            raise ConcurrencyError(stream_id, expected_version, version)
        first_position = last_position - count + 1
        try:
            await self.connection.execute(
                insert(events_table),
                [
                    _event_row(event, stream_id, first_position + index, version + 1 + index)
                    | {"recorded_at": recorded_at}
                    for index, event in enumerate(events)
                ],
            )
        except IntegrityError as error:
            # SQLite names the column, not the constraint.
            constraint = EVENT_ID_UNIQUE if "events.event_id" in str(error.orig) else None
            raise unique_violation(constraint, stream_id, expected_version, events) from error
        await self.connection.execute(
            insert(outbox),
            [
                {
                    "event_id": event.event_id,
                    "routing_key": event.event_type,
                    "body": encode(event),
                    "created_at": recorded_at,
                }
                for event in events
            ],
        )
        return first_position, version


class SqliteEventStore(SqlEventStore):
    unit_of_work_type = SqliteUnitOfWork

    async def record_handled(self, service: str, event_ids: Collection[UUID]) -> set[UUID]:
        recorded_at = datetime.now(UTC)
        async with self.unit_of_work() as uow:  # BEGIN IMMEDIATE: no other writer in between
            new = set(event_ids) - await inbox_hits(uow.connection, service, event_ids)
            if new:
                await uow.connection.execute(
                    insert(inbox),
                    [
                        {"service": service, "event_id": event_id, "processed_at": recorded_at}
                        for event_id in new
                    ],
                )
            return new

    @asynccontextmanager
    async def _writing_connection(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as connection:
            await connection.execution_options(**{WRITE_OPTION: True})
            yield connection


def _bump(count: int) -> Update:
    return (
        update(event_positions)
        .where(event_positions.c.id == 1)
        .values(last_position=event_positions.c.last_position + count)
    )


def _event_row(event: Event, stream_id: str, position: int, version: int) -> dict[str, Any]:
    return {
        "position": position,
        "stream_id": stream_id,
        "stream_version": version,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "correlation_id": event.correlation_id,
        "causation_id": event.causation_id,
        "account_id": event.account_id,
        "occurred_at": event.occurred_at,
        "source": event.source,
        "payload": event.payload(),
    }
