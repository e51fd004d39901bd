"""Exact exits (docs/trading-rules.md, Exact exits): a position whose target is zero is sold in
full, the exact quantity held, on both adapters — a fractional holding of an asset that is not
fractionable through the broker's close-position call, a fractionable one beyond six decimals as
an order of exactly that quantity — and no position is left."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from shared.broker.factory import broker_for
from shared.broker.models import OrderRequest, OrderType
from shared.broker.request_budget import BudgetShare
from shared.broker.simulated import Scenario
from shared.events import OrderRequested
from shared.trading import Side
from tests.eventually import eventually
from tests.fakes.alpaca import AlpacaLoopback, Fault, FaultKind, running_alpaca
from tests.integration.execution.loopback import Execution
from tests.integration.execution.world import (
    bars,
    fast_settings,
    message,
    migrated_sqlite,
    plan_event,
    running_execution,
)

NOT_FRACTIONABLE = ("SPY", Decimal("0.3"))
FRACTIONABLE = ("QQQ", Decimal("7.2273576"))
EXITS = [("SPY", "SELL", "-180", "0"), ("QQQ", "SELL", "-3640", "0")]


@pytest.fixture
def loopback() -> Iterator[AlpacaLoopback]:
    with running_alpaca() as server:
        server.world.set_quote("SPY", Decimal("599.70"), Decimal("600.30"))
        server.world.set_quote("QQQ", Decimal("503.70"), Decimal("504.30"))
        server.world.set_asset("SPY", fractionable=False)
        for symbol, qty in (NOT_FRACTIONABLE, FRACTIONABLE):
            server.world.set_position(symbol, qty, Decimal(500))
        yield server


@pytest.mark.parametrize("lost_answer", [False, True], ids=["plain", "close-answer-lost"])
async def test_liquidating_fractional_holdings_at_the_loopback_leaves_no_position(
    loopback: AlpacaLoopback, tmp_path: Path, lost_answer: bool
) -> None:
    if lost_answer:  # Alpaca makes the close but the answer never arrives
        loopback.world.inject(
            Fault("DELETE", "/v2/positions/SPY", FaultKind.LOSE_RESPONSE, hang_s=1.5)
        )
    execution = Execution(await migrated_sqlite(tmp_path), tmp_path, loopback)
    try:
        await execution.consumer.handle_message(message(plan_event("wf-exit", EXITS)))
        await execution.timers_until("wf-exit", "WorkflowCompleted")

        with loopback.world.lock:
            assert loopback.world.account.holdings == {}
            sells = [(o.symbol, o.qty, o.status) for o in loopback.world.orders.values()]
        assert sorted(sells) == [
            ("QQQ", FRACTIONABLE[1], "filled"),
            ("SPY", Decimal("0.3"), "filled"),
        ]
        assert loopback.world.calls("DELETE", "/v2/positions/SPY") == 1
        requested = [e for e in await execution.events("wf-exit") if isinstance(e, OrderRequested)]
        assert sorted((e.symbol, e.qty, e.order_type) for e in requested) == [
            ("QQQ", FRACTIONABLE[1], "LIMIT"),
            ("SPY", Decimal("0.3"), "MARKET"),
        ]
    finally:
        await execution.close()


async def test_liquidating_fractional_holdings_at_the_simulated_broker_leaves_no_position(
    tmp_path: Path,
) -> None:
    settings = fast_settings(await migrated_sqlite(tmp_path), tmp_path)
    world = bars()
    buyer = broker_for(settings, "default", share=BudgetShare.EXECUTION, bars=world)
    for number, (symbol, qty) in enumerate((NOT_FRACTIONABLE, FRACTIONABLE), start=1):
        await buyer.submit_order(
            OrderRequest(
                symbol=symbol,
                side=Side.BUY,
                qty=qty,
                order_type=OrderType.MARKET,
                client_order_id=f"seed-{number}",
            )
        )
    assert {p.symbol: p.qty for p in await buyer.get_positions()} == dict(
        [NOT_FRACTIONABLE, FRACTIONABLE]
    )
    await buyer.close()  # type: ignore[attr-defined]

    scenario = dataclasses.replace(Scenario(), non_fractionable={"SPY"})
    async with running_execution(settings, world, scenario) as execution:
        await execution.deliver(plan_event("wf-exit", EXITS))
        await eventually(lambda: execution.finished("wf-exit"), message="workflow not finished")

        assert "WorkflowCompleted" in await execution.event_types("wf-exit")
        assert await execution.broker().get_positions() == []
