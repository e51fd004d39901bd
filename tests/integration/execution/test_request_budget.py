"""Alpaca's request budget across processes (docs/trading-rules.md, Request budget): a rebalance
of 30 symbols on one account — the strategy's live prices, portfolio's plan reads and
execution's orders, each through its own adapter with its own share of the budget, as separate
processes do — keeps every rolling window of the loopback's per-key count under the configured
total. The window is scaled down to a second (60 requests a second for the key) so the run takes
seconds, not minutes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from services.execution import timer_loop
from services.execution.executor import Executor
from services.execution.policy import ExecutionPolicy
from services.portfolio.plan_step import PlanStep
from services.strategy.live_bar import live_prices
from shared.broker.alpaca import AlpacaBroker
from shared.broker.port import Broker
from shared.broker.request_budget import BudgetShare, RequestBudget
from shared.bus.memory import InMemoryBus
from shared.events import RebalancePlanned
from shared.eventstore.store import SqlEventStore
from shared.messaging.consumer import Consumer, HandlerContext
from shared.service.runtime import PeriodicRunner
from shared.workflow import is_finished
from tests.eventually import eventually
from tests.fakes.alpaca import AlpacaLoopback, running_alpaca
from tests.integration.execution.world import fast_settings, message, migrated_sqlite
from tests.integration.portfolio.test_plan_step import signal

TOTAL = 60
WINDOW_S = 1.0
HELD = [f"H{chr(65 + n)}" for n in range(15)]
"""Held and not targeted: each sold whole."""
TARGETS = [f"T{chr(65 + n)}" for n in range(15)]
"""Not held: each bought."""


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[str]:
    yield await migrated_sqlite(tmp_path)


def adapter(loopback: AlpacaLoopback, share: BudgetShare) -> AlpacaBroker:
    """One process's adapter: its own limiter with its share of the scaled-down budget."""
    return AlpacaBroker(
        key_id=SecretStr(loopback.world.key_id),
        secret_key=SecretStr(loopback.world.secret_key),
        base_url_override=loopback.base_url,
        limiter=RequestBudget.share_of(TOTAL, share, WINDOW_S).limiter(),
    )


async def test_a_rebalance_of_30_symbols_keeps_every_window_under_the_budget(
    database: str, tmp_path: Path
) -> None:
    settings = fast_settings(database, tmp_path, broker="alpaca", exec_poll_s=0.1)
    store = SqlEventStore(database)
    with running_alpaca() as loopback:
        world = loopback.world
        for n, symbol in enumerate(HELD + TARGETS):
            price = Decimal(100 + n)
            world.set_quote(symbol, price - Decimal("0.05"), price + Decimal("0.05"))
            world.set_trade(symbol, price)
        for symbol in HELD:
            world.set_position(symbol, Decimal(20), Decimal(90))
        try:
            # strategy: the live price of every symbol
            prices = await live_prices(adapter(loopback, BudgetShare.STRATEGY), HELD + TARGETS)
            assert len(prices) == 30

            # portfolio: the account and a quote per symbol, then the plan
            portfolio = adapter(loopback, BudgetShare.PORTFOLIO)

            async def portfolio_broker(account_id: str) -> Broker:
                return portfolio

            weight = Decimal(1) / len(TARGETS)
            [planned] = await PlanStep(settings, portfolio_broker).handle(
                signal({symbol: weight for symbol in TARGETS}), HandlerContext("portfolio", store)
            )
            assert isinstance(planned, RebalancePlanned)
            assert sum(1 for item in planned.items if item.action != "HOLD") == 30

            # execution: 30 chains, polling within its share
            execution = adapter(loopback, BudgetShare.EXECUTION)
            policy = replace(
                ExecutionPolicy.from_settings(settings),
                poll_budget=RequestBudget.share_of(TOTAL, BudgetShare.EXECUTION, WINDOW_S),
            )
            executor = Executor(settings, lambda account_id: execution, policy=policy)
            consumer = Consumer(
                "execution", store, InMemoryBus(), executor.handle, ["RebalancePlanned"]
            )
            await consumer.handle_message(message(planned))

            async def finished() -> bool:
                await PeriodicRunner("execution", store).run_once(
                    timer_loop.due_timers(executor, settings.timer_poll_s)
                )
                history = await store.read_correlation(planned.correlation_id)
                return is_finished([recorded.event for recorded in history])

            await eventually(finished, timeout_s=60, message="the rebalance did not finish")
            await executor.close()
        finally:
            await store.close()

        with world.lock:
            assert all(not order.is_open for order in world.orders.values())
            assert len(world.orders) == 30
            assert set(world.account.holdings) == set(TARGETS)
        busiest = world.max_in_window(world.key_id, WINDOW_S)
        total_requests = len(world.requests)
    assert total_requests > 2 * TOTAL  # more than two windows' worth had to be spread out
    assert busiest <= TOTAL, f"{busiest} requests in one {WINDOW_S} s window"
