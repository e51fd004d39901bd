"""Non-positive cash (trading spec §2.3): by default the step fails naming the cash; with
liquidation on, every position is closed and the plan is made once cash is positive again —
the wait being durable timers, not a sleep."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from services.portfolio import liquidation
from services.portfolio.plan_step import PlanStep
from shared.broker.port import Broker
from shared.broker.simulated import Scenario
from shared.events.plans import RebalancePlanned
from shared.events.workflow import WorkflowFailed
from shared.eventstore import timers
from shared.eventstore.store import SqlEventStore
from shared.messaging.consumer import HandlerContext, HandlerOutcome
from shared.service.runtime import PeriodicRunner
from tests.integration.broker.simulated_world import (
    SimulatedWorld,
    migrated_sqlite,
    new_broker,
    sim_settings,
)
from tests.integration.portfolio.test_plan_step import signal


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[str]:
    yield await migrated_sqlite(tmp_path)


def in_debt(database: str) -> tuple[SimulatedWorld, Broker]:
    scenario = Scenario()
    world = SimulatedWorld(database, "default", scenario)
    broker = new_broker(database, scenario=scenario)
    world.set_position("SPY", Decimal("10"), Decimal("590"))
    world.set_cash(Decimal("-100"))
    return world, broker


async def test_by_default_non_positive_cash_fails_naming_the_cash(database: str) -> None:
    _, broker = in_debt(database)

    async def broker_for(account_id: str) -> Broker:
        return broker

    store = SqlEventStore(database)
    step = PlanStep(sim_settings(), broker_for)
    [failure] = await step.handle(signal({"SPY": Decimal(1)}), HandlerContext("portfolio", store))
    assert isinstance(failure, WorkflowFailed)
    assert "cash is $-100.00" in failure.failure_reason
    assert "liquidation" in failure.failure_reason
    assert await broker.get_positions()  # nothing was sold
    await store.close()


async def test_with_liquidation_on_everything_is_closed_then_the_plan_is_made(
    database: str,
) -> None:
    _, broker = in_debt(database)

    async def broker_for(account_id: str) -> Broker:
        return broker

    settings = sim_settings(liquidate_on_non_positive_cash=True, liquidation_wait_s=30)
    store = SqlEventStore(database)
    step = PlanStep(settings, broker_for)
    cause = signal({"SPY": Decimal(1)})
    async with store.unit_of_work() as uow:
        await uow.append(f"{cause.correlation_id}/strategy", 0, [cause])

    outcome = await step.handle(cause, HandlerContext("portfolio", store))
    assert isinstance(outcome, HandlerOutcome) and not outcome.events
    assert await broker.get_positions() == []  # closed at once (immediate fills)
    assert outcome.in_transaction is not None
    async with store.unit_of_work() as uow:
        await outcome.in_transaction(uow)
    [armed] = await timers.pending(store, liquidation.SERVICE, cause.correlation_id)
    assert armed.kind == liquidation.KIND

    assert await PeriodicRunner(liquidation.SERVICE, store).record(
        await step.check_liquidation(armed, store)
    )

    events = [r.event for r in await store.read_correlation(cause.correlation_id)]
    planned = [e for e in events if isinstance(e, RebalancePlanned)]
    assert len(planned) == 1
    assert [(i.symbol, i.action) for i in planned[0].items] == [("SPY", "BUY")]
    assert planned[0].snapshot.cash > 0
    assert await timers.pending(store, liquidation.SERVICE, cause.correlation_id) == []
    await store.close()
