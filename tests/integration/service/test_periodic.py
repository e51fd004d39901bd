"""The runtime's periodic work: what a round yields is committed in one transaction with the
timers it fired, a conflict gives the timers back, and a database outage is waited out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.eventstore import service_state, timers
from shared.eventstore.errors import EventStoreUnavailableError
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore, UnitOfWork
from shared.service import runtime
from shared.service.runtime import Periodic, PeriodicContext, PeriodicOutcome, PeriodicRunner
from tests.eventually import eventually
from tests.integration.eventstore.position_lock import holds_position_lock
from tests.unit.events.examples import order_filled

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlEventStore]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    await upgrade(url)
    event_store = SqlEventStore(url)
    yield event_store
    await event_store.close()


async def armed(store: SqlEventStore, workflow_id: str) -> timers.Timer:
    async with store.unit_of_work() as uow:
        await timers.schedule(
            uow,
            service="execution",
            workflow_id=workflow_id,
            chain="",
            kind="check",
            due_at=datetime.now(UTC) - timedelta(seconds=1),
        )
    return (await timers.pending(store, "execution", workflow_id))[0]


def firing(record: PeriodicOutcome | None = None) -> Periodic:
    """Claims the due timers and yields one outcome firing them (or `record` as it is)."""

    async def fire(context: PeriodicContext) -> AsyncGenerator[PeriodicOutcome, None]:
        due = await context.claim_due_timers()
        if due:
            yield record or PeriodicOutcome("wf/execution", fired=due)

    return Periodic("timers", 0.01, fire)


async def test_an_outcome_commits_its_events_its_writes_and_its_fired_timers_together(
    store: SqlEventStore,
) -> None:
    timer = await armed(store, "wf")
    woken: list[bool] = []

    async def save(uow: UnitOfWork) -> None:
        await service_state.save(uow, "execution", "wf", {"phase": "done"}, 0)

    event = order_filled(correlation_id="wf")
    runner = PeriodicRunner("execution", store, on_commit=lambda: woken.append(True))
    outcome = PeriodicOutcome("wf/execution", [event], in_transaction=save, fired=[timer])
    assert await runner.run_once(firing(outcome)) == 1

    assert [r.event for r in await store.read_stream("wf/execution")] == [event]
    assert (await store.load_state("execution", "wf")) == service_state.StoredState(
        1, {"phase": "done"}
    )
    assert await timers.pending(store, "execution", "wf") == []
    assert woken == [True]


async def test_a_conflict_records_nothing_and_gives_the_fired_timers_back(
    store: SqlEventStore,
) -> None:
    timer = await armed(store, "wf")
    async with store.unit_of_work() as uow:
        await service_state.save(uow, "execution", "wf", {"phase": "moved on"}, 0)

    async def stale_save(uow: UnitOfWork) -> None:
        await service_state.save(uow, "execution", "wf", {"phase": "stale"}, 0)

    [claimed] = await timers.claim_due(store, "execution", datetime.now(UTC), 60.0)
    outcome = PeriodicOutcome(
        "wf/execution",
        [order_filled(correlation_id="wf")],
        in_transaction=stale_save,
        fired=[claimed],
    )
    assert not await PeriodicRunner("execution", store).record(outcome)

    assert await store.read_stream("wf/execution") == []
    assert (await store.load_state("execution", "wf")) == service_state.StoredState(
        1, {"phase": "moved on"}
    )
    assert [t.id for t in await timers.claim_due(store, "execution", datetime.now(UTC), 60.0)] == [
        timer.id
    ], "the timer is claimable again at once, not after its lease"


async def test_an_outcomes_writes_go_before_its_append_takes_the_position_lock(
    postgres_url: str,
) -> None:
    """On PostgreSQL the outcome's own writes and the fired timers' deletion come before its
    append, so the global position lock is held only for the append and the commit
    (docs/operations.md, Capacity model)."""
    await upgrade(postgres_url)
    store = SqlEventStore(postgres_url)
    try:
        await armed(store, "wf")
        [claimed] = await timers.claim_due(store, "execution", datetime.now(UTC), 60.0)
        locked_during_writes: list[bool] = []

        async def save(uow: UnitOfWork) -> None:
            await service_state.save(uow, "execution", "wf", {"phase": "done"}, 0)
            locked_during_writes.append(await holds_position_lock(uow))

        event = order_filled(correlation_id="wf")
        outcome = PeriodicOutcome("wf/execution", [event], in_transaction=save, fired=[claimed])
        assert await PeriodicRunner("execution", store).record(outcome)

        assert locked_during_writes == [False]
        assert [r.event for r in await store.read_stream("wf/execution")] == [event]
        assert await timers.pending(store, "execution", "wf") == []
    finally:
        await store.close()


async def test_a_database_outage_is_waited_out_and_the_work_goes_on(
    store: SqlEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "OUTAGE_PAUSES_S", (0.01,))
    rounds: list[int] = []

    async def flaky(context: PeriodicContext) -> AsyncGenerator[PeriodicOutcome, None]:
        rounds.append(len(rounds) + 1)
        if len(rounds) <= 2:
            raise EventStoreUnavailableError("event store is unreachable")
        return
        yield

    task = asyncio.create_task(PeriodicRunner("strategy", store).run(Periodic("f", 0.01, flaky)))
    try:
        await eventually(lambda: len(rounds) >= 4, message="rounds after the outage")
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_any_other_error_ends_the_work_for_the_runtime_to_report(
    store: SqlEventStore,
) -> None:
    async def broken(context: PeriodicContext) -> AsyncGenerator[PeriodicOutcome, None]:
        raise KeyError("a bug")
        yield

    with pytest.raises(KeyError, match="a bug"):
        await PeriodicRunner("strategy", store).run(Periodic("broken", 0.01, broken))
