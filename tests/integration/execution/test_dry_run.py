"""A dry run's execution (docs/trading-rules.md, Dry runs): every order sized and priced as a run
sizes and prices it, recorded in `OrdersPreviewed`, and nothing at the broker — the loopback
Alpaca receives no order, cancel or close, and the simulated broker's tables are unchanged."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shared.broker.models import OrderRequest, OrderType
from shared.broker.simulated.tables import sim_accounts, sim_fills, sim_orders, sim_positions
from shared.events import (
    OrderRequested,
    OrdersPreviewed,
    WorkflowConfiguration,
    WorkflowStarted,
    client_order_id,
)
from shared.eventstore.store import SqlEventStore
from shared.trading import Side
from tests.eventually import eventually
from tests.fakes.alpaca import AlpacaLoopback, FillMode, FillRule, running_alpaca
from tests.integration.execution.loopback import Execution
from tests.integration.execution.world import (
    fast_settings,
    message,
    migrated_sqlite,
    plan_event,
    running_execution,
)

PLAN = [
    ("SPY", "SELL", "-180", "0"),  # a full exit of a fractional, not fractionable holding
    ("QQQ", "SELL", "-1000", "0.1"),
    ("GLD", "BUY", "5000", "0.05"),
]
STALE_ID = client_order_id("an-earlier-run", "TLT", Side.BUY, 1)


async def record_dry_run_start(store: SqlEventStore, workflow_id: str) -> None:
    """What the trigger records for a dry run; execution reads the workflow's kind from it."""
    started = WorkflowStarted(
        correlation_id=workflow_id,
        account_id="default",
        occurred_at=dt.datetime.now(dt.UTC),
        source="strategy",
        requested_by="test",
        configuration=WorkflowConfiguration(live_trading=False),
        trading_date=dt.date(2024, 11, 27),
        force=False,
        idempotency_key="dry-run:paper:default:2024-11-27",
        workflow_type="dry_run",
        notify=False,
    )
    await store.append(f"dry-run/{workflow_id}", None, [started])


@pytest.fixture
def loopback() -> Iterator[AlpacaLoopback]:
    with running_alpaca() as server:
        server.world.set_quote("SPY", Decimal("599.70"), Decimal("600.30"))
        server.world.set_quote("QQQ", Decimal("503.70"), Decimal("504.30"))
        server.world.set_quote("GLD", Decimal("243.90"), Decimal("244.10"))
        server.world.set_quote("TLT", Decimal("90.00"), Decimal("90.20"))
        server.world.set_asset("SPY", fractionable=False)
        server.world.set_position("SPY", Decimal("0.3"), Decimal(500))
        server.world.set_position("QQQ", Decimal("7.2273576"), Decimal(500))
        server.world.set_fill(FillRule(FillMode.NEVER), "TLT")
        with server.world.lock:  # an own order left working by an earlier run: a run cancels it
            server.world.submit(
                {
                    "symbol": "TLT",
                    "side": "buy",
                    "qty": "1",
                    "type": "limit",
                    "limit_price": "50.00",
                    "time_in_force": "day",
                    "client_order_id": STALE_ID,
                }
            )
        yield server


def broker_state(loopback: AlpacaLoopback) -> tuple[Any, ...]:
    with loopback.world.lock:
        orders = sorted(
            (o.client_order_id, o.symbol, o.status, o.qty, o.filled_qty)
            for o in loopback.world.orders.values()
        )
        return orders, dict(loopback.world.account.holdings), loopback.world.account.cash


def writes(loopback: AlpacaLoopback) -> list[tuple[str, str]]:
    """Every request that could change something at the broker."""
    return [(r.method, r.path) for r in loopback.world.requests if r.method != "GET"]


