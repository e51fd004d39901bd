"""Durable timers: every wait of a service is a row, so a restart loses none of them.

A timer is armed in the transaction that records the state it waits on (`schedule`), claimed by
one replica at a time with a short lease (`claim_due`, its own short transaction; PostgreSQL
skips rows another replica has locked), and deleted in the transaction that records its outcome
(`complete`). A replica that dies holding a lease only delays the timer: once the lease expires
the timer is claimable again. A timer therefore fires at least once; the work it triggers must
be idempotent (execution keys every broker action by its client order id).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB

from shared.eventstore.schema import UtcDateTime
from shared.eventstore.store import SqlEventStore, UnitOfWork

metadata = MetaData()

timers = Table(
    "timers",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("service", String(50), nullable=False),
    Column("workflow_id", String(200), nullable=False),
    Column("chain", String(100), nullable=False),
    Column("kind", String(50), nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    Column("lease_until", UtcDateTime),
    Column("payload", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
)
"""Created by Alembic revision 0002_timers_and_service_state; must match it."""


@dataclass(frozen=True, slots=True)
class Timer:
    id: int
    service: str
    workflow_id: str
    chain: str
    """The part of the workflow it belongs to (an order chain), or "" for the workflow itself."""
    kind: str
    due_at: datetime
    payload: dict[str, Any]


async def schedule(
    uow: UnitOfWork,
    *,
    service: str,
    workflow_id: str,
    chain: str,
    kind: str,
    due_at: datetime,
    payload: dict[str, Any] | None = None,
) -> None:
    """Arm a timer in the caller's transaction: it exists exactly when that transaction commits."""
    await uow.connection.execute(
        insert(timers).values(
            service=service,
            workflow_id=workflow_id,
            chain=chain,
            kind=kind,
            due_at=due_at,
            lease_until=None,
            payload=payload or {},
        )
    )


async def complete(uow: UnitOfWork, *timer_ids: int) -> None:
    """Delete fired timers in the transaction that records what they did."""
    await uow.connection.execute(delete(timers).where(timers.c.id.in_(timer_ids)))


async def claim_due(
    store: SqlEventStore, service: str, now: datetime, lease_s: float, limit: int = 100
) -> list[Timer]:
    """Lease up to `limit` timers of `service` due by `now` (oldest first) for `lease_s` seconds.

    Timers whose lease has expired are claimable again, so a replica that died mid-step does
    not strand its timers.
    """
    claimable = and_(
        timers.c.service == service,
        timers.c.due_at <= now,
        or_(timers.c.lease_until.is_(None), timers.c.lease_until <= now),
    )
    async with store.engine.connect() as connection:
        # A plain read first: most polls find nothing due and then take no write lock, which
        # matters on SQLite where every writer of the process queues behind one lock.
        if (
            await connection.execute(select(timers.c.id).where(claimable).limit(1))
        ).first() is None:
            return []
    lease_until = now + timedelta(seconds=lease_s)
    async with store.unit_of_work() as uow:
        rows = (
            await uow.connection.execute(
                select(timers)
                .where(claimable)
                .order_by(timers.c.due_at, timers.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if rows:
            await uow.connection.execute(
                update(timers)
                .where(timers.c.id.in_([row.id for row in rows]))
                .values(lease_until=lease_until)
            )
    return [_timer(row) for row in rows]


async def release(store: SqlEventStore, *timer_ids: int) -> None:
    """Give claimed timers back at once (their step lost a race and should run again soon)."""
    async with store.unit_of_work() as uow:
        await uow.connection.execute(
            update(timers).where(timers.c.id.in_(timer_ids)).values(lease_until=None)
        )


async def pending(store: SqlEventStore, service: str, workflow_id: str) -> list[Timer]:
    """Every armed timer of one workflow, due first (for operators and tests)."""
    async with store.engine.connect() as connection:
        rows = (
            await connection.execute(
                select(timers)
                .where(timers.c.service == service, timers.c.workflow_id == workflow_id)
                .order_by(timers.c.due_at, timers.c.id)
            )
        ).all()
    return [_timer(row) for row in rows]


def _timer(row: Any) -> Timer:
    return Timer(
        id=row.id,
        service=row.service,
        workflow_id=row.workflow_id,
        chain=row.chain,
        kind=row.kind,
        due_at=row.due_at,
        payload=dict(row.payload),
    )
