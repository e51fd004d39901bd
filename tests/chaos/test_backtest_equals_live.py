"""A backtest is what live trading would have done: the embedded system (all four services in one
process, the simulated broker under the `close` fill model) steps through consecutive sessions of
the shipped production config on the simulated clock, and `alchemiser backtest` with no costs over
the same sessions shows the same equity each day, within a cent per $100,000, and the same orders
(symbol, side, quantity within 1e-6 shares).

Marked chaos so it runs in `make chaos-ci` (about a second per session here) rather than in
`make test`; it needs no server (SQLite and the in-memory bus).
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.embedded import at_close_window, prepare_data, run_sessions
from shared.broker.simulated import SimulatedBroker
from shared.events import OrderFilled
from shared.marketdata.barstore import BarStore
from shared.settings import Settings, load_settings
from tests.cli import run_alchemiser

pytestmark = pytest.mark.chaos

SESSIONS = 30
ACCOUNT = "backtest-equivalence"
CENT_PER_100K = Decimal("0.01") / Decimal(100_000)
SHARES = Decimal("0.000001")

Orders = list[tuple[str, str, Decimal]]


def settings_for(data_dir: Path, cache_dir: Path) -> Settings:
    return load_settings(
        data_dir=data_dir,
        cache_dir=cache_dir,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'alchemiser.db'}",
        strategy_config=None,
        sim_fill_model="close",
        sim_starting_cash=Decimal(100_000),
        timer_poll_s=0.05,
        log_level="WARNING",
    )


async def live_run(
    settings: Settings, sessions: list[date], out_dir: Path
) -> tuple[dict[date, Decimal], dict[date, Orders]]:
    """Each session's equity after its workflow, and the orders it filled."""
    bars = BarStore(settings.data_dir).load()
    equity: dict[date, Decimal] = {}
    orders: dict[date, Orders] = {}
    async for session, result in run_sessions(
        settings, sessions, account_id=ACCOUNT, out_dir=out_dir, progress=lambda line: None
    ):
        assert result.view.status == "completed", f"{session}: {result.view.status}"
        orders[session] = sorted(
            (event.symbol, event.side.value, event.filled_qty)
            for event in result.events
            if isinstance(event, OrderFilled)
        )
        broker = SimulatedBroker.from_settings(at_close_window(settings, session), ACCOUNT, bars)
        try:
            equity[session] = (await broker.get_account()).equity
        finally:
            await broker.close()
    return equity, orders


def backtest(work: Path, first: date, last: date) -> dict[str, Any]:
    done = run_alchemiser(
        work,
        "backtest",
        "--bars",
        work / "data",
        "--start",
        first.isoformat(),
        "--end",
        last.isoformat(),
        "--fees",
        "none",
        "--slippage-bps",
        "0",
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


async def test_the_embedded_system_trades_what_the_backtest_shows_session_by_session(
    bars: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(bars / "bars", data_dir / "bars")
    settings = settings_for(data_dir, tmp_path / "cache")
    await prepare_data(settings, lambda line: None)
    stored = BarStore(data_dir).load()
    sessions = [day.astype(object) for day in stored.sessions[-SESSIONS:]]

    live_equity, live_orders = await live_run(settings, sessions, tmp_path / "out")
    result = backtest(tmp_path, sessions[0], sessions[-1])

    backtest_equity = {date.fromisoformat(p["date"]): p["value"] for p in result["equity"]}
    assert list(backtest_equity) == sessions
    gaps = {
        session: abs(Decimal(repr(backtest_equity[session])) - live_equity[session])
        for session in sessions
    }
    print(f"{SESSIONS} sessions; largest equity difference ${float(max(gaps.values())):.2e}")
    for session, gap in gaps.items():
        live = live_equity[session]
        assert gap <= CENT_PER_100K * live, (
            f"{session}: live {live}, backtest {backtest_equity[session]}"
        )
    backtest_orders: dict[date, Orders] = {session: [] for session in sessions}
    for rebalance in result["rebalances"]:
        backtest_orders[date.fromisoformat(rebalance["date"])] = sorted(
            (order["symbol"], order["side"], Decimal(repr(order["quantity"])))
            for order in rebalance["orders"]
        )
    traded = [session for session in sessions if live_orders[session]]
    print(f"{len(traded)} sessions traded, {sum(map(len, live_orders.values()))} orders")
    assert len(traded) > SESSIONS // 2
    for session in sessions:
        live_side = [(symbol, side) for symbol, side, _ in live_orders[session]]
        ours = [(symbol, side) for symbol, side, _ in backtest_orders[session]]
        assert ours == live_side, f"{session}: live {live_orders[session]}"
        for (_, _, live_qty), (_, _, qty) in zip(
            live_orders[session], backtest_orders[session], strict=True
        ):
            assert abs(live_qty - qty) <= SHARES, f"{session}: live {live_qty}, backtest {qty}"
