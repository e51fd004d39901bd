"""The P&L projection over three simulated days with known prices
(docs/trading-rules.md, Profit and loss): the embedded system trades two strategies on imported
bars, then a third replaces one of them, which sells its holding; afterwards starting capital +
realised + unrealised − fees is the broker's equity to the cent, the strategies and the
unattributed bucket add up to the total, and a checkpointed projection caught up equals the one
rebuilt from the first event."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from services.embedded import at_close_window, prepare_data, run_once
from services.notify.formatting import signed_money
from services.notify.rendering import render_workflow
from services.pnl import PnlLedger, pnl_view
from services.projections import UNATTRIBUTED
from shared.broker.simulated import SimulatedBroker
from shared.eventstore.store import SqlEventStore
from shared.marketdata.barstore import BarStore
from shared.settings import Settings, load_settings
from tests.cli import run_alchemiser

pytestmark = pytest.mark.slow

ACCOUNT = "pnl"
CLOSES = {
    "SPY": ["470.00", "472.50", "468.10", "471.35", "480.90"],
    "QQQ": ["400.00", "401.20", "396.75", "399.15", "405.05"],
    "TLT": ["95.00", "94.40", "95.85", "96.20", "95.10"],
}
SESSIONS = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08"]
DAYS = [date(2024, 1, 4), date(2024, 1, 5), date(2024, 1, 8)]


def strategies(folder: Path, allocations: dict[str, float]) -> Path:
    folder.mkdir()
    for name in allocations:
        symbol = name.removesuffix(".clj").upper()
        (folder / name).write_text(
            f'(defsymphony "{symbol}" {{}} (weight-equal [(asset "{symbol}" "{symbol}")]))'
        )
    config = folder / "allocation.json"
    config.write_text(json.dumps({"files": list(allocations), "allocations": allocations}))
    return config


def settings_for(home: Path, config: Path) -> Settings:
    return load_settings(
        data_dir=home / "data",
        cache_dir=home / "cache",
        database_url=f"sqlite+aiosqlite:///{home / 'data' / 'alchemiser.db'}",
        strategy_config=config,
        sim_starting_cash=Decimal(100_000),
        timer_poll_s=0.05,
        log_level="WARNING",
    )


async def test_three_days_add_up_to_the_brokers_equity_and_the_attribution_to_the_total(
    tmp_path: Path,
) -> None:
    csv = tmp_path / "bars.csv"
    csv.write_text(
        "date,symbol,open,high,low,close,volume\n"
        + "".join(
            f"{day},{symbol},{close},{close},{close},{close},1000\n"
            for symbol, closes in CLOSES.items()
            for day, close in zip(SESSIONS, closes, strict=True)
        )
    )
    BarStore(tmp_path / "data").import_csv(csv)
    two = strategies(tmp_path / "two", {"spy.clj": 0.6, "qqq.clj": 0.4})
    replaced = strategies(tmp_path / "replaced", {"spy.clj": 0.6, "tlt.clj": 0.4})
    settings = settings_for(tmp_path, two)
    await prepare_data(settings, lambda line: None)

    store = SqlEventStore(settings.resolved_database_url)
    try:
        checkpoint = ""
        for day, config in zip(DAYS, (two, two, replaced), strict=True):
            clocked = at_close_window(settings_for(tmp_path, config), day)
            result = await run_once(
                clocked, account_id=ACCOUNT, out_dir=tmp_path / "out", progress=lambda line: None
            )
            assert result.view.status == "completed", result.view.failure_reason
            emailed = result.report_files[1].read_text()
            if day == DAYS[0]:
                checkpoint = (await PnlLedger.rebuild(store)).to_document()

        broker = SimulatedBroker.from_settings(
            at_close_window(settings, DAYS[-1]), ACCOUNT, BarStore(tmp_path / "data").load()
        )
        try:
            positions = await broker.get_positions()
            equity = (await broker.get_account()).equity
        finally:
            await broker.close()
        marks = {p.symbol: p.current_price for p in positions if p.current_price is not None}
        view = await pnl_view(store, ACCOUNT, marks=marks, as_of=DAYS[-1])
        restored = PnlLedger.from_document(checkpoint)
        await restored.catch_up(store)
        rebuilt = await PnlLedger.rebuild(store)
    finally:
        await store.close()

    assert view is not None
    assert view.starting_equity == Decimal(100_000)
    assert view.starting_equity + view.realised + view.unrealised - view.fees == view.equity
    assert view.equity == equity.quantize(Decimal("0.01"))
    assert view.realised != 0, "selling QQQ on the third day realised its move"
    assert view.pnl == view.equity - Decimal(100_000)
    assert sum(view.by_strategy.values()) == view.pnl
    assert set(view.by_strategy) == {"spy.clj", "qqq.clj", "tlt.clj", UNATTRIBUTED}
    assert [day.date for day in view.days] == [d.isoformat() for d in DAYS]
    assert sum(day.pnl for day in view.days) == view.pnl
    assert view.day_pnl == view.days[-1].pnl
    # SPY's strategy owned 60 % of the target through both moves: 0.6 × equity × SPY's return,
    # each day priced at the quote mids (within cents of the closes)
    day1, day2 = view.days[0].equity, view.days[1].equity
    expected = Decimal("0.6") * (
        day1 * (Decimal("471.35") / Decimal("468.10") - 1)
        + day2 * (Decimal("480.90") / Decimal("471.35") - 1)
    )
    assert abs(view.by_strategy["spy.clj"] - expected) < Decimal(1)
    assert {p.symbol for p in view.positions} == {"SPY", "TLT"}
    held = {p.symbol: p.qty for p in positions}
    assert {p.symbol: p.qty for p in view.positions} == held
    assert sum(p.market_value for p in view.positions) == sum(p.market_value for p in positions)
    assert restored.to_document() == rebuilt.to_document()
    # the last run's email: the P&L at its planning prices, every strategy and the bucket
    recorded = rebuilt.view(ACCOUNT)
    assert recorded is not None
    assert "PROFIT AND LOSS" in emailed
    assert f"since inception {signed_money(recorded.pnl)}" in emailed
    assert "(UNATTRIBUTED)" in emailed and "SPY.CLJ" not in emailed and "TLT " in emailed
    alert = render_workflow(result.events, neutral=False, default_live=False, pnl=recorded)
    assert f"P&L day {signed_money(recorded.day_pnl)}, total {signed_money(recorded.pnl)}" in (
        alert.summary
    )
    assert restored.last_position > 0

    # the commands show the same figures, as decimal strings to the cent
    done = run_alchemiser(tmp_path, "pnl", "--account", ACCOUNT, "--format", "json")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["equity"] == str(view.equity)
    assert printed["by_strategy"] == {name: str(v) for name, v in view.by_strategy.items()}
    assert [day["pnl"] for day in printed["days"]] == [str(day.pnl) for day in view.days]
    table = run_alchemiser(tmp_path, "pnl", "--account", ACCOUNT, "--since", "2024-01-05")
    assert table.returncode == 0, table.stderr
    pnl_line = next(line for line in table.stdout.splitlines() if line.startswith("  P&L"))
    assert pnl_line.split()[1] == f"{view.days[1].pnl + view.days[2].pnl:,.2f}"
    listed = run_alchemiser(tmp_path, "broker", "positions", "--format", "json")
    costs = {
        row["symbol"]: (row["cost_basis"], row["unrealised"]) for row in json.loads(listed.stdout)
    }
    assert costs == {p.symbol: (str(p.cost_basis), str(p.unrealised)) for p in view.positions}
    refused = run_alchemiser(tmp_path, "pnl", "--account", "nobody")
    assert refused.returncode == 1
    assert "account 'nobody' has no recorded plan" in refused.stderr
