"""Event reads on SQLite, through SQLAlchemy Core."""

from __future__ import annotations

from typing import Any

from shared.eventstore.documents import recorded_event
from shared.eventstore.records import RecordedEvent
from shared.eventstore.schema import events

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


def from_row(row: Any) -> RecordedEvent:
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
