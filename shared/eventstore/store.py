"""The event store over SQLAlchemy 2 async Core: PostgreSQL (asyncpg) and SQLite (aiosqlite).

Global positions are gap-free and in commit order. Every append first updates the one-row
`event_positions` counter (`UPDATE … RETURNING`), which takes that row's lock until the
transaction ends, so appends are serialised: positions are handed out in the order the
transactions commit, and a transaction that rolls back returns its positions with it. A reader
paging `read_all(after_position)` therefore never skips an event that commits later with a lower
position. The price is one writer at a time per database — the append transaction is short,
and a broker call is never made inside one (trading spec §3.16). On SQLite every unit of work
begins IMMEDIATE, which serialises writers the same way.

The stream's version is read after the counter lock is held, so the optimistic check against
`expected_version` sees every committed append; the unique `(stream_id, stream_version)`
constraint stays as the last line of defence.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Row, Select, Update, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.events import Event, decode_document, encode
from shared.events.envelope import ENVELOPE_FIELDS
from shared.eventstore.engine import WRITE_OPTION, create_store_engine
from shared.eventstore.errors import (
    ConcurrencyError,
    DuplicateEventError,
    DuplicateInboxError,
    EventStoreUnavailableError,
)
from shared.eventstore.migrations import describe
from shared.eventstore.records import OutboxMessage, RecordedEvent
from shared.eventstore.schema import event_positions, inbox, outbox
from shared.eventstore.schema import events as events_table
from shared.settings import normalise_database_url

_EXCLUDED_FROM_PAYLOAD = set(ENVELOPE_FIELDS)
_APPEND_FUNCTION_CALL = text(
    "SELECT o_first_position, o_stream_version FROM alchemiser_append("
    ":stream_id, :expected_version, :event_ids, :event_types, :schema_versions, "
    ":correlation_ids, :causation_ids, :account_ids, :occurred_at, :sources, :payloads, "
    ":bodies, :recorded_at)"
)
_EVENT_COLUMNS = (
    events_table.c.position,
    events_table.c.stream_id,
    events_table.c.stream_version,
    events_table.c.event_id,
    events_table.c.event_type,
    events_table.c.schema_version,
    events_table.c.correlation_id,
    events_table.c.causation_id,
    events_table.c.account_id,
    events_table.c.occurred_at,
    events_table.c.source,
    events_table.c.payload,
    events_table.c.recorded_at,
)


class UnitOfWork:
    """One database transaction: read stream versions, check the inbox, append events with
    their outbox rows. Obtained from `SqlEventStore.unit_of_work()`; never shared across tasks.
    """

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        self._postgres = connection.dialect.name == "postgresql"
        self._holds_position_lock = False

    @property
    def connection(self) -> AsyncConnection:
        """The transaction's connection, for the tables a service keeps beside its events
        (durable timers, service state) so they commit or roll back with them."""
        return self._connection

    async def stream_version(self, stream_id: str) -> int:
        """The stream's last version; 0 for a stream with no events."""
        result = await self._connection.execute(_stream_version_query(stream_id))
        return int(result.scalar_one())

    async def append(
        self, stream_id: str, expected_version: int | None, events: Sequence[Event]
    ) -> list[RecordedEvent]:
        """Append `events` to the stream after `expected_version` (None: at its current end),
        and one outbox row per event, in this transaction. A stream at another version raises
        ConcurrencyError; nothing is ever overwritten."""
        if not events:
            return []
        if expected_version is not None and expected_version < 0:
            raise ValueError(f"stream {stream_id!r}: expected_version must be ≥ 0 or None")
        recorded_at = datetime.now(UTC)
        if self._postgres:
            first_position, actual = await self._append_postgres(
                stream_id, expected_version, events, recorded_at
            )
        else:
            first_position, actual = await self._append_portable(
                stream_id, expected_version, events, recorded_at
            )
        self._holds_position_lock = True
        return [
            RecordedEvent(first_position + index, stream_id, actual + 1 + index, event, recorded_at)
            for index, event in enumerate(events)
        ]

    async def seen(self, service: str, event_id: UUID) -> bool:
        """Whether `service` already processed `event_id` (a redelivery to acknowledge)."""
        result = await self._connection.execute(
            select(inbox.c.event_id).where(inbox.c.service == service, inbox.c.event_id == event_id)
        )
        return result.first() is not None

    async def record_inbox(self, service: str, event_id: UUID) -> None:
        """Record that `service` processed `event_id`; commits with the events it appends.

        The position counter is locked first, as `append` does, so that every writing unit of
        work takes its locks in the same order (counter, then inbox row) whichever call comes
        first: two consumers of a redelivered event queue instead of deadlocking, and the second
        gets DuplicateInboxError.
        """
        await self._lock_positions()
        try:
            await self._connection.execute(
                insert(inbox).values(
                    service=service, event_id=event_id, processed_at=datetime.now(UTC)
                )
            )
        except IntegrityError as error:
            raise DuplicateInboxError(service, event_id) from error

    async def _append_postgres(
        self,
        stream_id: str,
        expected_version: int | None,
        events: Sequence[Event],
        recorded_at: datetime,
    ) -> tuple[int, int]:
        """One round trip: the `alchemiser_append` function of the migrations locks the
        counter, checks the version and writes events and outbox rows."""
        try:
            result = await self._connection.execute(
                _APPEND_FUNCTION_CALL,
                {
                    "stream_id": stream_id,
                    "expected_version": expected_version,
                    "event_ids": [event.event_id for event in events],
                    "event_types": [event.event_type for event in events],
                    "schema_versions": [event.schema_version for event in events],
                    "correlation_ids": [event.correlation_id for event in events],
                    "causation_ids": [event.causation_id for event in events],
                    "account_ids": [event.account_id for event in events],
                    "occurred_at": [event.occurred_at for event in events],
                    "sources": [event.source for event in events],
                    "payloads": [
                        event.model_dump_json(exclude=_EXCLUDED_FROM_PAYLOAD) for event in events
                    ],
                    "bodies": [encode(event) for event in events],
                    "recorded_at": recorded_at,
                },
            )
        except IntegrityError as error:
            raise _append_conflict(error, stream_id, expected_version, events) from error
        first_position, actual = result.one()
        if first_position is None:
            raise ConcurrencyError(stream_id, expected_version, actual)
        return int(first_position), int(actual)

    async def _append_portable(
        self,
        stream_id: str,
        expected_version: int | None,
        events: Sequence[Event],
        recorded_at: datetime,
    ) -> tuple[int, int]:
        """Statement by statement (SQLite, where a round trip is a function call)."""
        count = len(events)
        result = await self._connection.execute(
            _bump(count).returning(
                event_positions.c.last_position, _stream_version_query(stream_id).scalar_subquery()
            )
        )
        last_position, actual = result.one()
        self._holds_position_lock = True
        if expected_version is not None and actual != expected_version:
            # Give the positions back so the counter stays gap-free even if the caller catches
            # the error and commits the rest of its work.
            await self._connection.execute(_bump(-count))
            raise ConcurrencyError(stream_id, expected_version, actual)
        first_position = last_position - count + 1
        try:
            await self._connection.execute(
                insert(events_table),
                [
                    _event_row(event, stream_id, first_position + index, actual + 1 + index)
                    | {"recorded_at": recorded_at}
                    for index, event in enumerate(events)
                ],
            )
            await self._connection.execute(
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
        except IntegrityError as error:
            raise _append_conflict(error, stream_id, expected_version, events) from error
        return first_position, actual

    async def _lock_positions(self) -> None:
        if self._holds_position_lock:
            return
        await self._connection.execute(
            select(event_positions.c.last_position)
            .where(event_positions.c.id == 1)
            .with_for_update()
        )
        self._holds_position_lock = True


class SqlEventStore:
    """The system of record (DESIGN §4). The engine is created on first use."""

    def __init__(self, database_url: str, *, pool_size: int = 5) -> None:
        self._database_url = normalise_database_url(database_url)
        self._pool_size = pool_size
        self._engine: AsyncEngine | None = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = create_store_engine(self._database_url, pool_size=self._pool_size)
        return self._engine

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def ping(self) -> None:
        """Raise EventStoreUnavailableError when the database does not answer."""
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (DBAPIError, OSError) as error:
            raise EventStoreUnavailableError(
                f"event store {describe(self._database_url)} is unreachable: {error}"
            ) from error

    def unit_of_work(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """One transaction: committed when the block exits, rolled back when it raises."""
        return self._unit_of_work()

    @asynccontextmanager
    async def _unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        async with self.engine.connect() as connection:
            if self.is_sqlite:
                await connection.execution_options(**{WRITE_OPTION: True})
            async with connection.begin():
                yield UnitOfWork(connection)

    async def read_stream(self, stream_id: str) -> list[RecordedEvent]:
        return await self._read(
            select(*_EVENT_COLUMNS)
            .where(events_table.c.stream_id == stream_id)
            .order_by(events_table.c.stream_version)
        )

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Up to `limit` events with position > `after_position`, in position order."""
        return await self._read(
            select(*_EVENT_COLUMNS)
            .where(events_table.c.position > after_position)
            .order_by(events_table.c.position)
            .limit(limit)
        )

    async def read_correlation(self, correlation_id: str) -> list[RecordedEvent]:
        """Every event of one workflow, in position (commit) order."""
        return await self._read(
            select(*_EVENT_COLUMNS)
            .where(events_table.c.correlation_id == correlation_id)
            .order_by(events_table.c.position)
        )

    async def pending_outbox(self, limit: int = 500) -> list[OutboxMessage]:
        """Unsent outbox rows, oldest first."""
        async with self.engine.connect() as connection:
            result = await connection.execute(
                select(outbox.c.id, outbox.c.event_id, outbox.c.routing_key, outbox.c.body)
                .where(outbox.c.sent_at.is_(None))
                .order_by(outbox.c.id)
                .limit(limit)
            )
            return [
                OutboxMessage(row.id, row.event_id, row.routing_key, bytes(row.body))
                for row in result
            ]

    async def mark_sent(self, outbox_ids: Sequence[int]) -> None:
        if not outbox_ids:
            return
        async with self.engine.connect() as connection:
            if self.is_sqlite:
                await connection.execution_options(**{WRITE_OPTION: True})
            async with connection.begin():
                await connection.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(list(outbox_ids)), outbox.c.sent_at.is_(None))
                    .values(sent_at=datetime.now(UTC))
                )

    async def outbox_lag(self) -> int:
        """Unsent outbox rows (exported on /metrics)."""
        async with self.engine.connect() as connection:
            result = await connection.execute(
                select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
            )
            return int(result.scalar_one())

    async def _read(self, query: Any) -> list[RecordedEvent]:
        async with self.engine.connect() as connection:
            result = await connection.execute(query)
            return [_recorded(row) for row in result]


def _stream_version_query(stream_id: str) -> Select[int]:
    return select(func.coalesce(func.max(events_table.c.stream_version), 0)).where(
        events_table.c.stream_id == stream_id
    )


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
        "payload": event.model_dump(mode="json", exclude=_EXCLUDED_FROM_PAYLOAD),
    }


def _recorded(row: Row[Any]) -> RecordedEvent:
    document = dict(row.payload)
    document["event_id"] = row.event_id
    document["event_type"] = row.event_type
    document["schema_version"] = row.schema_version
    document["correlation_id"] = row.correlation_id
    document["causation_id"] = row.causation_id
    document["account_id"] = row.account_id
    document["occurred_at"] = row.occurred_at
    document["source"] = row.source
    return RecordedEvent(
        row.position, row.stream_id, row.stream_version, decode_document(document), row.recorded_at
    )


def _append_conflict(
    error: IntegrityError, stream_id: str, expected_version: int | None, events: Sequence[Event]
) -> Exception:
    message = str(error.orig)
    if "uq_events_event_id" in message or "events.event_id" in message:
        return DuplicateEventError(", ".join(str(event.event_id) for event in events))
    if "uq_events_stream_version" in message or "events.stream_id" in message:
        # Only a write that bypassed the position counter can get here; the version it
        # collided with is the closest known lower bound of the stream's version.
        return ConcurrencyError(stream_id, expected_version, expected_version or 0)
    return error
