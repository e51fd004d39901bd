"""The event store (docs/architecture.md, Event store) over SQLAlchemy 2 async Core: one adapter per
database, PostgreSQL (asyncpg, `shared.eventstore.postgres`) and SQLite (aiosqlite,
`shared.eventstore.sqlite`), on the common base here. `SqlEventStore(url)` opens the adapter of the
URL's database, as `pathlib.Path(...)` opens the path class of the platform.

Global positions are gap-free and in commit order. Every append first takes the one-row
`event_positions` counter, which holds that row's lock until the transaction ends, so appends are
serialised: positions are handed out in the order the transactions commit, and a transaction that
rolls back (or hits a version conflict) gives its positions back. A reader paging
`read_all(after_position)` therefore never skips an event that commits later with a lower position.
The price is one appending transaction at a time per database. It is kept short: no broker call
is ever made inside one (docs/trading-rules.md, Execution state machine), and a unit of work
appends last, after its inbox row and its own tables' writes, so the counter is held only for the
appends and the commit (`UnitOfWork`).

The stream's version is read after the counter lock is held, so the optimistic check against
`expected_version` sees every committed append; the unique `(stream_id, stream_version)`
constraint stays as the last line of defence.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID

from sqlalchemy import func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.events import Event
from shared.eventstore import service_state, workflow_queries
from shared.eventstore.documents import recorded_event
from shared.eventstore.engine import create_store_engine
from shared.eventstore.errors import DuplicateInboxError, EventStoreUnavailableError
from shared.eventstore.migrations import describe
from shared.eventstore.records import InboxEntry, OutboxMessage, RecordedEvent
from shared.eventstore.schema import events, inbox, outbox
from shared.eventstore.unit_of_work import UnitOfWork
from shared.settings import normalise_database_url

__all__ = ["SqlEventStore", "UnitOfWork"]

EVENT_COLUMNS = (
    events.c.position,
    events.c.stream_id,
    events.c.stream_version,
    events.c.event_id,
    events.c.event_type,
    events.c.schema_version,
    events.c.correlation_id,
    events.c.causation_id,
    events.c.account_id,
    events.c.occurred_at,
    events.c.source,
    events.c.payload,
    events.c.recorded_at,
)


class SqlEventStore:
    """The system of record. The engine is created on first use."""

    unit_of_work_type: ClassVar[type[UnitOfWork]]
    """The adapter's unit of work: how its database appends."""

    def __new__(cls, database_url: str, *, pool_size: int = 5) -> SqlEventStore:
        if cls is not SqlEventStore:
            return super().__new__(cls)
        # The adapters subclass this class, so they are imported when one is opened.
        from shared.eventstore.postgres import PostgresEventStore
        from shared.eventstore.sqlite import SqliteEventStore

        backend = make_url(normalise_database_url(database_url)).get_backend_name()
        adapter = SqliteEventStore if backend == "sqlite" else PostgresEventStore
        return super().__new__(adapter)

    def __init__(self, database_url: str, *, pool_size: int = 5) -> None:
        self._database_url = normalise_database_url(database_url)
        self._description = describe(self._database_url)
        self._pool_size = pool_size
        self._engine: AsyncEngine | None = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = create_store_engine(self._database_url, pool_size=self._pool_size)
        return self._engine

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
        nothing else has to commit with it. Raises ConcurrencyError, DuplicateEventError or
        DuplicateInboxError (nothing is written then). With no events, only the inbox row is
        recorded."""
        if not events:
            if inbox is not None and not await self.record_handled(inbox.service, [inbox.event_id]):
                raise DuplicateInboxError(inbox.service, inbox.event_id)
            return []
        async with self.unit_of_work() as uow:
            if inbox is not None:
                await uow.record_inbox(inbox.service, inbox.event_id)
            return await uow.append(stream_id, expected_version, events)

    async def seen_among(self, service: str, event_ids: Collection[UUID]) -> set[UUID]:
        """Which of `event_ids` `service` already processed; one read, outside any transaction."""
        async with self.engine.connect() as connection:
            return await inbox_hits(connection, service, event_ids)

    async def record_handled(self, service: str, event_ids: Collection[UUID]) -> set[UUID]:
        """Record, in one transaction, that `service` processed `event_ids` and they caused no
        event; returns those recorded now. The others were recorded before: redeliveries, to
        acknowledge without effect. Each adapter has its own way to skip the ids recorded
        before without two writers colliding."""
        raise NotImplementedError

    async def read_stream(self, stream_id: str) -> list[RecordedEvent]:
        return await self._select(events.c.stream_id == stream_id, events.c.stream_version)

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Up to `limit` events with position > `after_position`, in position order."""
        return await self._select(events.c.position > after_position, events.c.position, limit)

    async def read_correlation(
        self, correlation_id: str, types: Collection[str] | None = None
    ) -> list[RecordedEvent]:
        """Every event of one workflow (only those of `types`, when given), in position (commit)
        order."""
        condition = events.c.correlation_id == correlation_id
        if types is not None:
            condition = condition & events.c.event_type.in_(list(types))
        return await self._select(condition, events.c.position)

    async def replay(
        self, after_position: int = 0, page_size: int = 1000
    ) -> AsyncIterator[list[RecordedEvent]]:
        """Every event after `after_position`, in position order, a page at a time: what a
        projection rebuilds from."""
        while page := await self.read_all(after_position, page_size):
            yield page
            after_position = page[-1].position

    async def load_state(self, service: str, key: str) -> service_state.StoredState | None:
        async with self.engine.connect() as connection:
            return await service_state.fetch(connection, service, key)

    async def unfinished_workflows(
        self, started_after: datetime
    ) -> list[workflow_queries.UnfinishedWorkflow]:
        async with self.engine.connect() as connection:
            return await workflow_queries.unfinished_since(connection, started_after)

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

    async def relay_outbox(
        self, publish: Callable[[list[OutboxMessage]], Awaitable[None]], limit: int = 500
    ) -> int:
        """Hand up to `limit` unsent rows, oldest first, to `publish`, then mark them sent;
        returns how many. A relay that dies in between leaves them unsent, and they are published
        again (the consumers' inboxes absorb the second copy)."""
        rows = await self.pending_outbox(limit)
        if rows:
            await publish(rows)
            await self.mark_sent([row.id for row in rows])
        return len(rows)

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
            yield self.unit_of_work_type(connection)

    @asynccontextmanager
    async def _writing_connection(self) -> AsyncIterator[AsyncConnection]:
        """A connection for a transaction that will write."""
        async with self.engine.connect() as connection:
            yield connection

    async def _select(
        self, condition: Any, order_by: Any, limit: int | None = None
    ) -> list[RecordedEvent]:
        query = select(*EVENT_COLUMNS).where(condition).order_by(order_by).limit(limit)
        async with self.engine.connect() as connection:
            result = await connection.execute(query)
            return [_from_row(row) for row in result]


async def inbox_hits(
    connection: AsyncConnection, service: str, event_ids: Collection[UUID]
) -> set[UUID]:
    result = await connection.execute(
        select(inbox.c.event_id).where(
            inbox.c.service == service, inbox.c.event_id.in_(list(event_ids))
        )
    )
    return {row.event_id for row in result}


def _from_row(row: Any) -> RecordedEvent:
    return recorded_event(
        position=row.position,
        stream_id=row.stream_id,
        stream_version=row.stream_version,
        event_id=row.event_id,
        event_type=row.event_type,
        schema_version=row.schema_version,
        correlation_id=row.correlation_id,
        causation_id=row.causation_id,
        account_id=row.account_id,
        occurred_at=row.occurred_at,
        source=row.source,
        payload=dict(row.payload),
        recorded_at=row.recorded_at,
    )