async def test_a_dry_run_previews_each_order_and_sends_nothing_to_alpaca(
    loopback: AlpacaLoopback, tmp_path: Path
) -> None:
    execution = Execution(await migrated_sqlite(tmp_path), tmp_path, loopback)
    try:
        before = broker_state(loopback)
        await record_dry_run_start(execution.store, "dry-run-1")
        await execution.consumer.handle_message(message(plan_event("dry-run-1", PLAN)))
        await execution.timers_until("dry-run-1", "WorkflowCompleted")

        assert writes(loopback) == []  # no POST /v2/orders, no cancel, no close-position
        assert loopback.world.calls("POST", "/v2/orders") == 0
        assert broker_state(loopback) == before
        types = await execution.types("dry-run-1")
        assert types == ["WorkflowStarted", "OrdersPreviewed", "WorkflowCompleted"]
        preview = next(
            e for e in await execution.events("dry-run-1") if isinstance(e, OrdersPreviewed)
        )
        orders = {order.symbol: order for order in preview.orders}
        assert [(o.symbol, o.side) for o in preview.orders] == [
            ("SPY", Side.SELL),
            ("QQQ", Side.SELL),
            ("GLD", Side.BUY),
        ]
        spy, qqq, gld = orders["SPY"], orders["QQQ"], orders["GLD"]
        assert (spy.qty, spy.order_type, spy.limit_price, spy.closes_position) == (
            Decimal("0.3"),
            "MARKET",
            None,
            True,
        )
        assert (qqq.qty, qqq.order_type, qqq.limit_price) == (
            Decimal("1.984127"),
            "LIMIT",
            Decimal("504.29"),
        )
        assert (gld.qty, gld.order_type, gld.limit_price) == (
            Decimal("20.491803"),
            "LIMIT",
            Decimal("243.91"),
        )
        assert gld.trade_amount == Decimal(5000) and qqq.trade_amount == Decimal(-1000)
        assert gld.estimated_notional == gld.qty * Decimal("243.91")
        assert gld.quote is not None
        assert (gld.quote.bid, gld.quote.ask) == (Decimal("243.90"), Decimal("244.10"))
        for order in preview.orders:
            assert order.client_order_id == client_order_id(
                "dry-run-1", order.symbol, order.side, 1
            )
        assert [order.client_order_id for order in preview.stale_orders] == [STALE_ID]
    finally:
        await execution.close()


async def test_a_run_after_the_dry_run_sends_exactly_the_orders_it_previewed(
    loopback: AlpacaLoopback, tmp_path: Path
) -> None:
    """Sizing and pricing are one code path: the run's first intents carry the quantities,
    types, limit prices and quotes the dry run previewed on the same market."""
    execution = Execution(await migrated_sqlite(tmp_path), tmp_path, loopback)
    try:
        await record_dry_run_start(execution.store, "dry-run-2")
        await execution.consumer.handle_message(message(plan_event("dry-run-2", PLAN)))
        await execution.timers_until("dry-run-2", "WorkflowCompleted")
        await execution.consumer.handle_message(message(plan_event("wf-real", PLAN)))
        await execution.timers_until("wf-real", "TradeExecuted")

        preview = next(
            e for e in await execution.events("dry-run-2") if isinstance(e, OrdersPreviewed)
        )
        first_intents = {
            (e.symbol, e.side): e
            for e in reversed(await execution.events("wf-real"))
            if isinstance(e, OrderRequested)
        }
        assert len(first_intents) == len(preview.orders) == 3
        for order in preview.orders:
            sent = first_intents[(order.symbol, order.side)]
            assert sent.attempt == 1
            assert (sent.qty, sent.order_type, sent.limit_price, sent.quote) == (
                order.qty,
                order.order_type,
                order.limit_price,
                order.quote,
            )
        assert loopback.world.calls("POST", "/v2/orders") >= 2  # the run did send
        assert loopback.world.calls("DELETE", "/v2/positions/SPY") == 1
    finally:
        await execution.close()


async def simulated_tables(store: SqlEventStore) -> list[list[tuple[Any, ...]]]:
    async with store.engine.connect() as connection:
        return [
            [tuple(row) for row in await connection.execute(sa.select(table))]
            for table in (sim_orders, sim_fills, sim_positions, sim_accounts)
        ]


async def test_a_dry_run_leaves_the_simulated_brokers_tables_as_they_were(tmp_path: Path) -> None:
    settings = fast_settings(await migrated_sqlite(tmp_path), tmp_path)
    async with running_execution(settings) as execution:
        await execution.deliver(plan_event("wf-1", [("SPY", "BUY", "45000", "0.45")]))
        await eventually(lambda: execution.finished("wf-1"))
        await execution.broker().submit_order(  # an own order left working by an earlier run
            OrderRequest(
                symbol="QQQ",
                side=Side.BUY,
                qty=Decimal(1),
                order_type=OrderType.LIMIT,
                limit_price=Decimal("1.00"),
                client_order_id=client_order_id("an-earlier-run", "QQQ", Side.BUY, 1),
            )
        )
        before = await simulated_tables(execution.store)
        assert before[0], "the run made orders to compare with"

        await record_dry_run_start(execution.store, "dry-run-3")
        plan = [("SPY", "SELL", "-45000", "0"), ("GLD", "BUY", "20000", "0.2")]
        await execution.deliver(plan_event("dry-run-3", plan))
        await eventually(lambda: execution.finished("dry-run-3"))

        assert await simulated_tables(execution.store) == before
        types = await execution.event_types("dry-run-3")
        assert types[-2:] == ["OrdersPreviewed", "WorkflowCompleted"]
        assert "OrderRequested" not in types and "TradeExecuted" not in types
