"""The PostgreSQL adapter of the event store (asyncpg under SQLAlchemy).

Appends are one statement (`APPEND_HANDLED`). The store's single statements — appends with their
inbox row, inbox reads and inserts, event reads, state-document reads, the outbox's reads and
its marking as sent — go to asyncpg directly, on connections of the adapter's own
(`StatementPool`): each is a single statement outside any explicit transaction, so it is its own
transaction. Units of work, which hold a transaction across several statements, stay on
SQLAlchemy and send only the append statement on their connection's asyncpg driver. The hot
paths are here because of what SQLAlchemy's layers cost per call
(docs/decisions.md, "The asyncpg statement path stays, inside the PostgreSQL adapter only").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.events import Event, encode
from shared.eventstore.documents import payload_json, recorded_event
from shared.eventstore.errors import (
    STREAM_VERSION_UNIQUE,
    ConcurrencyError,
    EventStoreUnavailableError,
    unique_violation,
)
from shared.eventstore.migrations import describe
from shared.eventstore.records import InboxEntry, OutboxMessage, RecordedEvent
from shared.eventstore.service_state import StoredState
from shared.eventstore.store import SqlEventStore
from shared.eventstore.unit_of_work import UnitOfWork, check_expected_version, recorded_events

_SELECT_EVENTS = (
    "SELECT position, stream_id, stream_version, event_id, event_type, schema_version, "
    "correlation_id, causation_id, account_id, occurred_at, source, payload::text, recorded_at "
    "FROM events "
)
READ_STREAM = _SELECT_EVENTS + "WHERE stream_id = $1 ORDER BY stream_version"
READ_ALL = _SELECT_EVENTS + "WHERE position > $1 ORDER BY position LIMIT $2"
READ_CORRELATION = _SELECT_EVENTS + "WHERE correlation_id = $1 ORDER BY position"
READ_CORRELATION_OF_TYPES = (
    _SELECT_EVENTS + "WHERE correlation_id = $1 AND event_type = ANY($2::text[]) ORDER BY position"
)
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
its snapshot sees every earlier append. Inside a unit of work the statement takes the lock
itself and a collision cannot be run again: it fails the unit of work (see
`PostgresUnitOfWork._append`)."""
LOCK_POSITIONS = "SELECT last_position FROM event_positions WHERE id = 1 FOR UPDATE"
LOAD_STATE = "SELECT version, document::text FROM service_state WHERE service = $1 AND key = $2"
PENDING_OUTBOX = (
    "SELECT id, event_id, routing_key, body FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1"
)
CLAIM_OUTBOX = PENDING_OUTBOX + " FOR UPDATE SKIP LOCKED"
OUTBOX_LAG = "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
MARK_SENT = "UPDATE outbox SET sent_at = $2 WHERE id = ANY($1::bigint[]) AND sent_at IS NULL"

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
        f"start the database server or correct ALCHEMISER_DATABASE_URL"
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


class PostgresUnitOfWork(UnitOfWork):
    async def _append(
        self,
        stream_id: str,
        expected_version: int | None,
        events: Sequence[Event],
        recorded_at: datetime,
    ) -> tuple[int, int]:
        """The store's one-statement append, on this transaction's connection's driver; its
        counter update takes the position lock, after the transaction's other writes (see
        `UnitOfWork`), so the lock is held for this statement and the commit only: two round
        trips, where a statement of its own to take the lock first made it three, and each
        round trip of a CPU-starved process holding the lock stalls every append
        (docs/decisions.md, "A unit of work takes the position counter in its append"). The
        statement's snapshot is taken before it waits for the lock, so it can miss an append to
        the same stream committed meanwhile; the stream's unique version then refuses the rows
        and the unit of work fails with ConcurrencyError, which its caller handles by running
        the work again. When nothing has opened the transaction yet, a statement of SQLAlchemy's
        does it (SQLAlchemy begins on the driver lazily), and that one takes the lock. A
        connection lost under either statement is an outage, EventStoreUnavailableError."""
        database = describe(str(self.connection.engine.url))
        raw = await self.connection.get_raw_connection()
        driver: Any = raw.driver_connection
        if not driver.is_in_transaction():
            try:
                await self.connection.execute(text(LOCK_POSITIONS))
            except DBAPIError as error:
                if not error.connection_invalidated:
                    raise
                raise unavailable(database, error) from error
        try:
            return await append_handled(
                driver, stream_id, expected_version, events, recorded_at, None
            )
        except CONNECTION_LOST as error:
            # SQLAlchemy did not see the driver fail: the pool must not hand the dead
            # connection out again, and the consumer must wait the outage out.
            await self.connection.invalidate()
            raise unavailable(database, error) from error


