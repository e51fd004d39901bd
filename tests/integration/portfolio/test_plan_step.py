"""The portfolio step on the simulated broker: the account is read, the plan made and recorded
with the snapshot it came from; a planning failure fails the workflow with its real cause."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from services.portfolio.plan_step import PlanStep
from shared.broker.port import Broker
from shared.events.ids import plan_id, signal_fingerprint
from shared.events.plans import RebalancePlanned
from shared.events.signals import ConsolidatedPortfolio, SignalGenerated, StrategySignal
from shared.events.workflow import WorkflowFailed
from shared.eventstore.store import SqlEventStore
from shared.messaging.consumer import HandlerContext
from tests.integration.broker.simulated_world import migrated_sqlite, new_broker, sim_settings


def signal(targets: dict[str, Decimal]) -> SignalGenerated:
    workflow_id = str(uuid.uuid4())
    return SignalGenerated(
        correlation_id=workflow_id,
        causation_id=str(uuid.uuid4()),
        account_id="default",
        occurred_at=dt.datetime.now(dt.UTC),
        source="strategy",
        strategies=(StrategySignal(strategy="a.clj", weight=Decimal(1), allocation=targets),),
        consolidated_portfolio=ConsolidatedPortfolio(
            target_allocations=targets,
            correlation_id=workflow_id,
            timestamp=dt.datetime.now(dt.UTC),
            strategy_count=1,
            source_strategies=("a.clj",),
        ),
        as_of=dt.date(2024, 11, 27),
        bars_hash="bars",
        synthetic_bars=False,
        strategy_files_hash="files",
        signal_fingerprint=signal_fingerprint(targets),
    )


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[HandlerContext, PlanStep]]:
    url = await migrated_sqlite(tmp_path)
    store = SqlEventStore(url)
    broker = new_broker(url)

    async def broker_for(account_id: str) -> Broker:
        return broker

    yield HandlerContext("portfolio", store), PlanStep(sim_settings(), broker_for)
    await store.close()


async def test_a_fresh_account_plans_buys_of_every_target_within_the_reserve(
    world: tuple[HandlerContext, PlanStep],
) -> None:
    context, step = world
    cause = signal({"SPY": Decimal("0.6"), "QQQ": Decimal("0.4")})
    [planned] = await step.handle(cause, context)

    assert isinstance(planned, RebalancePlanned)
    assert planned.plan_id == plan_id(cause.correlation_id)
    assert planned.causation_id == str(cause.event_id)
    assert planned.trades_required
    amounts = {item.symbol: (item.action, item.trade_amount) for item in planned.items}
    assert amounts == {"SPY": ("BUY", Decimal("59400.00")), "QQQ": ("BUY", Decimal("39600.00"))}
    assert planned.snapshot.cash == Decimal("100000")
    assert {quote.symbol for quote in planned.snapshot.quotes} == {"SPY", "QQQ"}
    assert planned.signal_fingerprint == cause.signal_fingerprint


async def test_a_target_without_a_price_fails_the_workflow_naming_the_symbol(
    world: tuple[HandlerContext, PlanStep],
) -> None:
    context, step = world
    [failure] = await step.handle(signal({"SPY": Decimal("0.5"), "NOPE": Decimal("0.5")}), context)

    assert isinstance(failure, WorkflowFailed)
    assert failure.failure_step == "portfolio_analysis"
    assert "Invalid price for NOPE" in failure.failure_reason


async def test_a_second_signal_for_a_planned_workflow_is_ignored(
    world: tuple[HandlerContext, PlanStep],
) -> None:
    context, step = world
    cause = signal({"SPY": Decimal("1")})
    [planned] = await step.handle(cause, context)
    async with context.store.unit_of_work() as uow:
        await uow.append(f"{cause.correlation_id}/portfolio", 0, [planned])
    assert await step.handle(cause, context) == ()
