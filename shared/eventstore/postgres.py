"""Statements the store sends straight to asyncpg on PostgreSQL, on connections of its own.

Each one is a single statement outside any explicit transaction, so it is its own transaction;
units of work, which hold a transaction across several statements, stay on SQLAlchemy and send
only the append statement on their connection's asyncpg driver. The hot paths are here because
of what SQLAlchemy's layers cost per call: a one-event append through a unit of work took
~900 µs of client CPU against ~300 µs for the same call straight on asyncpg, and a decoded
replayed event 32–48 µs against 22–30 µs from asyncpg rows (docs/performance.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.events import Event, encode
from shared.eventstore.documents import payload_json, recorded_event
from shared.eventstore.errors import (
    STREAM_VERSION_UNIQUE,
    ConcurrencyError,
    EventStoreUnavailableError,
    unique_violation,
)
from shared.eventstore.records import InboxEntry, RecordedEvent

_SELECT_EVENTS = (
    "SELECT position, stream_id, stream_version, event_id, event_type, schema_version, "
    "correlation_id, causation_id, account_id, occurred_at, source, payload::text, recorded_at "
    "FROM events "
)
READ_STREAM = _SELECT_EVENTS + "WHERE stream_id = $1 ORDER BY stream_version"
READ_ALL = _SELECT_EVENTS + "WHERE position > $1 ORDER BY position LIMIT $2"
READ_CORRELATION = _SELECT_EVENTS + "WHERE correlation_id = $1 ORDER BY position"
SEEN_AMONG = "SELECT event_id FROM inbox WHERE service = $1 AND event_id = ANY($2::uuid[])"
RECORD_HANDLED = (
    "INSERT INTO inbox (service, event_id, processed_at) "
    "SELECT $1, event_id, $3 FROM unnest($2::uuid[]) AS event_id ORDER BY event_id "
    "ON CONFLICT DO NOTHING RETURNING event_id"
)
"""Rows go in sorted, so two batches holding the same redelivered ids (competing replicas)
wait on one another in one order instead of deadlocking."""
APPEND_HANDLED = """
WITH stream AS (
    SELECT coalesce(max(stream_version), 0) AS version FROM events WHERE stream_id = $1
), counter AS (
    UPDATE event_positions SET last_position = last_position + cardinality($3::uuid[])
    FROM stream WHERE id = 1 AND ($2::integer IS NULL OR stream.version = $2::integer)
    RETURNING last_position - cardinality($3::uuid[]) + 1 AS first_position, stream.version
), appended AS (
    INSERT INTO events (position, stream_id, stream_version, event_id, event_type, schema_version,
                        correlation_id, causation_id, account_id, occurred_at, source, payload,
                        recorded_at)
    SELECT counter.first_position + e.i - 1, $1, counter.version + e.i, e.event_id, e.event_type,
           e.schema_version, e.correlation_id, e.causation_id, e.account_id, e.occurred_at,
           e.source, e.payload::jsonb, $13::timestamptz
    FROM counter, unnest($3::uuid[], $4::text[], $5::integer[], $6::text[], $7::text[],
                         $8::text[], $9::timestamptz[], $10::text[], $11::text[])
         WITH ORDINALITY AS e(event_id, event_type, schema_version, correlation_id, causation_id,
                              account_id, occurred_at, source, payload, i)
), published AS (
    INSERT INTO outbox (event_id, routing_key, body, created_at)
    SELECT o.event_id, o.routing_key, o.body, $13::timestamptz
    FROM counter, unnest($3::uuid[], $4::text[], $12::bytea[])
         WITH ORDINALITY AS o(event_id, routing_key, body, i)
    ORDER BY o.i
), handled AS (
    INSERT INTO inbox (service, event_id, processed_at)
    SELECT $14::text, $15::uuid, $13::timestamptz FROM counter WHERE $14::text IS NOT NULL
)
SELECT counter.first_position, stream.version FROM stream LEFT JOIN counter ON true
"""
"""A delivery's events, their outbox rows and its inbox row as one plain statement: one plan
and one snapshot, where the PL/pgSQL function it replaces (dropped by migration 0003) paid a
snapshot and an executor start per statement. The counter row's lock orders appends,
so positions commit in order and stay gap-free (a version mismatch leaves the counter alone; a
failed statement rolls it back). One statement has one snapshot, taken before it waits for
that lock: the stream version it reads can miss an append committed meanwhile. Its events then
collide with that append's on the stream version (the unique index checks committed rows), and
`append_handled` runs it again in a transaction that takes the lock first (LOCK_POSITIONS), so
its snapshot sees every earlier append. A unit of work takes the lock the same way before it
appends."""
LOCK_POSITIONS = "SELECT last_position FROM event_positions WHERE id = 1 FOR UPDATE"

_SQLALCHEMY_CONNECT_ARGUMENTS = (
    "async_creator_fn",
    "prepared_statement_cache_size",
    "prepared_statement_name_func",
)
"""Connect arguments SQLAlchemy's asyncpg dialect consumes itself; asyncpg would refuse them."""
CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
    # What a statement meets on a connection whose backend was terminated while it sat idle,
    # when the statement starts before asyncpg has processed the close.
    asyncpg.InternalClientError,
    OSError,
)


