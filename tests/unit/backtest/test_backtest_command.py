"""`alchemiser backtest` as a real process: the JSON contract on stdout, the report written
twice, and every refusal one line on stderr with exit code 2 and nothing written."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.cli import run_alchemiser
from tests.unit.backtest.test_report import CONTRACT_KEYS

SESSIONS = [date(2024, 1, 1) + timedelta(days=i) for i in range(40)]
SESSIONS = [day for day in SESSIONS if day.weekday() < 5]


def write_bars(
    path: Path, closes: Mapping[str, Sequence[float | None]], columns: str = "close"
) -> Path:
    header = ["date", "symbol", "open", "high", "low", *columns.split(","), "volume"]
    lines = [",".join(header)]
    for symbol, series in closes.items():
        for day, close in zip(SESSIONS, series, strict=False):
            if close is not None:
                values = [str(close)] * (len(header) - 2)
                lines.append(",".join([str(day), symbol, *values]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    count = len(SESSIONS)
    write_bars(
        tmp_path / "bars.csv",
        {
            "SPY": [100.0 + (i % 7) - i * 0.1 for i in range(count)],
            "TLT": [90.0 + (i % 5) * 0.5 for i in range(count)],
        },
    )
    (tmp_path / "trend.clj").write_text(
        '(defsymphony "trend" {}\n'
        '  (if (> (current-price "SPY") (moving-average-price "SPY" {:window 5}))\n'
        '      (asset "SPY") (asset "TLT")))\n',
        encoding="utf-8",
    )
    (tmp_path / "half.clj").write_text(
        '(defsymphony "half" {} (weight-equal [(asset "SPY") (asset "TLT")]))\n',
        encoding="utf-8",
    )
    return tmp_path


def run_backtest(folder: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return run_alchemiser(folder, "backtest", *arguments)


def test_json_goes_to_stdout_and_the_report_to_the_given_file_and_the_data_dir(
    workspace: Path,
) -> None:
    result = run_backtest(
        workspace,
        "trend.clj",
        "half.clj",
        "--bars",
        "bars.csv",
        "--format",
        "json",
        "--report",
        "report.html",
    )

    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout, parse_constant=pytest.fail)
    assert set(data) >= set(CONTRACT_KEYS)
    assert data["parameters"]["start"] == str(SESSIONS[4])
    assert data["parameters"]["benchmark"] == ["SPY"]
    assert set(data["parameters"]["files"]) == {"trend.clj", "half.clj"}
    assert set(data["strategies"]) == {"trend.clj", "half.clj"}
    assert isinstance(data["equity"][0]["value"], float)
    assert (workspace / "report.html").is_file()
    [copy] = (workspace / "data" / "backtests").glob("*.html")
    assert copy.read_text(encoding="utf-8") == (workspace / "report.html").read_text("utf-8")
    headline = json.loads(copy.with_suffix(".json").read_text(encoding="utf-8"))
    assert headline == {"parameters": data["parameters"], "metrics": data["metrics"]}
    assert "{" not in result.stderr


def test_the_table_shows_the_metrics_each_year_and_the_costs(workspace: Path) -> None:
    result = run_backtest(workspace, "half.clj", "--bars", "bars.csv")

    assert result.returncode == 0, result.stderr
    for title in ("Metrics", "Return per calendar year", "Costs", "Timing sensitivity"):
        assert title in result.stdout
    assert "Sharpe ratio" in result.stdout and "2024" in result.stdout


def buys_under_a_dollar(workspace: Path, min_trade: str) -> list[float]:
    result = run_backtest(
        workspace,
        "half.clj",
        "--bars",
        "bars.csv",
        "--capital",
        "100",
        "--cash-reserve",
        "0",
        "--min-trade",
        min_trade,
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    rebalances = json.loads(result.stdout)["rebalances"]
    return [
        order["value"]
        for rebalance in rebalances[1:]
        for order in rebalance["orders"]
        if order["side"] == "BUY" and order["value"] < 1
    ]


def test_a_minimum_trade_of_0_also_lifts_executions_minimum_notional(workspace: Path) -> None:
    """Every live rule off must mean every difference traded: bt's curve is matched only then."""
    assert buys_under_a_dollar(workspace, "0")
    assert not buys_under_a_dollar(workspace, "0.0001")


def gap_bars(folder: Path) -> None:
    write_bars(
        folder / "bars.csv",
        {
            "SPY": [100.0 + i for i in range(len(SESSIONS))],
            "TLT": [90.0] * 10 + [None] + [90.0] * 40,
        },
    )


def no_close_column(folder: Path) -> None:
    write_bars(folder / "bars.csv", {"SPY": [100.0] * 10, "TLT": [90.0] * 10}, columns="price")


@pytest.mark.parametrize(
    ("arguments", "prepare", "message"),
    [
        (
            ["trend.clj", "--start", "2024-01-02"],
            None,
            r"^alchemiser: --start 2024-01-02 is too early: trend\.clj on 2024-01-04: "
            r"trend\.clj:2:32: "
            r'\(moving-average-price "SPY" \{:window 5\}\): insufficient history: .*'
            r"\(SPY's first bar is 2024-01-01\); the earliest start is 2024-01-05$",
        ),
        (
            ["half.clj"],
            gap_bars,
            r"^alchemiser: TLT has no bar on 2024-01-15, a session on which the strategies' other ",
        ),
        (
            ["half.clj", "--start", "2024-03-01"],
            None,
            r"^alchemiser: no session between --start 2024-03-01 and 2024-02-09$",
        ),
        (
            ["half.clj", "--start", "2024-01-10", "--end", "2024-01-05"],
            None,
            r"^alchemiser: --end 2024-01-05 is before --start 2024-01-10: the date range is empty$",
        ),
        (
            ["half.clj"],
            no_close_column,
            r"^alchemiser: bars\.csv: missing column 'close' ",
        ),
        (
            ["half.clj", "--rebalance", "daily", "--corridor", "0.05"],
            None,
            r"^alchemiser: --corridor applies to --rebalance none only, not to --rebalance daily$",
        ),
        (
            ["half.clj", "--benchmark", "QQQ"],
            None,
            r"^alchemiser: --benchmark QQQ: the bars hold no QQQ; ",
        ),
    ],
    ids=[
        "too-early-start",
        "symbol-missing-mid-run",
        "empty-date-range",
        "end-before-start",
        "bars-without-a-needed-column",
        "corridor-without-none",
        "unknown-benchmark",
    ],
)
def test_a_refusal_is_one_line_with_exit_code_2_and_nothing_written(
    workspace: Path,
    arguments: list[str],
    prepare: object,
    message: str,
) -> None:
    if callable(prepare):
        prepare(workspace)

    result = run_backtest(
        workspace, *arguments, "--bars", "bars.csv", "--format", "json", "--report", "r.html"
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert re.match(message, result.stderr.strip()), result.stderr
    assert not (workspace / "r.html").exists()
    assert not (workspace / "data" / "backtests").exists()
