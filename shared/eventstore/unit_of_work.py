"""The unit of work a service writes through: one transaction per handled message."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Select, Update, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.events import Event, encode
from shared.eventstore import postgres
from shared.eventstore.errors import (
    EVENT_ID_UNIQUE,
    ConcurrencyError,
    DuplicateInboxError,
    unique_violation,
)
from shared.eventstore.migrations import describe
from shared.eventstore.records import RecordedEvent
from shared.eventstore.schema import event_positions, inbox, outbox
from shared.eventstore.schema import events as events_table


class UnitOfWork:
    """One database transaction: read stream versions, record the inbox row, append events with
    their outbox rows. Obtained from `SqlEventStore.unit_of_work()`; never shared across tasks.

    Every writing call locks the global position counter first (see `shared.eventstore.store`),
    so units of work take their locks in one order and cannot deadlock one another.
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
        """Append `events` after `expected_version` (the version the caller believes the stream
        is at, 0 for a new one; None: at its current end) with one outbox row per event, in this
        transaction. Another version raises ConcurrencyError; nothing is ever overwritten. An
        event_id already stored raises DuplicateEventError."""
        check_expected_version(stream_id, expected_version)
        if not events:
            return []
        recorded_at = datetime.now(UTC)
        append = self._append_postgres if self._postgres else self._append_sqlite
        first_position, version = await append(stream_id, expected_version, events, recorded_at)
        return recorded_events(stream_id, first_position, version, events, recorded_at)

    async def record_inbox(
        self, service: str, event_id: UUID, *, appends_nothing: bool = False
    ) -> None:
        """Record that `service` processed `event_id`; commits with the events it appends.

        The position counter is locked first, as `append` does, whichever of the two a consumer
        calls first: two consumers of a redelivered event queue instead of deadlocking, and the
        second gets DuplicateInboxError (it must roll back and acknowledge the message).
        `appends_nothing=True` — only for a unit of work that appends no event at all — skips
        that global lock, so consumers that emit nothing (most of notify's deliveries) commit
        side by side instead of one fsync at a time.
        """
        if self._postgres and not appends_nothing:
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
        """The store's one-statement append, on this transaction's connection. The position
        lock is taken by a statement of its own first, so the append's snapshot, taken after
        it, sees every append committed before (see `postgres.APPEND_HANDLED`)."""
        await self._lock_positions()
        raw = await self._connection.get_raw_connection()
        try:
            return await postgres.append_handled(
                raw.driver_connection, stream_id, expected_version, events, recorded_at, None
            )
        except postgres.CONNECTION_LOST as error:
            # SQLAlchemy did not see the driver fail: the pool must not hand the dead
            # connection out again, and the consumer must wait the outage out.
            await self._connection.invalidate()
            database = describe(str(self._connection.engine.url))
            raise postgres.unavailable(database, error) from error

    async def _lock_positions(self) -> None:
        if not self._holds_position_lock:
            await self._connection.execute(text(postgres.LOCK_POSITIONS))
            self._holds_position_lock = True

    async def _append_sqlite(
        self,
        stream_id: str,
        expected_version: int | None,
        events: Sequence[Event],
        recorded_at: datetime,
    ) -> tuple[int, int]:
        """Statement by statement: the transaction began IMMEDIATE, so no other writer runs."""
        count = len(events)
        result = await self._connection.execute(
            _bump(count).returning(
                event_positions.c.last_position, _stream_version_query(stream_id).scalar_subquery()
            )
        )
        last_position, version = result.one()
        if expected_version is not None and version != expected_version:
            # Give the positions back so the counter stays gap-free even if the caller catches
            # the error and commits the rest of its work.
            await self._connection.execute(_bump(-count))
            raise ConcurrencyError(stream_id, expected_version, version)
        first_position = last_position - count + 1
        try:
            await self._connection.execute(
                insert(events_table),
                [
                    _event_row(event, stream_id, first_position + index, version + 1 + index)
                    | {"recorded_at": recorded_at}
                    for index, event in enumerate(events)
                ],
            )
        except IntegrityError as error:
            raise _unique_violation(error, stream_id, expected_version, events) from error
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
        return first_position, version


def check_expected_version(stream_id: str, expected_version: int | None) -> None:
    if expected_version is not None and expected_version < 0:
        raise ValueError(
            f"stream {stream_id!r}: expected_version must be ≥ 0 (0 = new stream) or None, "
            f"got {expected_version}"
        )


def recorded_events(
    stream_id: str,
    first_position: int,
    version: int,
    events: Sequence[Event],
    recorded_at: datetime,
) -> list[RecordedEvent]:
    """The appended `events` as stored: positions from `first_position`, versions after
    `version` (the stream's version before them)."""
    return [
        RecordedEvent(first_position + index, stream_id, version + 1 + index, event, recorded_at)
        for index, event in enumerate(events)
    ]


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
        "payload": event.payload(),
    }


def _unique_violation(
    error: IntegrityError, stream_id: str, expected_version: int | None, events: Sequence[Event]
) -> Exception:
    # SQLite names the column, not the constraint.
    constraint = EVENT_ID_UNIQUE if "events.event_id" in str(error.orig) else None
    return unique_violation(constraint, stream_id, expected_version, events)
