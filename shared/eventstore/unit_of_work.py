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
from shared.eventstore.documents import payload_json
from shared.eventstore.errors import ConcurrencyError, DuplicateEventError, DuplicateInboxError
from shared.eventstore.records import RecordedEvent
from shared.eventstore.schema import event_positions, inbox, outbox
from shared.eventstore.schema import events as events_table

# One round trip on PostgreSQL: the function of the first migration locks the position counter,
# reads the stream version with a fresh snapshot, and writes the events and their outbox rows.
_APPEND_FUNCTION_CALL = text(
    "SELECT o_first_position, o_stream_version FROM alchemiser_append("
    ":stream_id, :expected_version, :event_ids, :event_types, :schema_versions, "
    ":correlation_ids, :causation_ids, :account_ids, :occurred_at, :sources, :payloads, "
    ":bodies, :recorded_at)"
)


class UnitOfWork:
    """One database transaction: read stream versions, check the inbox, append events with
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
        if expected_version is not None and expected_version < 0:
            raise ValueError(
                f"stream {stream_id!r}: expected_version must be ≥ 0 (0 = new stream) or None, "
                f"got {expected_version}"
            )
        if not events:
            return []
        recorded_at = datetime.now(UTC)
        append = self._append_postgres if self._postgres else self._append_sqlite
        first_position, version = await append(stream_id, expected_version, events, recorded_at)
        return [
            RecordedEvent(
                first_position + index, stream_id, version + 1 + index, event, recorded_at
            )
            for index, event in enumerate(events)
        ]

    async def seen(self, service: str, event_id: UUID) -> bool:
        """Whether `service` already processed `event_id` (a redelivery to acknowledge)."""
        result = await self._connection.execute(
            select(inbox.c.event_id).where(inbox.c.service == service, inbox.c.event_id == event_id)
        )
        return result.first() is not None

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
        if self._postgres and not self._holds_position_lock and not appends_nothing:
            await self._connection.execute(
                select(event_positions.c.last_position)
                .where(event_positions.c.id == 1)
                .with_for_update()
            )
            self._holds_position_lock = True
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
                    "payloads": [payload_json(event) for event in events],
                    "bodies": [encode(event) for event in events],
                    "recorded_at": recorded_at,
                },
            )
        except IntegrityError as error:
            raise _unique_violation(error, stream_id, expected_version, events) from error
        self._holds_position_lock = True
        first_position, version = result.one()
        if first_position is None:
            raise ConcurrencyError(stream_id, expected_version, version)
        return int(first_position), int(version)

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
    message = str(error.orig)
    if "uq_events_event_id" in message or "events.event_id" in message:
        return DuplicateEventError(", ".join(str(event.event_id) for event in events))
    # Only a write that bypassed the position counter can collide on a stream version; the
    # version it expected is the best known lower bound of the stream's real one.
    return ConcurrencyError(stream_id, expected_version, expected_version or 0)