class PostgresEventStore(SqlEventStore):
    unit_of_work_type = PostgresUnitOfWork

    def __init__(self, database_url: str, *, pool_size: int = 5) -> None:
        super().__init__(database_url, pool_size=pool_size)
        self._statements: StatementPool | None = None

    @property
    def statements(self) -> StatementPool:
        """The connections for single statements (appends, inbox, reads)."""
        if self._statements is None:
            self._statements = StatementPool(self.engine, self._pool_size, self._description)
        return self._statements

    async def close(self) -> None:
        if self._statements is not None:
            await self._statements.close()
            self._statements = None
        await super().close()

    async def append(
        self,
        stream_id: str,
        expected_version: int | None,
        events: Sequence[Event],
        *,
        inbox: InboxEntry | None = None,
    ) -> list[RecordedEvent]:
        """One statement, one round trip."""
        if not events:
            return await super().append(stream_id, expected_version, events, inbox=inbox)
        check_expected_version(stream_id, expected_version)
        recorded_at = datetime.now(UTC)
        async with self.statements.connection() as driver:
            first_position, version = await append_handled(
                driver, stream_id, expected_version, events, recorded_at, inbox
            )
        return recorded_events(stream_id, first_position, version, events, recorded_at)

    async def seen_among(self, service: str, event_ids: Collection[UUID]) -> set[UUID]:
        async with self.statements.connection() as driver:
            rows = await driver.fetch(SEEN_AMONG, service, list(event_ids))
        return {UUID(bytes=row[0].bytes) for row in rows}

    async def record_handled(self, service: str, event_ids: Collection[UUID]) -> set[UUID]:
        async with self.statements.connection() as driver:
            rows = await driver.fetch(RECORD_HANDLED, service, list(event_ids), datetime.now(UTC))
        return {UUID(bytes=row[0].bytes) for row in rows}

    async def read_stream(self, stream_id: str) -> list[RecordedEvent]:
        return await self._fetch(READ_STREAM, stream_id)

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        return await self._fetch(READ_ALL, after_position, limit)

    async def read_correlation(
        self, correlation_id: str, types: Collection[str] | None = None
    ) -> list[RecordedEvent]:
        if types is None:
            return await self._fetch(READ_CORRELATION, correlation_id)
        return await self._fetch(READ_CORRELATION_OF_TYPES, correlation_id, list(types))

    async def load_state(self, service: str, key: str) -> StoredState | None:
        async with self.statements.connection() as driver:
            row = await driver.fetchrow(LOAD_STATE, service, key)
        return None if row is None else StoredState(row[0], orjson.loads(row[1]))

    async def pending_outbox(self, limit: int = 500) -> list[OutboxMessage]:
        async with self.statements.connection() as driver:
            rows = await driver.fetch(PENDING_OUTBOX, limit)
        return [_outbox_message(row) for row in rows]

    async def relay_outbox(
        self, publish: Callable[[list[OutboxMessage]], Awaitable[None]], limit: int = 500
    ) -> int:
        """As the base, with the rows locked from their read to the commit that marks them sent,
        so the relays of other processes skip them instead of publishing them too: every
        service's relay reads the one outbox, and each second copy cost a delivery, an inbox
        read and, arriving before the first copy's commit, a whole handler run
        (docs/performance.md, Statements per workflow). A relay that dies before that commit
        leaves them unsent and unlocked."""
        async with self.statements.connection() as driver, driver.transaction():
            rows = [_outbox_message(row) for row in await driver.fetch(CLAIM_OUTBOX, limit)]
            if rows:
                await publish(rows)
                await driver.execute(MARK_SENT, [row.id for row in rows], datetime.now(UTC))
        return len(rows)

    async def mark_sent(self, outbox_ids: Sequence[int]) -> None:
        if not outbox_ids:
            return
        async with self.statements.connection() as driver:
            await driver.execute(MARK_SENT, list(outbox_ids), datetime.now(UTC))

    async def outbox_lag(self) -> int:
        async with self.statements.connection() as driver:
            return int(await driver.fetchval(OUTBOX_LAG))

    async def replay(
        self, after_position: int = 0, page_size: int = 1000
    ) -> AsyncIterator[list[RecordedEvent]]:
        """The next page is already requested while this one is decoded and handed over, so the
        database reads while the client decodes."""
        async with self.statements.connection() as driver:
            next_rows = await _request(driver, after_position, page_size)
            try:
                while rows := await next_rows:
                    next_rows = await _request(driver, rows[-1][0], page_size)
                    yield [_from_record(row) for row in rows]
            finally:
                # A caller that stops early leaves a read in flight; the connection must go
                # back to the pool idle.
                if not next_rows.done():
                    with contextlib.suppress(Exception):
                        await next_rows

    async def _fetch(self, query: str, *arguments: Any) -> list[RecordedEvent]:
        async with self.statements.connection() as driver:
            rows = await driver.fetch(query, *arguments)
        return [_from_record(row) for row in rows]


async def _request(driver: Any, after_position: int, page_size: int) -> asyncio.Task[Any]:
    """Sends a page's query and returns without waiting for the rows."""
    fetch = asyncio.create_task(driver.fetch(READ_ALL, after_position, page_size))
    await asyncio.sleep(0)  # let the task write the query before the caller decodes
    return fetch


def _outbox_message(row: Any) -> OutboxMessage:
    return OutboxMessage(row[0], UUID(bytes=row[1].bytes), row[2], row[3])


def _from_record(row: Any) -> RecordedEvent:
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
