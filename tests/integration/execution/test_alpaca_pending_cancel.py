"""A cancel Alpaca leaves `pending_cancel` while the order can still fill, against the strict
loopback Alpaca (docs/trading-rules.md, Cancel confirmation): execution tracks the order to its
end and sends nothing more for it meanwhile, so a fill that wins the race 20 s later leaves the
position at the plan (no overbuy) and the late fill in the trade ledger."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from services.projections import TradeLedger
from shared.events import OrderFilled, OrderRequested
from tests.fakes.alpaca import (
    AlpacaLoopback,
    CancelEnd,
    CancelRule,
    FillMode,
    FillRule,
    running_alpaca,
)
from tests.fakes.clock import ControlledClock
from tests.integration.execution.loopback import Execution, client_order_ids
from tests.integration.execution.world import message, migrated_sqlite, plan_event

OPEN = dt.datetime(2024, 11, 27, 20, 0, tzinfo=dt.UTC)  # 15:00 New York, session open
PENDING_S = 20


@pytest.fixture
def loopback() -> Iterator[AlpacaLoopback]:
    with running_alpaca(clock=ControlledClock(OPEN)) as server:
        server.world.set_quote("SPY", Decimal("599.70"), Decimal("600.30"))
        server.world.set_fill(FillRule(FillMode.NEVER), "SPY")
        server.world.set_cancel("SPY", CancelRule(pending_s=PENDING_S, end=CancelEnd.FILLED))
        yield server


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[str]:
    yield await migrated_sqlite(tmp_path)


def statuses(loopback: AlpacaLoopback) -> list[str]:
    with loopback.world.lock:
        loopback.world.settle()
        return [order.status for order in loopback.world.orders.values()]


def held(loopback: AlpacaLoopback, symbol: str) -> Decimal:
    with loopback.world.lock:
        holding = loopback.world.account.holdings.get(symbol)
        return holding.qty if holding is not None else Decimal(0)


async def test_a_buy_whose_cancel_stays_pending_20_s_and_then_fills_is_not_overbought(
    loopback: AlpacaLoopback, database: str, tmp_path: Path
) -> None:
    # no re-peg: the first check cancels for the market order, the one that could overbuy
    execution = Execution(database, tmp_path, loopback, exec_max_repegs=0)
    try:
        await execution.consumer.handle_message(
            message(plan_event("wf-pending", [("SPY", "BUY", "40000", "0.4")]))
        )

        async def pending() -> bool:
            return statuses(loopback) == ["pending_cancel"]

        await execution.timers_while(pending, "the cancel never went pending")
        # well past EXEC_CANCEL_CONFIRM_S (0.3 s) of tracking: still one order, nothing sent
        for _ in range(20):
            await execution.run_timers()
            await asyncio.sleep(0.05)
        assert statuses(loopback) == ["pending_cancel"]
        assert (await execution.types("wf-pending")).count("OrderRequested") == 1

        loopback.world.clock.advance(PENDING_S)  # the fill wins the race at Alpaca
        await execution.timers_until("wf-pending", "WorkflowCompleted")

        events = await execution.events("wf-pending")
        [requested] = [e for e in events if isinstance(e, OrderRequested)]
        [order_id] = client_order_ids(loopback)
        assert order_id == requested.client_order_id and loopback.world.creates(order_id) == 1
        assert statuses(loopback) == ["filled"]
        assert held(loopback, "SPY") == requested.qty  # the plan's quantity, no more
        filled = [e for e in events if isinstance(e, OrderFilled)]
        assert [(e.filled_qty, e.complete) for e in filled] == [(requested.qty, True)]

        ledger = await TradeLedger.rebuild(execution.store)
        assert ledger.fills[order_id].filled_qty == requested.qty
        assert ledger.positions() == {"default": {"SPY": requested.qty}}
    finally:
        await execution.close()
