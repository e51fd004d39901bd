"""`alchemiser broker orders|positions|account --format json` print the simulated broker's stored
state in the exact shapes other tools read (docs/trading-rules.md, Simulated state)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from services.cli import app
from shared.broker import OrderRequest, OrderType
from shared.broker.simulated import Scenario, SymbolFill
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


@pytest.fixture
async def database_url(tmp_path: Path) -> str:
    """A migrated SQLite store holding two workflows' orders, one foreign order and two
    accounts."""
    url = await migrated_sqlite(tmp_path)
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
                client_order_id="alc:wf-1:SPY:b:1:1",
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
                client_order_id="alc:wf-2:QQQ:b:1:1",
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
        "client_order_id": "alc:wf-1:SPY:b:1:1",
        "workflow_id": "wf-1",
        "symbol": "SPY",
        "side": "buy",
        "qty": "10",
        "status": "filled",
        "filled_qty": "10",
        "filled_avg_price": "600.30",
    }
    assert orders[1]["status"] == "accepted"
    assert orders[1]["filled_avg_price"] is None
    assert (orders[2]["client_order_id"], orders[2]["workflow_id"]) == ("manual-1", None)


def test_orders_of_one_workflow_only(database_url: str) -> None:
    orders = run(database_url, "orders", "--workflow", "wf-2", "--format", "json")

    assert [order["client_order_id"] for order in orders] == ["alc:wf-2:QQQ:b:1:1"]
    assert orders[0]["qty"] == "1.5"


def test_positions_print_every_account_or_one(database_url: str) -> None:
    every = run(database_url, "positions", "--format", "json")
    other = run(database_url, "positions", "--account", "other", "--format", "json")

    assert every == [
        {
            "account_id": "default",
            "symbol": "SPY",
            "qty": "10",
            "avg_entry_price": "600.30",
            "market_value": "6000.00",
        },
        {
            "account_id": "other",
            "symbol": "QQQ",
            "qty": "2",
            "avg_entry_price": "503.26",
            "market_value": "1006.00",
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
