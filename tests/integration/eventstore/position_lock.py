"""Whether a unit of work's transaction holds the event store's position counter on PostgreSQL,
for the tests that check it is taken last (`shared.eventstore.unit_of_work.UnitOfWork`)."""

from __future__ import annotations

from sqlalchemy import text

from shared.eventstore.store import UnitOfWork

_COUNTER_LOCKS = text(
    "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() "
    "AND relation = 'event_positions'::regclass AND mode IN ('RowShareLock', 'RowExclusiveLock')"
)
"""The table-level locks that the counter's `SELECT … FOR UPDATE` and the append's `UPDATE` take
beside their row lock; nothing else in a unit of work touches the counter."""


async def holds_position_lock(uow: UnitOfWork) -> bool:
    return bool((await uow.connection.execute(_COUNTER_LOCKS)).scalar_one())
