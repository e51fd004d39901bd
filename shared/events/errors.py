"""Why an event document could not be turned back into an event. Every message names the event
id when it can be read, so the operator can find the document in the store or the queue."""

from __future__ import annotations


class EventDecodeError(Exception):
    """A document is not a readable event."""

    def __init__(self, message: str, *, event_id: str | None = None) -> None:
        super().__init__(message)
        self.event_id = event_id


class MalformedEventError(EventDecodeError):
    """Not JSON, not an object, or missing the envelope fields needed to route it."""


class InvalidEventError(EventDecodeError):
    """A known event type whose fields fail validation."""


class UnknownEventError(EventDecodeError):
    """An event type or schema version this build does not know (never silently dropped)."""
