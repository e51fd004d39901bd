"""Durable timers: every wait of a service is a row, so a restart loses none of them.

A timer is armed in the transaction that records the state it waits on (`schedule`), claimed by
one replica at a time with a short lease (`claim_due`, its own short transaction; PostgreSQL
skips rows another replica has locked), and deleted in the transaction that records its outcome
(`complete`). A replica that dies holding a lease only delays the timer: once the lease expires
the timer is claimable again. A timer therefore fires at least once; the work it triggers must
be idempotent (execution keys every broker action by its client order id). A holder whose work
outlasts the lease renews it (`extend_lease`) while the lease is still its own, so no other
replica fires the timer at the same time.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
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

from shared.eventstore.engine import single_read
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

_ARM = insert(timers)


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
    lease_until: datetime | None = None
    """Until when the replica that claimed it holds it (as set by its claim or last renewal)."""


@dataclass(frozen=True, slots=True)
class Arming:
    """A timer to arm for the caller's service and workflow."""

    chain: str
    kind: str
    due_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)


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
    await schedule_all(
        uow,
        service=service,
        workflow_id=workflow_id,
        armed=[Arming(chain, kind, due_at, payload or {})],
    )


async def schedule_all(
    uow: UnitOfWork, *, service: str, workflow_id: str, armed: Sequence[Arming]
) -> None:
    """Arm several timers of one workflow in the caller's transaction with one round trip: a step
    that prices a phase arms a timer per order, and a statement each was a round trip each. The
    rows go as one statement's parameter sets, not as a multi-row VALUES, which SQLAlchemy would
    compile anew on every call (docs/performance.md, Statements per workflow)."""
    if not armed:
        return
    await uow.connection.execute(
        _ARM,
        [
            {
                "service": service,
                "workflow_id": workflow_id,
                "chain": timer.chain,
                "kind": timer.kind,
                "due_at": timer.due_at,
                "lease_until": None,
                "payload": timer.payload,
            }
            for timer in armed
        ],
    )


async def complete(uow: UnitOfWork, *timer_ids: int) -> None:
    """Delete fired timers in the transaction that records what they did."""
    await uow.connection.execute(delete(timers).where(timers.c.id.in_(timer_ids)))


async def claim_due(
    store: SqlEventStore,
    service: str,
    now: datetime,
    lease_s: float,
    limit: int = 100,
    *,
    skip_workflows: Collection[str] = (),
) -> list[Timer]:
    """Lease up to `limit` timers of `service` due by `now` (oldest first) for `lease_s` seconds,
    none of `skip_workflows` (workflows the caller is still stepping: their timers wait for
    that step's commit, so one workflow's timers never run side by side on its state).

    Timers whose lease has expired are claimable again, so a replica that died mid-step does
    not strand its timers.
    """
    claimable = and_(
        timers.c.service == service,
        timers.c.due_at <= now,
        or_(timers.c.lease_until.is_(None), timers.c.lease_until <= now),
    )
    if skip_workflows:
        claimable = and_(claimable, timers.c.workflow_id.not_in(list(skip_workflows)))
    async with single_read(store.engine) as connection:
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
    return [replace(_timer(row), lease_until=lease_until) for row in rows]


async def extend_lease(
    store: SqlEventStore, held: Sequence[Timer], now: datetime, lease_s: float
) -> list[Timer]:
    """Renew the leases of timers the caller still holds to `now + lease_s`; returns the ones
    renewed. A timer whose lease is no longer the one the caller was given (it expired and
    another replica claimed the timer, or it was completed) is left alone and not returned, and
    so is one another transaction has locked (its step is committing it): the renewal waits on no
    row, so it cannot deadlock with those commits, which lock a workflow's timers in another
    order."""
    if not held:
        return []
    lease_until = now + timedelta(seconds=lease_s)
    by_lease: dict[datetime | None, list[int]] = {}
    for timer in held:
        by_lease.setdefault(timer.lease_until, []).append(timer.id)
    renewed: set[int] = set()
    async with store.unit_of_work() as uow:
        for held_until, ids in by_lease.items():
            if held_until is None:
                continue
            unlocked = (
                select(timers.c.id)
                .where(timers.c.id.in_(ids), timers.c.lease_until == held_until)
                .with_for_update(skip_locked=True)
            )
            result = await uow.connection.execute(
                update(timers)
                .where(timers.c.id.in_(unlocked))
                .values(lease_until=lease_until)
                .returning(timers.c.id)
            )
            renewed.update(result.scalars())
    return [replace(timer, lease_until=lease_until) for timer in held if timer.id in renewed]


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
        lease_until=row.lease_until,
    )
