"""The event store (DESIGN §4) over SQLAlchemy 2 async Core: PostgreSQL (asyncpg) and SQLite
(aiosqlite). Event reads on PostgreSQL go to asyncpg directly (see `postgres`).

Global positions are gap-free and in commit order. Every append first updates the one-row
`event_positions` counter (`UPDATE … RETURNING`), which holds that row's lock until the
transaction ends, so appends are serialised: positions are handed out in the order the
transactions commit, and a transaction that rolls back (or hits a version conflict) gives its
positions back. A reader paging `read_all(after_position)` therefore never skips an event that
commits later with a lower position. The price is one writing transaction at a time per
database — an append transaction is short, and no broker call is ever made inside one (trading
spec §3.16). On SQLite every unit of work begins IMMEDIATE, which serialises writers the same way.

The stream's version is read after the counter lock is held, so the optimistic check against
`expected_version` sees every committed append; the unique `(stream_id, stream_version)`
constraint stays as the last line of defence.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.events import Event
from shared.eventstore import postgres, sqlite
from shared.eventstore.engine import WRITE_OPTION, create_store_engine
from shared.eventstore.errors import DuplicateInboxError, EventStoreUnavailableError
from shared.eventstore.migrations import describe
from shared.eventstore.records import InboxEntry, OutboxMessage, RecordedEvent
from shared.eventstore.schema import events, inbox, outbox
from shared.eventstore.unit_of_work import UnitOfWork, check_expected_version, recorded_events

__all__ = ["SqlEventStore", "UnitOfWork"]
from shared.settings import normalise_database_url


class SqlEventStore:
    """The system of record. The engine is created on first use."""

    def __init__(self, database_url: str, *, pool_size: int = 5) -> None:
        self._database_url = normalise_database_url(database_url)
        self._description = describe(self._database_url)
        self._pool_size = pool_size
        self._engine: AsyncEngine | None = None
        self._statements: postgres.StatementPool | None = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = create_store_engine(self._database_url, pool_size=self._pool_size)
        return self._engine

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def statements(self) -> postgres.StatementPool:
        """On PostgreSQL, the connections for single statements (appends, inbox, reads)."""
        if self._statements is None:
            self._statements = postgres.StatementPool(
                self.engine, self._pool_size, self._description
            )
        return self._statements

    async def close(self) -> None:
        if self._statements is not None:
            await self._statements.close()
            self._statements = None
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
                f"event store {self._description} is unreachable: {error}"
            ) from error

    def unit_of_work(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """One transaction: committed when the block exits, rolled back when it raises."""
        return self._unit_of_work()

    async def append(
        self,
        stream_id: str,
        expected_version: int | None,
        events: Sequence[Event],
        *,
        inbox: InboxEntry | None = None,
    ) -> list[RecordedEvent]:
        """Append `events` (as `UnitOfWork.append`) and record `inbox`, the delivery that caused
        them, in one transaction of their own: the way a service commits what it handled when
        nothing else has to commit with it. On PostgreSQL this is a single statement, one round
        trip. Raises ConcurrencyError, DuplicateEventError or DuplicateInboxError (nothing is
        written then). With no events, only the inbox row is recorded."""
        if not events:
            if inbox is not None and not await self.record_handled(inbox.service, [inbox.event_id]):
                raise DuplicateInboxError(inbox.service, inbox.event_id)
            return []
        if not self.is_postgres:
            async with self.unit_of_work() as uow:
                if inbox is not None:
                    await uow.record_inbox(inbox.service, inbox.event_id)
                return await uow.append(stream_id, expected_version, events)
        check_expected_version(stream_id, expected_version)
        recorded_at = datetime.now(UTC)
        async with self.statements.connection() as driver:
            first_position, version = await postgres.append_handled(
                driver, stream_id, expected_version, events, recorded_at, inbox
            )
        return recorded_events(stream_id, first_position, version, events, recorded_at)

    async def seen_among(self, service: str, event_ids: Collection[UUID]) -> set[UUID]:
        """Which of `event_ids` `service` already processed; one read, outside any transaction."""
        if self.is_postgres:
            async with self.statements.connection() as driver:
                return await postgres.seen_among(driver, service, list(event_ids))
        async with self.engine.connect() as connection:
            return await _inbox_hits(connection, service, event_ids)

    async def record_handled(self, service: str, event_ids: Collection[UUID]) -> set[UUID]:
        """Record, in one transaction, that `service` processed `event_ids` and they caused no
        event; returns those recorded now. The others were recorded before: redeliveries, to
        acknowledge without effect."""
        recorded_at = datetime.now(UTC)
        if self.is_postgres:
            async with self.statements.connection() as driver:
                return await postgres.record_handled(driver, service, list(event_ids), recorded_at)
        async with self.unit_of_work() as uow:  # BEGIN IMMEDIATE: no other writer in between
            new = set(event_ids) - await _inbox_hits(uow.connection, service, event_ids)
            if new:
                await uow.connection.execute(
                    insert(inbox),
                    [
                        {"service": service, "event_id": event_id, "processed_at": recorded_at}
                        for event_id in new
                    ],
                )
            return new

    async def read_stream(self, stream_id: str) -> list[RecordedEvent]:
        if self.is_postgres:
            return await self._fetch_postgres(postgres.READ_STREAM, stream_id)
        return await self._select_sqlite(
            events.c.stream_id == stream_id, order_by=events.c.stream_version
        )

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Up to `limit` events with position > `after_position`, in position order."""
        if self.is_postgres:
            return await self._fetch_postgres(postgres.READ_ALL, after_position, limit)
        return await self._select_sqlite(
            events.c.position > after_position, order_by=events.c.position, limit=limit
        )

    async def replay(
        self, after_position: int = 0, page_size: int = 1000
    ) -> AsyncIterator[list[RecordedEvent]]:
        """Every event after `after_position`, in position order, a page at a time: what a
        projection rebuilds from. On PostgreSQL the next page is already requested while this
        one is decoded and handed over, so the database reads while the client decodes."""
        if not self.is_postgres:
            while page := await self.read_all(after_position, page_size):
                yield page
                after_position = page[-1].position
            return
        async with self.statements.connection() as driver:
            next_rows = await self._request(driver, after_position, page_size)
            try:
                while rows := await next_rows:
                    next_rows = await self._request(driver, rows[-1][0], page_size)
                    yield [postgres.from_record(row) for row in rows]
            finally:
                # A caller that stops early leaves a read in flight; the connection must go
                # back to the pool idle.
                if not next_rows.done():
                    with contextlib.suppress(Exception):
                        await next_rows

    @staticmethod
    async def _request(driver: Any, after_position: int, page_size: int) -> asyncio.Task[Any]:
        """Sends a page's query and returns without waiting for the rows."""
        fetch = asyncio.create_task(driver.fetch(postgres.READ_ALL, after_position, page_size))
        await asyncio.sleep(0)  # let the task write the query before the caller decodes
        return fetch

    async def read_correlation(self, correlation_id: str) -> list[RecordedEvent]:
        """Every event of one workflow, in position (commit) order."""
        if self.is_postgres:
            return await self._fetch_postgres(postgres.READ_CORRELATION, correlation_id)
        return await self._select_sqlite(
            events.c.correlation_id == correlation_id, order_by=events.c.position
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
        async with self._writing_connection() as connection, connection.begin():
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

    @asynccontextmanager
    async def _unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        async with self._writing_connection() as connection, connection.begin():
            yield UnitOfWork(connection)

    @asynccontextmanager
    async def _writing_connection(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as connection:
            if self.is_sqlite:
                await connection.execution_options(**{WRITE_OPTION: True})
            yield connection

    async def _fetch_postgres(self, query: str, *arguments: Any) -> list[RecordedEvent]:
        async with self.statements.connection() as driver:
            rows = await driver.fetch(query, *arguments)
        return [postgres.from_record(row) for row in rows]

    async def _select_sqlite(
        self, condition: Any, *, order_by: Any, limit: int | None = None
    ) -> list[RecordedEvent]:
        query = select(*sqlite.EVENT_COLUMNS).where(condition).order_by(order_by).limit(limit)
        async with self.engine.connect() as connection:
            result = await connection.execute(query)
            return [sqlite.from_row(row) for row in result]


async def _inbox_hits(
    connection: AsyncConnection, service: str, event_ids: Collection[UUID]
) -> set[UUID]:
    result = await connection.execute(
        select(inbox.c.event_id).where(
            inbox.c.service == service, inbox.c.event_id.in_(list(event_ids))
        )
    )
    return {row.event_id for row in result}
