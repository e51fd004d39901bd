"""`alchemiser broker orders|positions|account --format json` print the simulated broker's stored
state in the exact shapes other tools read (docs/trading-rules.md, Simulated state)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from services.cli import app
from shared.broker import OrderRequest, OrderType
from shared.broker.simulated import Scenario, SymbolFill
from shared.events import OrderRequested, client_order_id
from shared.eventstore.store import SqlEventStore
from shared.messaging.consumer import stream_of
from shared.trading import Side
from tests.cli import run_alchemiser
from tests.integration.broker.simulated_world import migrated_sqlite, new_broker

ORDER_KEYS = [
    "client_order_id",
    "workflow_id",
    "symbol",
    "side",
    "qty",
    "status",
    "filled_qty",
    "filled_avg_price",
]


OLD_FORMAT_ID = "alc:wf-1:SPY:b:buy:1"
"""An id of the format before hashed ids: still shown under its workflow."""
NEW_FORMAT_ID = client_order_id("wf-2", "QQQ", Side.BUY, 1)


async def record_intent(url: str, workflow_id: str, client_id: str, symbol: str) -> None:
    """What execution records before it sends an order: the only place that says whose the
    order is."""
    store = SqlEventStore(url)
    try:
        async with store.unit_of_work() as uow:
            await uow.append(
                stream_of("execution", workflow_id),
                None,
                [
                    OrderRequested(
                        correlation_id=workflow_id,
                        causation_id=None,
                        account_id="default",
                        occurred_at=dt.datetime(2024, 11, 27, 20, 45, tzinfo=dt.UTC),
                        source="execution",
                        client_order_id=client_id,
                        symbol=symbol,
                        side=Side.BUY,
                        phase=Side.BUY,
                        attempt=1,
                        qty=Decimal(1),
                        order_type="MARKET",
                        reason="initial",
                    )
                ],
            )
    finally:
        await store.close()


@pytest.fixture
async def database_url(tmp_path: Path) -> str:
    """A migrated SQLite store holding two workflows' orders (one under an id of the earlier
    format), one foreign order and two accounts."""
    url = await migrated_sqlite(tmp_path)
    await record_intent(url, "wf-1", OLD_FORMAT_ID, "SPY")
    await record_intent(url, "wf-2", NEW_FORMAT_ID, "QQQ")
    scenario = Scenario()
    default = new_broker(url, "default", scenario=scenario)
    other = new_broker(url, "other")
    try:
        await default.submit_order(
            OrderRequest(
                symbol="SPY",
                side=Side.BUY,
                qty=Decimal("10"),
                order_type=OrderType.MARKET,
                client_order_id=OLD_FORMAT_ID,
            )
        )
        scenario.fills["QQQ"] = SymbolFill.NEVER
        await default.submit_order(
            OrderRequest(
                symbol="QQQ",
                side=Side.BUY,
                qty=Decimal("1.5"),
                order_type=OrderType.LIMIT,
                limit_price=Decimal("500.00"),
                client_order_id=NEW_FORMAT_ID,
            )
        )
        await other.submit_order(
            OrderRequest(
                symbol="QQQ",
                side=Side.BUY,
                qty=Decimal("2"),
                order_type=OrderType.MARKET,
                client_order_id="manual-1",
            )
        )
    finally:
        await default.close()
        await other.close()
    return url


def run(database_url: str, *args: str) -> Any:
    result = CliRunner().invoke(
        app, ["broker", *args], env={"ALCHEMISER_DATABASE_URL": database_url}
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_orders_print_a_top_level_array_of_the_contract_fields(database_url: str) -> None:
    orders = run(database_url, "orders", "--format", "json")

    assert isinstance(orders, list)
    assert [list(order) for order in orders] == [ORDER_KEYS] * 3
    assert orders[0] == {
        "client_order_id": OLD_FORMAT_ID,
        "workflow_id": "wf-1",
        "symbol": "SPY",
        "side": "buy",
        "qty": "10",
        "status": "filled",
        "filled_qty": "10",
        "filled_avg_price": "600.30",
    }
    assert (orders[1]["client_order_id"], orders[1]["workflow_id"]) == (NEW_FORMAT_ID, "wf-2")
    assert orders[1]["status"] == "accepted"
    assert orders[1]["filled_avg_price"] is None
    assert (orders[2]["client_order_id"], orders[2]["workflow_id"]) == ("manual-1", None)


def test_orders_of_one_workflow_only_in_either_id_format(database_url: str) -> None:
    new = run(database_url, "orders", "--workflow", "wf-2", "--format", "json")
    old = run(database_url, "orders", "--workflow", "wf-1", "--format", "json")

    assert [order["client_order_id"] for order in new] == [NEW_FORMAT_ID]
    assert new[0]["qty"] == "1.5"
    assert [order["client_order_id"] for order in old] == [OLD_FORMAT_ID]
    assert run(database_url, "orders", "--workflow", "wf-3", "--format", "json") == []


def test_positions_print_every_account_or_one(database_url: str) -> None:
    """Positions the system never traded have no recorded lots: no cost and no unrealised P&L
    rather than the broker's average price (docs/trading-rules.md, Profit and loss)."""
    every = run(database_url, "positions", "--format", "json")
    other = run(database_url, "positions", "--account", "other", "--format", "json")

    assert every == [
        {
            "account_id": "default",
            "symbol": "SPY",
            "qty": "10",
            "avg_entry_price": "600.30",
            "cost_basis": None,
            "market_value": "6000.00",
            "unrealised": None,
        },
        {
            "account_id": "other",
            "symbol": "QQQ",
            "qty": "2",
            "avg_entry_price": "503.26",
            "cost_basis": None,
            "market_value": "1006.00",
            "unrealised": None,
        },
    ]
    assert other == every[1:]


def test_account_prints_cash_equity_and_buying_power(database_url: str) -> None:
    account = run(database_url, "account", "--format", "json")

    assert account == {
        "account_id": "default",
        "cash": "93997.00",
        "equity": "99997.00",
        "buying_power": "93247.00",
    }


def test_the_text_format_is_a_table_with_a_header(database_url: str) -> None:
    result = CliRunner().invoke(
        app, ["broker", "orders"], env={"ALCHEMISER_DATABASE_URL": database_url}
    )

    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    assert header.split() == ORDER_KEYS
    assert len(lines) == 3


def test_a_database_without_the_broker_tables_says_to_upgrade(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"

    result = run_alchemiser(
        tmp_path, "broker", "orders", "--format", "json", settings={"ALCHEMISER_DATABASE_URL": url}
    )

    assert result.returncode == 1
    assert "run `alchemiser db upgrade` first" in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
