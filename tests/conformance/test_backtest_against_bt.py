"""The backtest against independent libraries on the conformance bars.

With every live rule off (daily rebalancing, no cash reserve, no minimum trade, no slippage, no
fees, and execution's $1 minimum notional set to 0) the production config's equity curve is
bt's simulation of the consolidated targets that `alchemiser evaluate --config` prints for the
same sessions, to 1e-6 relative on every day; and the statistics ffn also computes agree with
ffn on that curve. Both sides run as real processes, as other tools would call them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from services.strategy.symphonies import bundled_config
from shared.marketdata.bars_file import load_bars
from tests.backtest_reference import bt_equity, ffn_figures
from tests.cli import run_alchemiser

pytest.importorskip("bt")
pytest.importorskip("ffn")

BARS = Path(__file__).parent / "data" / "bars-public.parquet"
CAPITAL = 100_000.0
EVERY_RULE_OFF = (
    "--rebalance",
    "daily",
    "--cash-reserve",
    "0",
    "--min-trade",
    "0",
    "--slippage-bps",
    "0",
    "--fees",
    "none",
)
RELATIVE = 1e-6


def alchemiser(folder: Path, *arguments: str) -> str:
    done = run_alchemiser(folder, *arguments)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def backtest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("backtest")
    output = alchemiser(
        folder,
        "backtest",
        "--config",
        str(bundled_config()),
        "--bars",
        str(BARS),
        "--capital",
        str(int(CAPITAL)),
        *EVERY_RULE_OFF,
        "--format",
        "json",
    )
    result: dict[str, Any] = json.loads(output)
    dates = [point["date"] for point in result["equity"]]
    (folder / "dates.txt").write_text("\n".join(dates) + "\n", encoding="utf-8")
    lines = alchemiser(
        folder,
        "evaluate",
        "--config",
        str(bundled_config()),
        "--bars",
        str(BARS),
        "--dates-file",
        str(folder / "dates.txt"),
    ).splitlines()
    result["consolidated"] = {
        record["as_of"]: record["weights"]
        for record in map(json.loads, lines)
        if record["strategy"] == "consolidated"
    }
    return result


def our_equity(result: dict[str, Any]) -> pd.Series:
    return pd.Series(
        [point["value"] for point in result["equity"]],
        index=pd.to_datetime([point["date"] for point in result["equity"]]),
    )


def test_with_every_live_rule_off_the_equity_is_bts_simulation_of_the_consolidated_targets(
    backtest: dict[str, Any],
) -> None:
    ours = our_equity(backtest)
    weights = pd.DataFrame.from_dict(backtest["consolidated"], orient="index").fillna(0.0)
    weights.index = pd.to_datetime(weights.index)
    snapshot = load_bars(BARS)
    sessions = pd.to_datetime(snapshot.sessions)
    closes = pd.DataFrame(
        {symbol: snapshot.closes[symbol] for symbol in weights.columns}, index=sessions
    ).loc[ours.index]

    theirs = bt_equity(closes, weights.loc[ours.index], CAPITAL)

    assert len(ours) > 1000
    assert list(theirs.index) == list(ours.index)
    relative = (ours / theirs - 1.0).abs()
    assert relative.max() < RELATIVE, f"worst on {relative.idxmax().date()}: {relative.max()}"


def test_the_statistics_ffn_computes_agree_with_ffn_on_the_equity(
    backtest: dict[str, Any],
) -> None:
    theirs = ffn_figures(our_equity(backtest), rf=0.0)

    ours = {name: backtest["metrics"][name] for name in theirs}
    assert ours == pytest.approx(theirs, rel=RELATIVE, abs=RELATIVE)
