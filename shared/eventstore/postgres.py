"""Event reads on PostgreSQL, on the asyncpg connection under the SQLAlchemy pool.

Replay decodes every stored event, so the per-row cost decides its speed. Through SQLAlchemy's
result layer (row objects, type processors for UUID, timestamps and JSONB) a decoded event cost
32–48 µs of client CPU against 22–30 µs straight from asyncpg rows (A/B on 20,000 events,
docs/performance.md). A read is one statement outside any transaction, so nothing of
SQLAlchemy's transaction state is bypassed.
"""

from __future__ import annotations

import json
from typing import Any

from shared.eventstore.documents import recorded_event
from shared.eventstore.records import RecordedEvent

_SELECT_EVENTS = (
    "SELECT position, stream_id, stream_version, event_id, event_type, schema_version, "
    "correlation_id, causation_id, account_id, occurred_at, source, payload::text, recorded_at "
    "FROM events "
)
READ_STREAM = _SELECT_EVENTS + "WHERE stream_id = $1 ORDER BY stream_version"
READ_ALL = _SELECT_EVENTS + "WHERE position > $1 ORDER BY position LIMIT $2"
READ_CORRELATION = _SELECT_EVENTS + "WHERE correlation_id = $1 ORDER BY position"


def from_record(row: Any) -> RecordedEvent:
    return recorded_event(
        position=row[0],
        stream_id=row[1],
        stream_version=row[2],
        event_id=row[3],
        event_type=row[4],
        schema_version=row[5],
        correlation_id=row[6],
        causation_id=row[7],
        account_id=row[8],
        occurred_at=row[9],
        source=row[10],
        payload=json.loads(row[11]),
        recorded_at=row[12],
    )
