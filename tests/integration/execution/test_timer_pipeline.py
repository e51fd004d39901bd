"""Execution's timer loop as a pipeline (docs/trading-rules.md, Durable timers): a slow workflow
holds up only itself, a workflow's timers never run side by side, and a step that outlasts its
lease keeps it, so two replicas never fire one timer at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.execution import timer_loop
from services.execution.executor import Executor
from shared.broker.port import Broker
from shared.eventstore import timers
from shared.eventstore.port import EventStoreReader
from shared.eventstore.store import SqlEventStore
from shared.service import runtime
from shared.service.runtime import PeriodicOutcome, PeriodicRunner
from shared.settings import load_settings
from tests.eventually import eventually
from tests.integration.execution.world import migrated_sqlite

pytestmark = pytest.mark.integration

POLL_S = 0.02


def no_broker(account_id: str) -> Broker:
    raise AssertionError(f"no broker is needed here (asked for {account_id})")


class Stepping(Executor):
    """An executor whose steps record nothing but their timers' deletion, and count who fires
    what; the workflows in `held` wait in their step until `release` is set, or for `hold_s`."""

    def __init__(self, tmp_path: Path, held: Sequence[str] = (), hold_s: float = 0.0) -> None:
        super().__init__(load_settings(data_dir=tmp_path), no_broker)
        self.held = set(held)
        self.hold_s = hold_s
        self.release = asyncio.Event()
        self.firing: Counter[str] = Counter()
        self.most_at_once: Counter[str] = Counter()
        self.fired: list[int] = []

    async def fire(
        self, store: EventStoreReader, workflow_id: str, due: Sequence[timers.Timer]
    ) -> PeriodicOutcome:
        self.firing[workflow_id] += 1
        self.most_at_once[workflow_id] = max(
            self.most_at_once[workflow_id], self.firing[workflow_id]
        )
        self.fired.extend(timer.id for timer in due)
        try:
            if workflow_id in self.held:
                await self.release.wait()
            await asyncio.sleep(self.hold_s)
        finally:
            self.firing[workflow_id] -= 1
        return PeriodicOutcome(f"{workflow_id}/execution", fired=due)


class Rearming(Stepping):
    """Every step arms the workflow's next timer, already due (a retry at once)."""

    def __init__(self, tmp_path: Path, store: SqlEventStore) -> None:
        super().__init__(tmp_path)
        self.store = store

    async def fire(
        self, store: EventStoreReader, workflow_id: str, due: Sequence[timers.Timer]
    ) -> PeriodicOutcome:
        await arm(self.store, workflow_id)
        return await super().fire(store, workflow_id, due)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlEventStore]:
    event_store = SqlEventStore(await migrated_sqlite(tmp_path))
    yield event_store
    await event_store.close()


async def arm(store: SqlEventStore, workflow_id: str, kind: str = "poll") -> int:
    async with store.unit_of_work() as uow:
        await timers.schedule(
            uow,
            service="execution",
            workflow_id=workflow_id,
            chain="BUY:SPY",
            kind=kind,
            due_at=datetime.now(UTC) - timedelta(seconds=1),
        )
    return (await timers.pending(store, "execution", workflow_id))[-1].id


@contextlib.asynccontextmanager
async def timer_loop_of(store: SqlEventStore, executor: Executor) -> AsyncIterator[None]:
    loop = asyncio.create_task(
        PeriodicRunner("execution", store).run(timer_loop.due_timers(executor, POLL_S))
    )
    try:
        yield
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


async def test_timers_of_other_workflows_fire_while_a_slow_one_is_still_firing(
    store: SqlEventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two slots and a backlog of three workflows: the slot "other" frees is refilled with
    # "fast" while "slow" is still being stepped.
    monkeypatch.setattr(timer_loop, "IN_FLIGHT", 2)
    monkeypatch.setattr(timer_loop, "CLAIM_BATCH", 1)
    executor = Stepping(tmp_path, held=["slow"])
    first = await arm(store, "slow")
    await arm(store, "other")
    fast = await arm(store, "fast")
    async with timer_loop_of(store, executor):
        await eventually(
            lambda: fast in executor.fired and executor.firing["fast"] == 0,
            message="the fast workflow's timer waited for the slow one",
        )
        assert executor.firing["slow"] == 1
        assert await timers.pending(store, "execution", "fast") == []
        second = await arm(store, "slow", kind="cancel_check")
        await asyncio.sleep(10 * POLL_S)
        assert len(executor.fired) == 3, "a workflow's timer fired beside its running step"

        executor.release.set()
        await eventually(lambda: len(executor.fired) == 4, message="the slow one's next timer")
        await eventually(
            lambda: none_pending(store, "slow"), message="the slow one's timers not recorded"
        )

    assert executor.fired[0] == first
    assert executor.fired[-1] == second
    assert executor.most_at_once["slow"] == 1


async def test_a_workflow_that_keeps_arming_due_timers_does_not_keep_the_round_going(
    store: SqlEventStore, tmp_path: Path
) -> None:
    """A round ends once a claim finds less than it could take, as a caller stepping the loop
    round by round (the loopback tests) relies on."""
    executor = Rearming(tmp_path, store)
    await arm(store, "busy")
    runner = PeriodicRunner("execution", store)
    recorded = await asyncio.wait_for(
        runner.run_once(timer_loop.due_timers(executor, POLL_S)), timeout=10
    )
    assert recorded == 1
    assert len(executor.fired) == 1
    assert len(await timers.pending(store, "execution", "busy")) == 1, "the new timer is kept"


async def test_two_replicas_never_fire_a_timer_twice_when_steps_outlast_the_lease(
    store: SqlEventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "TIMER_LEASE_S", 0.3)
    monkeypatch.setattr(timer_loop, "LEASE_RENEWAL_S", 0.1)
    armed = [await arm(store, f"wf-{index}") for index in range(6)]
    replicas = [Stepping(tmp_path, hold_s=1.0), Stepping(tmp_path, hold_s=1.0)]

    async with timer_loop_of(store, replicas[0]), timer_loop_of(store, replicas[1]):
        await eventually(
            lambda: all_recorded(store, len(armed)),
            timeout_s=20,
            message="the timers were not all recorded",
        )

    fired = Counter(timer_id for replica in replicas for timer_id in replica.fired)
    assert sorted(fired) == sorted(armed)
    assert set(fired.values()) == {1}, f"fired more than once: {fired}"


async def none_pending(store: SqlEventStore, workflow_id: str) -> bool:
    return await timers.pending(store, "execution", workflow_id) == []


async def all_recorded(store: SqlEventStore, count: int) -> bool:
    for index in range(count):
        if not await none_pending(store, f"wf-{index}"):
            return False
    return True
