"""Durable timers and service state on SQLite and PostgreSQL: what the execution state machine
relies on to survive a restart and to share work between replicas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine.interfaces import CacheStats

from shared.eventstore import service_state, timers
from shared.eventstore.errors import ConcurrencyError
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from tests.integration.execution.world import migrated_sqlite
from tests.servers import create_postgres_database, drop_postgres_database

T0 = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlEventStore]:
    if request.param == "sqlite":
        url = await migrated_sqlite(tmp_path)
        store = SqlEventStore(url)
        yield store
        await store.close()
        return
    url = await create_postgres_database()
    store = SqlEventStore(url)
    try:
        await upgrade(url)
        yield store
    finally:
        await store.close()
        await drop_postgres_database(url)


async def arm(store: SqlEventStore, kind: str, due_at: datetime, workflow: str = "wf") -> None:
    async with store.unit_of_work() as uow:
        await timers.schedule(
            uow,
            service="execution",
            workflow_id=workflow,
            chain="BUY:SPY",
            kind=kind,
            due_at=due_at,
            payload={"reason": "fallback"},
        )


async def test_only_due_timers_are_claimed_oldest_first(store: SqlEventStore) -> None:
    await arm(store, "poll", T0 + timedelta(seconds=2))
    await arm(store, "submit", T0)
    await arm(store, "later", T0 + timedelta(seconds=60))

    claimed = await timers.claim_due(store, "execution", T0 + timedelta(seconds=5), 10.0)

    assert [timer.kind for timer in claimed] == ["submit", "poll"]
    assert claimed[0].payload == {"reason": "fallback"}
    assert claimed[0].due_at == T0


async def test_a_leased_timer_is_not_claimed_again_until_its_lease_expires(
    store: SqlEventStore,
) -> None:
    await arm(store, "poll", T0)
    first = await timers.claim_due(store, "execution", T0, 10.0)

    during_lease = await timers.claim_due(store, "execution", T0 + timedelta(seconds=9), 10.0)
    after_lease = await timers.claim_due(store, "execution", T0 + timedelta(seconds=11), 10.0)

    assert len(first) == 1 and during_lease == []
    assert [timer.id for timer in after_lease] == [first[0].id]


async def test_a_completed_timer_is_gone_and_a_released_one_fires_again(
    store: SqlEventStore,
) -> None:
    await arm(store, "poll", T0)
    await arm(store, "submit", T0)
    poll, submit = await timers.claim_due(store, "execution", T0, 10.0)

    async with store.unit_of_work() as uow:
        await timers.complete(uow, poll.id)
    await timers.release(store, submit.id)

    again = await timers.claim_due(store, "execution", T0 + timedelta(seconds=1), 10.0)
    assert [timer.id for timer in again] == [submit.id]


async def test_a_timer_armed_in_a_rolled_back_transaction_does_not_exist(
    store: SqlEventStore,
) -> None:
    with pytest.raises(RuntimeError):
        async with store.unit_of_work() as uow:
            await timers.schedule(
                uow, service="execution", workflow_id="wf", chain="", kind="x", due_at=T0
            )
            raise RuntimeError("step failed after arming")

    assert await timers.pending(store, "execution", "wf") == []


async def test_timers_of_other_services_are_not_claimed(store: SqlEventStore) -> None:
    async with store.unit_of_work() as uow:
        await timers.schedule(
            uow, service="notify", workflow_id="wf", chain="", kind="x", due_at=T0
        )

    assert await timers.claim_due(store, "execution", T0, 10.0) == []


async def test_state_is_saved_and_versioned(store: SqlEventStore) -> None:
    async with store.unit_of_work() as uow:
        assert await service_state.save(uow, "execution", "wf", {"phase": "selling"}, 0) == 1
    async with store.unit_of_work() as uow:
        assert await service_state.save(uow, "execution", "wf", {"phase": "buying"}, 1) == 2

    loaded = await service_state.load(store, "execution", "wf")

    assert loaded == service_state.StoredState(2, {"phase": "buying"})
    assert await service_state.load(store, "execution", "other") is None


async def test_a_stale_version_is_a_concurrency_error_and_writes_nothing(
    store: SqlEventStore,
) -> None:
    async with store.unit_of_work() as uow:
        await service_state.save(uow, "execution", "wf", {"phase": "selling"}, 0)
    async with store.unit_of_work() as uow:
        await service_state.save(uow, "execution", "wf", {"phase": "settling"}, 1)

    with pytest.raises(ConcurrencyError, match=r"execution/'wf'.*expected version 1.*version 2"):
        async with store.unit_of_work() as uow:
            await service_state.save(uow, "execution", "wf", {"phase": "buying"}, 1)
    with pytest.raises(ConcurrencyError, match="expected version 0"):
        async with store.unit_of_work() as uow:
            await service_state.save(uow, "execution", "wf", {"phase": "buying"}, 0)

    loaded = await service_state.load(store, "execution", "wf")
    assert loaded is not None and loaded.document == {"phase": "settling"}


async def test_a_first_save_is_one_statement_and_a_second_first_save_conflicts(
    store: SqlEventStore,
) -> None:
    """A savepoint around the first insert cost two more round trips per workflow
    (docs/performance.md, Statements per workflow)."""
    statements: list[str] = []

    @event.listens_for(store.engine.sync_engine, "before_cursor_execute")
    def record(*arguments: Any) -> None:
        statements.append(arguments[2].split()[0].upper())

    async with store.unit_of_work() as uow:
        statements.clear()
        await service_state.save(uow, "execution", "wf", {"phase": "selling"}, 0)
        assert statements == ["INSERT"]
        with pytest.raises(ConcurrencyError, match=r"expected version 0 but it is at version 1"):
            await service_state.save(uow, "execution", "wf", {"phase": "buying"}, 0)

    loaded = await service_state.load(store, "execution", "wf")
    assert loaded == service_state.StoredState(1, {"phase": "selling"})


async def test_replicas_claiming_at_once_never_share_a_timer(store: SqlEventStore) -> None:
    for index in range(20):
        await arm(store, f"poll-{index}", T0, workflow=f"wf-{index}")

    first, second = await asyncio.gather(
        timers.claim_due(store, "execution", T0, 10.0, limit=15),
        timers.claim_due(store, "execution", T0, 10.0, limit=15),
    )

    first_ids, second_ids = {t.id for t in first}, {t.id for t in second}
    assert first_ids.isdisjoint(second_ids)
    assert len(first_ids | second_ids) == 20


async def test_a_claim_skips_the_workflows_the_claimer_is_still_stepping(
    store: SqlEventStore,
) -> None:
    await arm(store, "poll", T0, workflow="stepping")
    await arm(store, "poll", T0 + timedelta(seconds=1), workflow="idle")

    claimed = await timers.claim_due(
        store, "execution", T0 + timedelta(seconds=2), 10.0, skip_workflows=["stepping"]
    )

    assert [timer.workflow_id for timer in claimed] == ["idle"]
    later = await timers.claim_due(store, "execution", T0 + timedelta(seconds=3), 10.0)
    assert [timer.workflow_id for timer in later] == ["stepping"]


async def test_a_renewed_lease_keeps_a_timer_from_other_claimers_past_its_first_lease(
    store: SqlEventStore,
) -> None:
    await arm(store, "poll", T0)
    [held] = await timers.claim_due(store, "execution", T0, 10.0)
    assert held.lease_until == T0 + timedelta(seconds=10)

    [renewed] = await timers.extend_lease(store, [held], T0 + timedelta(seconds=5), 10.0)

    assert renewed.lease_until == T0 + timedelta(seconds=15)
    assert await timers.claim_due(store, "execution", T0 + timedelta(seconds=12), 10.0) == []
    [again] = await timers.claim_due(store, "execution", T0 + timedelta(seconds=16), 10.0)
    assert again.id == held.id


async def test_a_lease_another_claimer_took_over_is_not_renewed(store: SqlEventStore) -> None:
    await arm(store, "poll", T0)
    [lapsed] = await timers.claim_due(store, "execution", T0, 10.0)
    [taken] = await timers.claim_due(store, "execution", T0 + timedelta(seconds=11), 10.0)
    assert taken.id == lapsed.id

    assert await timers.extend_lease(store, [lapsed], T0 + timedelta(seconds=12), 10.0) == []
    assert await timers.claim_due(store, "execution", T0 + timedelta(seconds=22), 10.0) != [], (
        "the other claimer's lease (to 21 s) was not stretched to 22 s"
    )


async def test_a_renewal_skips_a_timer_whose_commit_is_under_way_instead_of_waiting(
    store: SqlEventStore,
) -> None:
    """A renewal that waited on a committing step's row could deadlock with it: the commit
    deletes a workflow's timers in its own order while the renewal updates them in another
    (a 10,000-account load run lost execution's timer loop to that deadlock)."""
    if store.engine.dialect.name == "sqlite":
        pytest.skip("SQLite has one writer at a time: a renewal cannot meet another commit's rows")
    await arm(store, "price", T0)
    await arm(store, "submit", T0)
    held = await timers.claim_due(store, "execution", T0, 10.0)
    committing, other = held
    async with store.unit_of_work() as uow:
        await timers.complete(uow, committing.id)
        renewed = await asyncio.wait_for(
            timers.extend_lease(store, held, T0 + timedelta(seconds=5), 10.0), timeout=5
        )
    assert [timer.id for timer in renewed] == [other.id]


async def test_a_step_s_timers_are_armed_by_one_statement_compiled_once(
    store: SqlEventStore,
) -> None:
    """A phase arms a timer per order, and each insert was a round trip; a multi-row VALUES was
    compiled anew on every call (docs/performance.md, Statements per workflow)."""
    inserts: list[tuple[str, bool]] = []

    @event.listens_for(store.engine.sync_engine, "before_cursor_execute")
    def record(*arguments: Any) -> None:
        statement, context = arguments[2], arguments[4]
        if statement.lstrip().upper().startswith("INSERT INTO TIMERS"):
            inserts.append((statement, context.cache_hit is CacheStats.CACHE_HIT))

    armed = [
        timers.Arming(f"BUY:{symbol}", "submit", T0 + timedelta(seconds=i), {"n": i})
        for i, symbol in enumerate(("SPY", "TLT", "GLD", "QQQ"))
    ]
    for workflow_id in ("wf", "wf2"):
        async with store.unit_of_work() as uow:
            await timers.schedule_all(
                uow, service="execution", workflow_id=workflow_id, armed=armed
            )

    assert [cached for _, cached in inserts] == [False, True]
    pending = await timers.pending(store, "execution", "wf")
    assert [(t.chain, t.kind, t.due_at, t.payload) for t in pending] == [
        (a.chain, a.kind, a.due_at, a.payload) for a in armed
    ]
