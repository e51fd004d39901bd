"""What `alchemiser events`, `broker account`, `replay` and the HTTP API show after one recorded
run: order lines say what was traded, an account that never traded is not shown as if it
existed, no option promises what the command refuses, and numbers are decimal strings to their
places (money to the cent, prices to 4 decimals, weights to 6, quantities to 9)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.strategy.service import definition
from shared.bus.memory import InMemoryBus
from shared.decimal_places import unnamed_decimals
from shared.events import ENVELOPE_FIELDS
from shared.eventstore.store import SqlEventStore
from shared.service.app import create_app
from shared.service.runtime import ServiceRuntime
from shared.settings import Settings
from tests.cli import run_alchemiser

pytestmark = pytest.mark.slow

ORDER_EVENTS = ("OrderRequested", "OrderSubmitted", "OrderFilled")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("recorded")
    result = run_alchemiser(home, "run")
    assert result.returncode == 0, result.stderr[-3000:]
    workflow_id = next((home / "out").iterdir()).stem
    return home, workflow_id


def test_event_lines_of_orders_name_the_side_and_the_symbol(recorded: tuple[Path, str]) -> None:
    home, workflow_id = recorded
    result = run_alchemiser(home, "events", "--workflow", workflow_id)
    assert result.returncode == 0, result.stderr
    order_lines = [line for line in result.stdout.splitlines() if line.split()[1] in ORDER_EVENTS]
    assert {line.split()[1] for line in order_lines} == set(ORDER_EVENTS)
    for line in order_lines:
        assert any(f" {side} " in line for side in ("BUY", "SELL")), line
    orders = json.loads(run_alchemiser(home, "broker", "orders", "--format", "json").stdout)
    assert orders
    for order in orders:
        side_and_symbol = f" {order['side'].upper()} {order['symbol']}"
        assert any(side_and_symbol in line for line in order_lines), side_and_symbol


def test_an_account_that_never_traded_is_said_not_to_exist_yet(
    recorded: tuple[Path, str],
) -> None:
    home, _ = recorded
    result = run_alchemiser(home, "broker", "account", "--account", "nobody")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "account 'nobody' does not exist yet" in result.stderr
    assert "100000" not in result.stderr.replace(",", "")


def test_replay_has_no_live_option(recorded: tuple[Path, str]) -> None:
    home, workflow_id = recorded
    result = run_alchemiser(home, "replay", "--workflow", workflow_id, "--live")
    assert result.returncode == 2
    assert "No such option: --live" in result.stderr
    assert "--live" not in run_alchemiser(home, "replay", "--help").stdout


SHAPES = {
    r"-?\d+\.\d{2}": ("cash", "portfolio_value", "trade_amount", "total_trade_value", "equity"),
    r"\d+\.\d{2,4}": ("limit_price", "avg_fill_price", "price", "bid", "ask"),
    r"-?\d+(\.\d{1,6})?": ("target_weight", "current_weight", "weight", "weight_diff"),
    r"\d+(\.\d{1,9})?": ("qty", "filled_qty", "requested_qty", "shares"),
}


def leaves(data: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(data, dict):
        for name, item in data.items():
            yield from leaves(item, name)
    elif isinstance(data, list):
        for item in data:
            yield from leaves(item, key)
    else:
        yield key, data


def assert_numbers_shown_to_their_places(data: Any) -> int:
    """Every decimal string is plain (no exponent, at most 9 decimals); the named kinds have
    their shapes. Returns how many named values were checked."""
    checked = 0
    for key, value in leaves(data):
        if not isinstance(value, str):
            continue
        assert not re.fullmatch(r"-?[\d.]+E[+-]?\d+", value), (key, value)
        if re.fullmatch(r"-?\d+\.\d+", value):
            assert len(value.split(".")[1]) <= 9, (key, value)
        for shape, names in SHAPES.items():
            if key in names:
                assert re.fullmatch(shape, value), (key, value)
                checked += 1
    return checked


def test_event_payloads_show_numbers_to_their_places(recorded: tuple[Path, str]) -> None:
    home, workflow_id = recorded
    result = run_alchemiser(home, "events", "--workflow", workflow_id, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert assert_numbers_shown_to_their_places(json.loads(result.stdout)) > 20


def test_every_decimal_a_run_records_has_a_kind(recorded: tuple[Path, str]) -> None:
    home, workflow_id = recorded

    async def payloads() -> list[dict[str, Any]]:
        store = SqlEventStore(f"sqlite+aiosqlite:///{home / 'data' / 'alchemiser.db'}")
        try:
            history = await store.read_correlation(workflow_id)
        finally:
            await store.close()
        return [item.event.model_dump(exclude=set(ENVELOPE_FIELDS)) for item in history]

    unnamed = [path for payload in asyncio.run(payloads()) for path in unnamed_decimals(payload)]
    assert unnamed == []


def test_the_why_endpoint_shows_numbers_to_their_places(recorded: tuple[Path, str]) -> None:
    home, workflow_id = recorded
    orders = json.loads(run_alchemiser(home, "broker", "orders", "--format", "json").stdout)

    async def answers() -> list[dict[str, Any]]:
        store = SqlEventStore(f"sqlite+aiosqlite:///{home / 'data' / 'alchemiser.db'}")
        settings = Settings(data_dir=home / "data", api_token="views-test-token")
        runtime = ServiceRuntime(definition(settings), settings, store, InMemoryBus())
        transport = httpx.ASGITransport(app=create_app(runtime))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
                return [
                    (await client.get(f"/v1/workflows/{workflow_id}/why/{order['symbol']}")).json()
                    for order in orders
                ]
        finally:
            await store.close()

    found = asyncio.run(answers())
    assert [answer["action"] for answer in found] == ["BUY"] * len(orders)
    assert assert_numbers_shown_to_their_places(found) >= 5 * len(orders)
