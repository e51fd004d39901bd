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

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.eventstore import postgres, sqlite
from shared.eventstore.engine import WRITE_OPTION, create_store_engine
from shared.eventstore.errors import EventStoreUnavailableError
from shared.eventstore.migrations import describe
from shared.eventstore.records import OutboxMessage, RecordedEvent
from shared.eventstore.schema import events, outbox
from shared.eventstore.unit_of_work import UnitOfWork

__all__ = ["SqlEventStore", "UnitOfWork"]
from shared.settings import normalise_database_url


class SqlEventStore:
    """The system of record. The engine is created on first use."""

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
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

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
        async with self.engine.connect() as connection:
            driver = await _asyncpg_connection(connection)
            rows = await driver.fetch(query, *arguments)
        return [postgres.from_record(row) for row in rows]

    async def _select_sqlite(
        self, condition: Any, *, order_by: Any, limit: int | None = None
    ) -> list[RecordedEvent]:
        query = select(*sqlite.EVENT_COLUMNS).where(condition).order_by(order_by).limit(limit)
        async with self.engine.connect() as connection:
            result = await connection.execute(query)
            return [sqlite.from_row(row) for row in result]


async def _asyncpg_connection(connection: AsyncConnection) -> Any:
    """The asyncpg connection under a pooled SQLAlchemy connection that has not begun a
    transaction: a single read statement runs in autocommit."""
    raw = await connection.get_raw_connection()
    return raw.driver_connection
