"""Statements the store sends straight to asyncpg on PostgreSQL, on connections of its own.

Each one is a single statement outside any explicit transaction, so it is its own transaction;
units of work, which hold a transaction across several statements, stay on SQLAlchemy. The hot
paths are here because of what SQLAlchemy's layers cost per call: a one-event append through a
unit of work took ~900 µs of client CPU against ~300 µs for the same function call straight on
asyncpg, and a decoded replayed event 32–48 µs against 22–30 µs from asyncpg rows
(docs/performance.md).
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
    ConcurrencyError,
    DuplicateInboxError,
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
SEEN = "SELECT 1 FROM inbox WHERE service = $1 AND event_id = $2"
RECORD_INBOX = "INSERT INTO inbox (service, event_id, processed_at) VALUES ($1, $2, $3)"
APPEND_HANDLED = (
    "SELECT o_first_position, o_stream_version FROM alchemiser_append_handled("
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
)
APPEND_PARAMETERS = (
    "event_ids",
    "event_types",
    "schema_versions",
    "correlation_ids",
    "causation_ids",
    "account_ids",
    "occurred_at",
    "sources",
    "payloads",
    "bodies",
)
"""The per-event arrays of `alchemiser_append_handled`, in order."""

_SQLALCHEMY_CONNECT_ARGUMENTS = (
    "async_creator_fn",
    "prepared_statement_cache_size",
    "prepared_statement_name_func",
)
"""Connect arguments SQLAlchemy's asyncpg dialect consumes itself; asyncpg would refuse them."""
_CONNECTION_LOST = (
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
    """The columns of `events` as the append functions take them (see APPEND_PARAMETERS)."""
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
    """asyncpg connections of their own for the store's single statements: checking a
    connection out of SQLAlchemy's pool and back costs ~95 µs of client CPU, asyncpg's pool
    ~50 µs. Connections are opened on demand, up to `size`."""

    def __init__(self, engine: AsyncEngine, size: int, database: str) -> None:
        _, connect_arguments = engine.dialect.create_connect_args(engine.url)
        for sqlalchemy_only in _SQLALCHEMY_CONNECT_ARGUMENTS:
            connect_arguments.pop(sqlalchemy_only, None)
        self._connect_arguments = connect_arguments
        self._size = size
        self._database = database
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A connection outside any transaction: each statement on it is its own. A lost or
        refused connection is raised as EventStoreUnavailableError, which consumers wait out,
        and every pooled connection is replaced: after a database restart all of them are dead.
        """
        pool = await self._open()
        try:
            async with pool.acquire() as connection:
                yield connection
        except _CONNECTION_LOST as error:
            await pool.expire_connections()
            raise EventStoreUnavailableError(
                f"event store {self._database}: the connection was lost ({error})"
            ) from error

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _open(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    min_size=0,
                    max_size=self._size,
                    reset=_leave_session_as_is,
                    **self._connect_arguments,
                )
        return self._pool


async def _leave_session_as_is(_connection: Any) -> None:
    """The store's statements change no session state, so a returned connection needs no reset
    (asyncpg's default reset is one more round trip per statement)."""


async def append_handled(
    driver_connection: Any,
    stream_id: str,
    expected_version: int | None,
    events: Sequence[Event],
    recorded_at: datetime,
    inbox: InboxEntry | None,
) -> tuple[int, int]:
    """One statement: the events, their outbox rows and the inbox row; the first position and
    the stream's version before them."""
    try:
        row = await driver_connection.fetchrow(
            APPEND_HANDLED,
            stream_id,
            expected_version,
            *event_arrays(events),
            recorded_at,
            inbox.service if inbox else None,
            inbox.event_id if inbox else None,
        )
    except asyncpg.UniqueViolationError as error:
        raise unique_violation(
            error.constraint_name, stream_id, expected_version, events, inbox
        ) from error
    first_position, version = row[0], row[1]
    if first_position is None:
        raise ConcurrencyError(stream_id, expected_version, version)
    return int(first_position), int(version)


async def record_inbox(driver_connection: Any, inbox: InboxEntry, recorded_at: datetime) -> None:
    try:
        await driver_connection.execute(RECORD_INBOX, inbox.service, inbox.event_id, recorded_at)
    except asyncpg.UniqueViolationError as error:
        raise DuplicateInboxError(inbox.service, inbox.event_id) from error


async def seen(driver_connection: Any, service: str, event_id: UUID) -> bool:
    return await driver_connection.fetchval(SEEN, service, event_id) is not None


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