def event_arrays(events: Sequence[Event]) -> tuple[list[Any], ...]:
    """The columns of `events` as APPEND_HANDLED takes them ($3 to $12)."""
    return (
        [event.event_id for event in events],
        [event.event_type for event in events],
        [event.schema_version for event in events],
        [event.correlation_id for event in events],
        [event.causation_id for event in events],
        [event.account_id for event in events],
        [event.occurred_at for event in events],
        [event.source for event in events],
        [payload_json(event) for event in events],
        [encode(event) for event in events],
    )


class StatementPool:
    """asyncpg connections of their own for the store's single statements. A checkout costs a
    list pop: SQLAlchemy's pool took ~95 µs of client CPU per checkout and return, asyncpg's
    ~30 µs, and a service makes one or two of these statements per message. Connections are
    opened on demand, at most `size` in use at once."""

    def __init__(self, engine: AsyncEngine, size: int, database: str) -> None:
        _, connect_arguments = engine.dialect.create_connect_args(engine.url)
        for sqlalchemy_only in _SQLALCHEMY_CONNECT_ARGUMENTS:
            connect_arguments.pop(sqlalchemy_only, None)
        self._connect_arguments = connect_arguments
        self._database = database
        self._slots = asyncio.Semaphore(size)
        self._idle: list[asyncpg.Connection] = []
        self._closed = False

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A connection outside any transaction: each statement on it is its own. A lost or
        refused connection is raised as EventStoreUnavailableError, which consumers wait out,
        and the idle ones are dropped too: after a database restart all of them are dead."""
        async with self._slots:
            try:
                connection = await self._checkout()
            except CONNECTION_LOST as error:
                raise self._lost(error) from error
            try:
                yield connection
            except CONNECTION_LOST as error:
                connection.terminate()
                raise self._lost(error) from error
            except Exception:
                self._give_back(connection)  # a statement's own error leaves it usable
                raise
            except BaseException:
                connection.terminate()  # interrupted mid-statement: its state is unknown
                raise
            self._give_back(connection)

    async def close(self) -> None:
        """Closes the idle connections; one still in use is closed when it comes back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()

    async def _checkout(self) -> Any:
        while self._idle:
            connection = self._idle.pop()
            if not connection.is_closed():
                return connection
        return await asyncpg.connect(**self._connect_arguments)

    def _give_back(self, connection: Any) -> None:
        if self._closed:
            connection.terminate()
        elif not connection.is_closed():
            self._idle.append(connection)

    def _lost(self, error: BaseException) -> EventStoreUnavailableError:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.terminate()
        return unavailable(self._database, error)


def unavailable(database: str, error: BaseException) -> EventStoreUnavailableError:
    return EventStoreUnavailableError(
        f"event store {database} is unreachable or dropped the connection ({error}); "
        f"check that the database is up"
    )


async def append_handled(
    driver_connection: Any,
    stream_id: str,
    expected_version: int | None,
    events: Sequence[Event],
    recorded_at: datetime,
    inbox: InboxEntry | None,
) -> tuple[int, int]:
    """One statement: the events, their outbox rows and the inbox row; the first position and
    the stream's version before them. Inside a transaction the caller holds the position lock."""
    arguments = (
        stream_id,
        expected_version,
        *event_arrays(events),
        recorded_at,
        inbox.service if inbox else None,
        inbox.event_id if inbox else None,
    )
    try:
        try:
            row = await driver_connection.fetchrow(APPEND_HANDLED, *arguments)
        except asyncpg.UniqueViolationError as error:
            if (
                error.constraint_name != STREAM_VERSION_UNIQUE
                or driver_connection.is_in_transaction()
            ):
                raise
            # A stale stream version: again, on a snapshot taken once the lock is held.
            async with driver_connection.transaction():
                await driver_connection.execute(LOCK_POSITIONS)
                row = await driver_connection.fetchrow(APPEND_HANDLED, *arguments)
    except asyncpg.UniqueViolationError as error:
        raise unique_violation(
            error.constraint_name, stream_id, expected_version, events, inbox
        ) from error
    first_position, version = row[0], row[1]
    if first_position is None:
        raise ConcurrencyError(stream_id, expected_version, version)
    return int(first_position), int(version)


async def seen_among(driver_connection: Any, service: str, event_ids: list[UUID]) -> set[UUID]:
    rows = await driver_connection.fetch(SEEN_AMONG, service, event_ids)
    return {UUID(bytes=row[0].bytes) for row in rows}


async def record_handled(
    driver_connection: Any, service: str, event_ids: list[UUID], recorded_at: datetime
) -> set[UUID]:
    rows = await driver_connection.fetch(RECORD_HANDLED, service, event_ids, recorded_at)
    return {UUID(bytes=row[0].bytes) for row in rows}


def from_record(row: Any) -> RecordedEvent:
    return recorded_event(
        position=row[0],
        stream_id=row[1],
        stream_version=row[2],
        event_id=row[3],
        event_type=row[4],
        schema_version=row[5],
        correlation_id=row[6],
        causation_id=row[7],
        account_id=row[8],
        occurred_at=row[9],
        source=row[10],
        payload=orjson.loads(row[11]),
        recorded_at=row[12],
    )
