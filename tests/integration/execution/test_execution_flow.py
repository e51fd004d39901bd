"""Execution end to end on a real event store (SQLite and PostgreSQL) with the simulated
broker: a plan in, orders at the broker, `TradeExecuted` and the workflow verdict out."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from services.execution.executor import Executor
from shared.broker.factory import broker_for
from shared.broker.request_budget import BudgetShare
from shared.broker.simulated import Scenario
from shared.broker.simulated.scenario import SymbolFill
from shared.bus.memory import InMemoryBus
from shared.events import OrderCancelled, OrderFilled, OrderRequested
from shared.events.trades import TradeExecuted
from shared.eventstore import timers
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.messaging.consumer import Consumer
from shared.service.runtime import PeriodicRunner
from tests.eventually import eventually
from tests.integration.execution.world import (
    CLOSED_SIM_NOW,
    RunningExecution,
    bars,
    fast_settings,
    message,
    migrated_sqlite,
    plan_event,
    running_execution,
)
from tests.servers import create_postgres_database, drop_postgres_database

TOLERANCE = Decimal("0.01")
"""Positions may differ from the plan's dollars by the spread and share rounding: 1 %."""


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated event store on each backend (PostgreSQL: a fresh database, dropped after)."""
    if request.param == "sqlite":
        yield await migrated_sqlite(tmp_path)
        return
    url = await create_postgres_database()
    try:
        await upgrade(url)
        yield url
    finally:
        await drop_postgres_database(url)


async def test_plan_is_executed_into_positions_and_completes_the_workflow(
    database_url: str, tmp_path: Path
) -> None:
    settings = fast_settings(database_url, tmp_path)
    plan = [("SPY", "BUY", "40000", "0.4"), ("QQQ", "BUY", "30000", "0.3")]
    async with running_execution(settings) as execution:
        await execution.deliver(plan_event("wf-buy", plan))
        await eventually(lambda: execution.finished("wf-buy"), message="workflow not finished")

        types = await execution.event_types("wf-buy")
        assert types.count("TradeExecuted") == 1
        assert types.count("WorkflowCompleted") == 1 and "WorkflowFailed" not in types
        assert types.count("OrderRequested") == 2 and types.count("OrderFilled") == 2
        positions = {p.symbol: p for p in await execution.broker().get_positions()}
        for symbol, _, amount, _ in plan:
            value = positions[symbol].qty * positions[symbol].avg_entry_price
            assert abs(value - Decimal(amount)) <= Decimal(amount) * TOLERANCE
        assert await timers.pending(execution.store, "execution", "wf-buy") == []


async def test_sells_are_executed_before_the_buys_they_pay_for(
    database_url: str, tmp_path: Path
) -> None:
    settings = fast_settings(database_url, tmp_path, sim_starting_cash=Decimal("50000"))
    async with running_execution(settings) as execution:
        await execution.deliver(plan_event("wf-1", [("SPY", "BUY", "45000", "0.9")]))
        await eventually(lambda: execution.finished("wf-1"))
        await execution.deliver(
            plan_event("wf-2", [("SPY", "SELL", "-45000", "0"), ("GLD", "BUY", "44000", "0.9")])
        )
        await eventually(lambda: execution.finished("wf-2"))
        assert execution.brokers_made == ["default", "default"]

        recorded = await execution.store.read_correlation("wf-2")
        requested = [r.event for r in recorded if isinstance(r.event, OrderRequested)]
        assert [(e.symbol, e.side) for e in requested] == [("SPY", "SELL"), ("GLD", "BUY")]
        positions = {p.symbol: p.qty for p in await execution.broker().get_positions()}
        assert "SPY" not in positions
        assert positions["GLD"] * Decimal(244) == pytest.approx(Decimal(44000), rel=Decimal("0.01"))
        assert "WorkflowCompleted" in [r.event.event_type for r in recorded]


async def test_no_trade_plan_completes_at_once_without_a_broker_call(
    database_url: str, tmp_path: Path
) -> None:
    settings = fast_settings(database_url, tmp_path)
    async with running_execution(settings) as execution:
        await execution.deliver(plan_event("wf-hold", [("SPY", "HOLD", "0", "0.5")]))

        types = await execution.event_types("wf-hold")
        assert types == ["TradeExecuted", "WorkflowCompleted"]
        trade = (await execution.store.read_correlation("wf-hold"))[0].event
        assert isinstance(trade, TradeExecuted)
        assert trade.success and trade.orders_placed == 0
        assert execution.brokers_made == []


async def test_second_plan_for_a_workflow_places_no_orders(
    database_url: str, tmp_path: Path
) -> None:
    settings = fast_settings(database_url, tmp_path)
    async with running_execution(settings) as execution:
        await execution.deliver(plan_event("wf-dup", [("TLT", "BUY", "9000", "0.1")]))
        await eventually(lambda: execution.finished("wf-dup"))
        await execution.deliver(plan_event("wf-dup", [("QQQ", "BUY", "9000", "0.1")]))

        types = await execution.event_types("wf-dup")
        assert types.count("OrderRequested") == 1 and types.count("TradeExecuted") == 1
        symbols = {p.symbol for p in await execution.broker().get_positions()}
        assert symbols == {"TLT"}


async def test_orders_that_never_fill_are_repegged_escalated_and_cancelled(
    database_url: str, tmp_path: Path
) -> None:
    settings = fast_settings(database_url, tmp_path, sim_now=CLOSED_SIM_NOW)
    async with running_execution(settings) as execution:
        await execution.deliver(plan_event("wf-closed", [("SPY", "BUY", "6000", "0.06")]))
        await eventually(lambda: execution.finished("wf-closed"), timeout_s=15)

        recorded = await execution.store.read_correlation("wf-closed")
        requested = [r.event for r in recorded if isinstance(r.event, OrderRequested)]
        assert [e.reason for e in requested] == ["initial", "repeg", "escalation"]
        cancelled = [r.event for r in recorded if isinstance(r.event, OrderCancelled)]
        assert [e.reason for e in cancelled] == ["repeg", "escalation", "leftover"]
        assert [r.event.event_type for r in recorded][-1] == "WorkflowFailed"
        assert await execution.broker().get_open_orders() == []


async def test_own_stale_orders_are_cancelled_and_foreign_ones_reported(
    database_url: str, tmp_path: Path
) -> None:
    from shared.broker.models import OrderRequest, OrderType
    from shared.trading import Side

    settings = fast_settings(database_url, tmp_path, sim_now=CLOSED_SIM_NOW)
    async with running_execution(settings) as execution:
        broker = execution.broker()
        for client_order_id in ("alc:wf-old:SPY:b:buy:1", "manual-7"):
            await broker.submit_order(
                OrderRequest(
                    symbol="SPY",
                    side=Side.BUY,
                    qty=Decimal(1),
                    order_type=OrderType.LIMIT,
                    limit_price=Decimal("500"),
                    client_order_id=client_order_id,
                )
            )
        await execution.deliver(
            plan_event("wf-new", [("SPY", "HOLD", "0", "0.5"), ("QQQ", "BUY", "500", "0.01")])
        )
        await eventually(lambda: execution.finished("wf-new"), timeout_s=15)

        trade = next(
            r.event
            for r in await execution.store.read_correlation("wf-new")
            if isinstance(r.event, TradeExecuted)
        )
        assert [o.client_order_id for o in trade.stale_orders_cancelled] == [
            "alc:wf-old:SPY:b:buy:1"
        ]
        assert [o.client_order_id for o in trade.foreign_open_orders] == ["manual-7"]
        still_open = [o.client_order_id for o in await broker.get_open_orders()]
        assert still_open == ["manual-7"]


async def test_plan_of_a_workflow_that_already_failed_is_skipped(
    database_url: str, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from shared.events.workflow import WorkflowFailed

    settings = fast_settings(database_url, tmp_path)
    async with running_execution(settings) as execution:
        failure = WorkflowFailed(
            correlation_id="wf-dead",
            account_id="default",
            occurred_at=datetime.now(UTC),
            source="strategy",
            failure_reason="no event for 600 s",
            failure_step="portfolio_analysis",
            deadline_exceeded=True,
            stalled_step="portfolio_analysis",
        )
        async with execution.store.unit_of_work() as uow:
            await uow.append("wf-dead/strategy", None, [failure])

        await execution.deliver(plan_event("wf-dead", [("SPY", "BUY", "6000", "0.06")]))

        assert await execution.event_types("wf-dead") == ["WorkflowFailed"]
        assert execution.brokers_made == []


async def test_two_replicas_sharing_the_timers_place_each_order_once(
    database_url: str, tmp_path: Path
) -> None:
    import asyncio
    import contextlib
    from collections import Counter

    from services.execution import timer_loop
    from services.execution.executor import Executor
    from shared.broker.factory import broker_for
    from shared.broker.request_budget import BudgetShare
    from shared.service.runtime import PeriodicRunner
    from tests.integration.execution.world import bars

    settings = fast_settings(database_url, tmp_path, sim_now=CLOSED_SIM_NOW)
    plan = [(symbol, "BUY", "5000", "0.05") for symbol in ("SPY", "QQQ", "TLT", "GLD")]
    async with running_execution(settings) as execution:
        replica = Executor(
            settings,
            lambda account: broker_for(settings, account, share=BudgetShare.EXECUTION, bars=bars()),
        )
        second_loop = asyncio.create_task(
            PeriodicRunner("execution", execution.store).run(
                timer_loop.due_timers(replica, settings.timer_poll_s)
            )
        )
        try:
            await execution.deliver(plan_event("wf-replicas", plan))
            await eventually(lambda: execution.finished("wf-replicas"), timeout_s=30)
        finally:
            second_loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await second_loop
            await replica.close()

        recorded = [r.event for r in await execution.store.read_correlation("wf-replicas")]
        intents = [e for e in recorded if isinstance(e, OrderRequested)]
        requested = Counter(e.client_order_id for e in intents)
        assert set(requested.values()) == {1}
        # Each chain went limit, then re-peg or (when one replica saw the other's re-peg cancel
        # as the broker's) straight to a market remainder, then market: 2 or 3 orders each.
        per_symbol = Counter(e.symbol for e in intents)
        assert set(per_symbol) == {"SPY", "QQQ", "TLT", "GLD"}
        assert set(per_symbol.values()) <= {2, 3}
        assert [e.event_type for e in recorded].count("TradeExecuted") == 1
        broker = execution.broker()
        for symbol, count in per_symbol.items():
            at_broker = await broker.get_orders(symbol, dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
            assert sorted(o.client_order_id for o in at_broker) == sorted(
                e.client_order_id for e in intents if e.symbol == symbol
            )
            assert len(at_broker) == count


async def test_a_new_executor_resumes_a_workflow_from_its_state_and_timers(
    database_url: str, tmp_path: Path
) -> None:
    settings = fast_settings(
        database_url, tmp_path, sim_now=CLOSED_SIM_NOW, exec_fill_wait_s=1.0, exec_poll_s=0.5
    )
    plan = plan_event("wf-resume", [("SPY", "BUY", "6000", "0.06")])
    async with running_execution(settings) as first:
        await first.deliver(plan)
        await eventually(lambda: _has(first, "wf-resume", "OrderSubmitted"))
    assert "OrderCancelled" not in await first.event_types("wf-resume")

    async with running_execution(settings) as second:
        await eventually(lambda: second.finished("wf-resume"), timeout_s=30)

        recorded = [r.event for r in await second.store.read_correlation("wf-resume")]
        assert [e.reason for e in recorded if isinstance(e, OrderRequested)] == [
            "initial",
            "repeg",
            "escalation",
        ]
        assert [e.event_type for e in recorded].count("TradeExecuted") == 1
        assert await timers.pending(second.store, "execution", "wf-resume") == []


async def _has(execution: RunningExecution, workflow_id: str, event_type: str) -> bool:
    return event_type in await execution.event_types(workflow_id)


async def test_a_fill_check_fired_long_after_it_was_due_records_the_fill(
    database_url: str, tmp_path: Path
) -> None:
    """A late timer (a loop behind its work) must not by itself fail what the broker filled: the
    poll reads the order before its age can call for a re-peg, an escalation or the close guard's
    cancel (docs/trading-rules.md, Durable timers)."""
    settings = fast_settings(database_url, tmp_path)
    scenario = Scenario(fills={"SPY": SymbolFill.NEVER})
    clock = [dt.datetime.now(dt.UTC)]
    store = SqlEventStore(database_url)
    executor = Executor(
        settings,
        lambda account: broker_for(
            settings, account, share=BudgetShare.EXECUTION, bars=bars(), scenario=scenario
        ),
        clock=lambda: clock[0],
    )

    async def fire_due() -> list[str]:
        due = await timers.claim_due(store, "execution", clock[0], 60.0)
        if due:
            await PeriodicRunner("execution", store).record(
                await executor.fire(store, "wf-late", due)
            )
        return [timer.kind for timer in due]

    try:
        consumer = Consumer("execution", store, InMemoryBus(), executor.handle, [])
        await consumer.handle_message(
            message(plan_event("wf-late", [("SPY", "BUY", "5000", "0.05")]))
        )
        for _ in range(10):
            pending = await timers.pending(store, "execution", "wf-late")
            if [timer.kind for timer in pending] == ["poll"]:
                break
            clock[0] = max(clock[0], pending[0].due_at)
            await fire_due()
        [poll] = await timers.pending(store, "execution", "wf-late")
        assert poll.kind == "poll", "the order was not left working"

        scenario.fills["SPY"] = SymbolFill.IMMEDIATE
        clock[0] = poll.due_at + dt.timedelta(minutes=20)
        assert await fire_due() == ["poll"]

        recorded = [r.event for r in await store.read_correlation("wf-late")]
    finally:
        await executor.close()
        await store.close()
    assert settings.exec_fill_wait_s + settings.exec_final_wait_s < 20 * 60
    assert [e.symbol for e in recorded if isinstance(e, OrderFilled)] == ["SPY"]
    assert not [e for e in recorded if isinstance(e, OrderCancelled)]
    assert [e.event_type for e in recorded][-1] == "WorkflowCompleted"
