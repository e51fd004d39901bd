"""What the execution integration tests share: a plan event builder, a small bar store on a
fixed open simulated now, fast execution settings, and a running execution shell (consumer +
timer loop) over a real event store with the simulated broker."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.execution import timer_loop
from services.execution.executor import Executor
from shared.broker.factory import broker_for
from shared.broker.port import Broker
from shared.broker.request_budget import BudgetShare
from shared.broker.simulated import Scenario
from shared.bus.memory import InMemoryBus
from shared.bus.port import Message
from shared.events import (
    AccountSnapshot,
    AllocationComparison,
    Event,
    PlanItem,
    PlanMetadata,
    RebalancePlan,
    RebalancePlanned,
    encode,
    plan_id,
)
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.marketdata.bars import BarSnapshot
from shared.messaging.consumer import Consumer
from shared.service.runtime import PeriodicRunner
from shared.settings import Settings, load_settings

OPEN_SIM_NOW = "2024-11-27T15:45:00"
"""The Wednesday before Thanksgiving, 15:45 New York: the session is open."""
CLOSED_SIM_NOW = "2024-11-30T12:00:00"
"""A Saturday: orders rest unfilled."""
SESSIONS = [dt.date(2024, 11, day) for day in (21, 22, 25, 26, 27)]
CLOSES = {
    "SPY": [590.0, 595.5, 597.25, 599.0, 600.0],
    "QQQ": [500.0, 501.0, 502.0, 503.0, 504.0],
    "TLT": [90.0, 91.0, 92.0, 92.5, 93.0],
    "GLD": [240.0, 241.0, 242.0, 243.0, 244.0],
}
AT = dt.datetime(2024, 11, 27, 20, 45, tzinfo=dt.UTC)


def bars(symbols: dict[str, list[float]] | None = None) -> BarSnapshot:
    return BarSnapshot.from_closes(SESSIONS, symbols or CLOSES)


def fast_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Small waits so a whole supervision (re-peg, market, final wait) takes well under a
    second."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "sim_now": OPEN_SIM_NOW,
        "exec_poll_s": 0.05,
        "exec_fill_wait_s": 0.2,
        "exec_cancel_confirm_s": 0.3,
        "exec_final_wait_s": 0.3,
        "exec_quote_wait_s": 0.3,
        "timer_poll_s": 0.02,
        **overrides,
    }
    return load_settings(**values)


async def migrated_sqlite(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'alchemiser.db'}"
    await upgrade(url)
    return url


def plan_event(
    workflow_id: str,
    items: list[tuple[str, str, str, str]],
    *,
    account_id: str = "default",
    portfolio_value: str = "100000",
) -> RebalancePlanned:
    """A plan of `(symbol, BUY|SELL|HOLD, trade dollars, target weight)` lines."""
    plan_items = tuple(
        PlanItem(
            symbol=symbol,
            current_weight=Decimal(0),
            target_weight=Decimal(weight),
            weight_diff=Decimal(weight),
            target_value=Decimal(portfolio_value) * Decimal(weight),
            current_value=Decimal(0),
            trade_amount=Decimal(amount),
            action=action,
            priority=1,
        )
        for symbol, action, amount, weight in items
    )
    return RebalancePlanned(
        correlation_id=workflow_id,
        causation_id=str(uuid.uuid4()),
        account_id=account_id,
        occurred_at=AT,
        source="portfolio",
        rebalance_plan=RebalancePlan(
            correlation_id=workflow_id,
            causation_id=str(uuid.uuid4()),
            timestamp=AT,
            plan_id=plan_id(workflow_id),
            items=plan_items,
            total_portfolio_value=Decimal(portfolio_value),
            total_trade_value=sum((abs(item.trade_amount) for item in plan_items), Decimal(0)),
            metadata=PlanMetadata(
                portfolio_value=Decimal(portfolio_value),
                cash_balance=Decimal(portfolio_value),
                position_count=0,
                min_trade_threshold=Decimal(portfolio_value) / 100,
                strategy_name="test",
            ),
        ),
        allocation_comparison=AllocationComparison(target_values={}, current_values={}, deltas={}),
        trades_required=any(action != "HOLD" for _, action, _, _ in items),
        snapshot=AccountSnapshot(
            cash=Decimal(portfolio_value), portfolio_value=Decimal(portfolio_value), as_of=AT
        ),
        signal_fingerprint="test",
    )


def message(event: Event) -> Message:
    return Message(
        routing_key=event.event_type,
        body=encode(event),
        message_id=str(event.event_id),
        headers={},
        delivery_count=1,
    )


@dataclass
class RunningExecution:
    store: SqlEventStore
    executor: Executor
    consumer: Consumer
    settings: Settings
    brokers_made: list[str]
    """The accounts a broker was made for (a no-trade plan makes none)."""

    async def deliver(self, event: RebalancePlanned) -> None:
        await self.consumer.handle_message(message(event))

    def broker(self, account_id: str = "default") -> Broker:
        return self.executor.broker(account_id)

    async def event_types(self, workflow_id: str) -> list[str]:
        return [r.event.event_type for r in await self.store.read_correlation(workflow_id)]

    async def finished(self, workflow_id: str) -> bool:
        types = await self.event_types(workflow_id)
        return "WorkflowCompleted" in types or "WorkflowFailed" in types


@asynccontextmanager
async def running_execution(
    settings: Settings, snapshot: BarSnapshot | None = None, scenario: Scenario | None = None
) -> AsyncIterator[RunningExecution]:
    """The execution service's handler behind a consumer, and its timer loop, on the real
    event store of `settings.database_url`; every broker it makes runs `scenario`."""
    assert settings.database_url is not None
    store = SqlEventStore(settings.database_url)
    world = snapshot if snapshot is not None else bars()
    brokers_made: list[str] = []

    def make_broker(account_id: str) -> Broker:
        brokers_made.append(account_id)
        return broker_for(
            settings, account_id, share=BudgetShare.EXECUTION, bars=world, scenario=scenario
        )

    executor = Executor(settings, make_broker)
    consumer = Consumer("execution", store, InMemoryBus(), executor.handle, ["RebalancePlanned"])
    loop = asyncio.create_task(
        PeriodicRunner("execution", store).run(
            timer_loop.due_timers(executor, settings.timer_poll_s)
        )
    )
    try:
        yield RunningExecution(store, executor, consumer, settings, brokers_made)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await executor.close()
        await store.close()
