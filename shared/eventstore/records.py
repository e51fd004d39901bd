"""What the store hands back: recorded events and outbox messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from shared.events import Event


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    position: int
    """Global, gap-free, in commit order: page `read_all` by it."""
    stream_id: str
    stream_version: int
    event: Event
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    event_id: UUID
    routing_key: str
    """The event type (routing key = event type: docs/architecture.md, Bus)."""
    body: bytes
    """The encoded event, published as is."""


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """A delivery a service has processed: recorded with the events it caused, so a redelivery
    finds it and is acknowledged without effect."""

    service: str
    event_id: UUID
