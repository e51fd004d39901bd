"""The event store: append-only events with a transactional outbox and a consumer inbox
(DESIGN §4)."""

from shared.eventstore.errors import (
    ConcurrencyError,
    DatabaseNotMigratedError,
    DuplicateEventError,
    DuplicateInboxError,
    EventStoreError,
    EventStoreUnavailableError,
)
from shared.eventstore.migrations import ensure_migrated, upgrade
from shared.eventstore.port import EventStoreReader
from shared.eventstore.records import OutboxMessage, RecordedEvent
from shared.eventstore.store import SqlEventStore
from shared.eventstore.unit_of_work import UnitOfWork

__all__ = [
    "ConcurrencyError",
    "DatabaseNotMigratedError",
    "DuplicateEventError",
    "DuplicateInboxError",
    "EventStoreError",
    "EventStoreReader",
    "EventStoreUnavailableError",
    "OutboxMessage",
    "RecordedEvent",
    "SqlEventStore",
    "UnitOfWork",
    "ensure_migrated",
    "upgrade",
]
