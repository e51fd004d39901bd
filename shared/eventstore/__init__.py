"""The event store: append-only events with a transactional outbox and a consumer inbox
(DESIGN §4)."""

from shared.eventstore.errors import (
    AlreadyProcessedError,
    ConcurrencyError,
    DatabaseNotMigratedError,
    DuplicateEventError,
    EventStoreError,
    EventStoreUnavailableError,
)
from shared.eventstore.migrate import ensure_migrated, upgrade
from shared.eventstore.records import OutboxMessage, RecordedEvent
from shared.eventstore.store import SqlEventStore, UnitOfWork

__all__ = [
    "AlreadyProcessedError",
    "ConcurrencyError",
    "DatabaseNotMigratedError",
    "DuplicateEventError",
    "EventStoreError",
    "EventStoreUnavailableError",
    "OutboxMessage",
    "RecordedEvent",
    "SqlEventStore",
    "UnitOfWork",
    "ensure_migrated",
    "upgrade",
]
