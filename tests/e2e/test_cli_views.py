"""What `alchemiser events`, `broker account` and `replay` show a person after one recorded run:
order lines say what was traded, an account that never traded is not shown as if it existed,
and no option promises what the command refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
