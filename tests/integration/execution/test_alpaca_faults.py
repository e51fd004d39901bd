"""The execution service against the loopback Alpaca server under Alpaca's faults: bursts of
429s and 500s on order creation, an answer lost to a timeout, and an order that fills while the
execution service is down — each order exists once at Alpaca, and the workflow completes."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from services.execution import chain
from shared.events import OrderEvent
from shared.trading import Side
from tests.fakes.alpaca import (
    AlpacaLoopback,
    Fault,
    FaultKind,
    FillMode,
    FillRule,
    running_alpaca,
)
from tests.integration.execution.loopback import Execution, client_order_ids
from tests.integration.execution.world import message, migrated_sqlite, plan_event

OPEN = dt.datetime(2024, 11, 27, 20, 45, tzinfo=dt.UTC)  # 15:45 New York, session open
PLAN = [("SPY", "BUY", "40000", "0.4"), ("QQQ", "BUY", "30000", "0.3")]


@pytest.fixture
def loopback() -> Iterator[AlpacaLoopback]:
    with running_alpaca() as server:
        server.world.set_now(OPEN)
        server.world.set_quote("SPY", Decimal("599.70"), Decimal("600.30"))
        server.world.set_quote("QQQ", Decimal("503.70"), Decimal("504.30"))
        yield server


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[str]:
    yield await migrated_sqlite(tmp_path)


async def test_bursts_of_429_and_500_on_order_creation_never_double_an_order(
    loopback: AlpacaLoopback, database: str, tmp_path: Path
) -> None:
    loopback.world.inject(
        Fault("POST", "/v2/orders", FaultKind.RATE_LIMIT, times=3, retry_after_s=1)
    )
    loopback.world.inject(Fault("POST", "/v2/orders", FaultKind.SERVER_ERROR, times=2))
    execution = Execution(database, tmp_path, loopback)
    try:
        await execution.consumer.handle_message(message(plan_event("wf-faults", PLAN)))
        await execution.timers_until("wf-faults", "WorkflowCompleted")
        types = await execution.types("wf-faults")
        assert types.count("WorkflowCompleted") == 1 and "WorkflowFailed" not in types
        ids = client_order_ids(loopback)
        with loopback.world.lock:
            symbols = {order.symbol for order in loopback.world.orders.values()}
        assert sorted(symbols) == ["QQQ", "SPY"]
        assert all(loopback.world.creates(i) == 1 for i in ids)
        # the five faults were met and retried: more order POSTs than orders created
        assert loopback.world.calls("POST", "/v2/orders") == len(ids) + 5
    finally:
        await execution.close()


async def test_an_answer_lost_to_a_timeout_is_found_by_client_order_id_not_resubmitted(
    loopback: AlpacaLoopback, database: str, tmp_path: Path
) -> None:
    loopback.world.inject(Fault("POST", "/v2/orders", FaultKind.LOSE_RESPONSE, times=1, hang_s=1.5))
    execution = Execution(database, tmp_path, loopback)
    try:
        await execution.consumer.handle_message(message(plan_event("wf-lost", PLAN)))
        await execution.timers_until("wf-lost", "WorkflowCompleted")
        ids = client_order_ids(loopback)
        assert len(ids) == 2
        assert all(loopback.world.creates(i) == 1 for i in ids)
        assert loopback.world.calls("GET", "/v2/orders:by_client_order_id") >= 1
    finally:
        await execution.close()


async def test_an_order_that_fills_while_execution_is_down_is_reconciled_not_resubmitted(
    loopback: AlpacaLoopback, database: str, tmp_path: Path
) -> None:
    loopback.world.set_fill(FillRule(FillMode.NEVER), "SPY")
    first = Execution(database, tmp_path, loopback)
    plan = plan_event("wf-down", [("SPY", "BUY", "40000", "0.4")])
    await first.consumer.handle_message(message(plan))
    await first.timers_until("wf-down", "OrderSubmitted")
    await first.close()  # the execution service stops with the limit order working

    loopback.world.set_fill(FillRule(FillMode.AFTER_READS, reads=1), "SPY")  # fills meanwhile
    restarted = Execution(database, tmp_path, loopback)
    try:
        await restarted.timers_until("wf-down", "WorkflowCompleted")
        types = await restarted.types("wf-down")
        assert types.count("OrderRequested") == 1
        assert types.count("OrderFilled") >= 1
        [order_id] = client_order_ids(loopback)
        assert loopback.world.creates(order_id) == 1
    finally:
        await restarted.close()


def earlier_format_id(workflow_id: str, symbol: str, side: Side, attempt: int) -> str:
    """The client order id execution used before ids were hashed to 36 characters."""
    code = "b" if side is Side.BUY else "s"
    return f"alc:{workflow_id}:{symbol}:{code}:{side.lower()}:{attempt}"


async def test_an_order_placed_under_an_earlier_id_format_is_reconciled_after_the_upgrade(
    loopback: AlpacaLoopback, database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain working when the new format ships keeps its order's recorded id: the restarted
    execution finds the order by it, records the fill under it and sends nothing new."""
    loopback.world.set_fill(FillRule(FillMode.NEVER), "SPY")
    monkeypatch.setattr(chain, "client_order_id", earlier_format_id)
    first = Execution(database, tmp_path, loopback)
    plan = plan_event("wf-upgrade", [("SPY", "BUY", "40000", "0.4")])
    await first.consumer.handle_message(message(plan))
    await first.timers_until("wf-upgrade", "OrderSubmitted")
    await first.close()
    monkeypatch.undo()

    loopback.world.set_fill(FillRule(FillMode.AFTER_READS, reads=1), "SPY")
    restarted = Execution(database, tmp_path, loopback)
    try:
        await restarted.timers_until("wf-upgrade", "WorkflowCompleted")
        events = await restarted.events("wf-upgrade")
        old_id = "alc:wf-upgrade:SPY:b:buy:1"
        assert client_order_ids(loopback) == [old_id]
        assert loopback.world.creates(old_id) == 1
        order_events = [event for event in events if isinstance(event, OrderEvent)]
        assert [event.event_type for event in order_events] == [
            "OrderRequested",
            "OrderSubmitted",
            "OrderFilled",
        ]
        assert {event.client_order_id for event in order_events} == {old_id}
    finally:
        await restarted.close()
