"""A service's own state documents beside the event store, with optimistic concurrency.

Execution keeps one JSON document per workflow, its state machine
(docs/trading-rules.md, Execution state machine). It is saved in the transaction that appends the
events reporting the change, so the document and the events never disagree; `expected_version`
makes a second writer of the same key fail instead of overwriting (two replicas stepping one
workflow at once: one wins, the other retries).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.eventstore.engine import insert_unless_present
from shared.eventstore.errors import ConcurrencyError, EventStoreError
from shared.eventstore.schema import UtcDateTime
from shared.eventstore.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from shared.eventstore.port import EventStoreReader

metadata = MetaData()

service_state = Table(
    "service_state",
    metadata,
    Column("service", String(50), primary_key=True),
    Column("key", String(300), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("document", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
"""Created by Alembic revision 0002_timers_and_service_state; must match it."""


class StateVersionConflictError(ConcurrencyError):
    """Another writer saved the document first; reload it and decide again."""

    def __init__(self, service: str, key: str, expected_version: int, actual_version: int) -> None:
        EventStoreError.__init__(
            self,
            f"state {service}/{key!r}: expected version {expected_version} but it is at "
            f"version {actual_version}; another writer saved first — reload it and retry",
        )
        self.stream_id = f"{service}/{key}"
        self.expected_version = expected_version
        self.actual_version = actual_version


@dataclass(frozen=True, slots=True)
class StoredState:
    version: int
    """1 after the first save; pass it back as `expected_version`."""
    document: dict[str, Any]


async def load(source: UnitOfWork | EventStoreReader, service: str, key: str) -> StoredState | None:
    """The document and its version, or None when it was never saved: as the transaction
    `source` sees it, or as committed."""
    if isinstance(source, UnitOfWork):
        return await fetch(source.connection, service, key)
    return await source.load_state(service, key)


async def fetch(connection: AsyncConnection, service: str, key: str) -> StoredState | None:
    row = (
        await connection.execute(
            select(service_state.c.version, service_state.c.document).where(
                service_state.c.service == service, service_state.c.key == key
            )
        )
    ).first()
    return None if row is None else StoredState(row.version, dict(row.document))


async def save(
    uow: UnitOfWork, service: str, key: str, document: dict[str, Any], expected_version: int
) -> int:
    """Write the document if it is still at `expected_version` (0: not saved yet); returns the
    new version. A mismatch raises StateVersionConflictError and writes nothing."""
    now = datetime.now(UTC)
    if expected_version == 0:
        result = await uow.connection.execute(
            insert_unless_present(uow.connection, service_state, "service", "key").values(
                service=service, key=key, version=1, document=document, updated_at=now
            )
        )
        if result.rowcount != 1:
            current = await load(uow, service, key)
            raise StateVersionConflictError(service, key, 0, current.version if current else 0)
        return 1
    result = await uow.connection.execute(
        update(service_state)
        .where(
            service_state.c.service == service,
            service_state.c.key == key,
            service_state.c.version == expected_version,
        )
        .values(version=expected_version + 1, document=document, updated_at=now)
    )
    if result.rowcount != 1:
        current = await load(uow, service, key)
        raise StateVersionConflictError(
            service, key, expected_version, current.version if current else 0
        )
    return expected_version + 1
