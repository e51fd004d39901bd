"""Rows to events and events to rows: the envelope lives in columns, the rest in `payload`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from shared.events import Event, decode_document
from shared.events.envelope import ENVELOPE_FIELDS
from shared.eventstore.records import RecordedEvent

PAYLOAD_EXCLUDES = set(ENVELOPE_FIELDS)


def payload_json(event: Event) -> str:
    return event.model_dump_json(exclude=PAYLOAD_EXCLUDES)


def recorded_event(
    *,
    position: int,
    stream_id: str,
    stream_version: int,
    event_id: UUID,
    event_type: str,
    schema_version: int,
    correlation_id: str,
    causation_id: str | None,
    account_id: str,
    occurred_at: datetime,
    source: str,
    payload: dict[str, Any],
    recorded_at: datetime,
) -> RecordedEvent:
    """Reassemble and decode (upcasting older schema versions) one stored event."""
    document = payload
    document["event_id"] = event_id
    document["event_type"] = event_type
    document["schema_version"] = schema_version
    document["correlation_id"] = correlation_id
    document["causation_id"] = causation_id
    document["account_id"] = account_id
    document["occurred_at"] = occurred_at
    document["source"] = source
    if recorded_at.tzinfo is not UTC:
        recorded_at = recorded_at.astimezone(UTC)
    return RecordedEvent(
        position, stream_id, stream_version, decode_document(document), recorded_at
    )
