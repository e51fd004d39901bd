"""The unit of work a service writes through: one transaction per handled message. Each database
has its own subclass (`shared.eventstore.postgres`, `shared.eventstore.sqlite`) for the way it
appends; what both do the same way is here."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import Select, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.events import Event
from shared.eventstore.errors import DuplicateInboxError
from shared.eventstore.records import RecordedEvent
from shared.eventstore.schema import events as events_table
from shared.eventstore.schema import inbox


class UnitOfWork(ABC):
    """One database transaction: read stream versions, record the inbox row, append events with
    their outbox rows. Obtained from `SqlEventStore.unit_of_work()`; never shared across tasks.

    The appends come last: first the inbox row, then the service's own writes on `connection`
    (state documents, timers), then the appends, then the commit. The first append takes the
    global position counter (see `shared.eventstore.store`), which every append of every
    service queues behind, so it is held only for the appends and the commit, not through the
    statements before them (docs/operations.md, Capacity model). It is also the last lock the
    transaction takes, which keeps units of work free of deadlocks on it: a holder of the
    counter only inserts events and outbox rows, which no transaction without the counter
    writes, so it never waits on anyone; a cycle of waits cannot pass through it. The rows
    before it are the caller's to write in one order (the inbox row first: a second delivery
    of the same event waits there, holding nothing, and is refused once the first commits).
    `record_inbox` after an append is therefore refused.
    """

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        self._appended = False

    @property
    def connection(self) -> AsyncConnection:
        """The transaction's connection, for the tables a service keeps beside its events
        (durable timers, service state) so they commit or roll back with them."""
        return self._connection

    async def stream_version(self, stream_id: str) -> int:
        """The stream's last version; 0 for a stream with no events."""
        result = await self._connection.execute(stream_version_query(stream_id))
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
        self._appended = True
        recorded_at = datetime.now(UTC)
        first_position, version = await self._append(
            stream_id, expected_version, events, recorded_at
        )
        return recorded_events(stream_id, first_position, version, events, recorded_at)

    async def record_inbox(self, service: str, event_id: UUID) -> None:
        """Record that `service` processed `event_id`; commits with the events it appends.

        It takes no global lock: a second delivery of the same event, handled side by side,
        waits on this row's unique key and gets DuplicateInboxError once this transaction
        commits (it must roll back and acknowledge the message). It must come before the
        appends (see the class), which a unit of work that already appended refuses.
        """
        if self._appended:
            raise RuntimeError(
                f"unit of work: the inbox row of {service}/{event_id} was recorded after an "
                f"append; record the inbox row before appending (the appends come last)"
            )
        try:
            await self._connection.execute(
                insert(inbox).values(
                    service=service, event_id=event_id, processed_at=datetime.now(UTC)
                )
            )
        except IntegrityError as error:
            raise DuplicateInboxError(service, event_id) from error

    @abstractmethod
    async def _append(
        self,
        stream_id: str,
        expected_version: int | None,
        events: Sequence[Event],
        recorded_at: datetime,
    ) -> tuple[int, int]:
        """Write the events and their outbox rows; the first position and the stream's version
        before them."""


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


def stream_version_query(stream_id: str) -> Select[int]:
    return select(func.coalesce(func.max(events_table.c.stream_version), 0)).where(
        events_table.c.stream_id == stream_id
    )
