"""Event store errors. Messages name the stream, event or service involved and what to do;
driver exceptions never escape for the conflicts a caller is expected to handle."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from shared.events import Event
    from shared.eventstore.records import InboxEntry

INBOX_PRIMARY_KEY = "inbox_pkey"
EVENT_ID_UNIQUE = "uq_events_event_id"
STREAM_VERSION_UNIQUE = "uq_events_stream_version"


class EventStoreError(Exception):
    """Base of every error the event store raises on purpose."""


class ConcurrencyError(EventStoreError):
    """Another writer appended to the stream first; reload the stream and decide again."""

    def __init__(self, stream_id: str, expected_version: int | None, actual_version: int) -> None:
        expected = "the current end" if expected_version is None else f"version {expected_version}"
        super().__init__(
            f"stream {stream_id!r}: expected {expected} but it is at version {actual_version}; "
            f"another writer appended first — reload the stream and retry"
        )
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version


class DuplicateEventError(EventStoreError):
    """An event with this event_id is already stored (events are immutable and unique)."""

    def __init__(self, event_id: UUID | str) -> None:
        super().__init__(
            f"event {event_id} is already in the store; an event is appended once — "
            f"create a new event (new event_id) instead of re-appending"
        )
        self.event_id = event_id


class DuplicateInboxError(EventStoreError):
    """The inbox already holds `(service, event_id)`: another consumer handled it first."""

    def __init__(self, service: str, event_id: UUID) -> None:
        super().__init__(
            f"service {service!r} already processed event {event_id}; acknowledge and skip it"
        )
        self.service = service
        self.event_id = event_id


class DatabaseNotMigratedError(EventStoreError):
    """The schema is missing, behind, or from a newer release than this code."""


class EventStoreUnavailableError(EventStoreError):
    """The database cannot be reached; the message names it without credentials."""


def unique_violation(
    constraint: str | None,
    stream_id: str,
    expected_version: int | None,
    events: Sequence[Event],
    inbox: InboxEntry | None = None,
) -> EventStoreError:
    """The store's error for the unique constraint an append ran into, by constraint name."""
    if inbox is not None and constraint == INBOX_PRIMARY_KEY:
        return DuplicateInboxError(inbox.service, inbox.event_id)
    if constraint == EVENT_ID_UNIQUE:
        return DuplicateEventError(", ".join(str(event.event_id) for event in events))
    # A stream version collision that was not retried (see `postgres.APPEND_HANDLED`): the
    # version the caller expected is the best known lower bound of the stream's real one.
    return ConcurrencyError(stream_id, expected_version, expected_version or 0)
