"""The `alchemiser evaluate` contract other tools rely on, run as a real process
(docs/strategy-language.md, The evaluate command)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN_ON_EVALUATE = ("fastapi", "sqlalchemy", "aio_pika", "pandas", "exchange_calendars")


def write_bars(path: Path, closes: Mapping[str, Sequence[float]]) -> Path:
    lines = ["date,symbol,open,high,low,close,volume"]
    for symbol, series in closes.items():
        for offset, close in enumerate(series):
            day = date(2024, 1, 1) + timedelta(days=offset)
            lines.append(f"{day},{symbol},{close},{close},{close},{close},1000")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_strategy(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(f'(defsymphony "{name}" {{:asset-class "EQUITIES"}}\n  {body})\n', "utf-8")
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    write_bars(
        tmp_path / "bars.csv",
        {
            "SPY": [100.0, 102.0, 101.0, 104.0, 103.0, 106.0, 108.0, 107.0],
            "TLT": [90.0, 91.0, 90.5, 91.5, 92.0, 91.0, 92.5, 93.0],
        },
    )
    write_strategy(tmp_path, "a.clj", '(asset "SPY")')
    write_strategy(tmp_path, "b.clj", '(weight-equal [(asset "SPY") (asset "TLT")])')
    return tmp_path


def run_cli(folder: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "ALCHEMISER_DATA_DIR": str(folder),
        "ALCHEMISER_CACHE_DIR": str(folder / "cache"),
    }
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "evaluate", *arguments],
        capture_output=True,
        text=True,
        cwd=folder,
        env=environment,
        check=False,
    )


def jsonl(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_one_line_per_strategy_and_date_in_order(workspace: Path) -> None:
    completed = run_cli(
        workspace,
        "a.clj",
        "b.clj",
        "--bars",
        "bars.csv",
        "--as-of",
        "2024-01-08",
        "--as-of",
        "2024-01-05",
        "--format",
        "jsonl",
    )
    assert completed.returncode == 0, completed.stderr
    assert jsonl(completed.stdout) == [
        {"strategy": "a.clj", "as_of": "2024-01-08", "weights": {"SPY": 1.0}},
        {"strategy": "a.clj", "as_of": "2024-01-05", "weights": {"SPY": 1.0}},
        {"strategy": "b.clj", "as_of": "2024-01-08", "weights": {"SPY": 0.5, "TLT": 0.5}},
        {"strategy": "b.clj", "as_of": "2024-01-05", "weights": {"SPY": 0.5, "TLT": 0.5}},
    ]
    assert "evaluated 2 file(s)" in completed.stderr


def test_config_adds_a_consolidated_line_per_date(workspace: Path) -> None:
    (workspace / "allocation.json").write_text(
        json.dumps({"files": ["a.clj", "b.clj"], "allocations": {"a.clj": 0.4, "b.clj": 0.6}}),
        encoding="utf-8",
    )
    dates = workspace / "dates.txt"
    dates.write_text("2024-01-07\n\n2024-01-08\n", encoding="utf-8")
    completed = run_cli(
        workspace, "--config", "allocation.json", "--bars", "bars.csv", "--dates-file", "dates.txt"
    )
    assert completed.returncode == 0, completed.stderr
    lines = jsonl(completed.stdout)
    assert [(line["strategy"], line["as_of"]) for line in lines] == [
        ("a.clj", "2024-01-07"),
        ("a.clj", "2024-01-08"),
        ("b.clj", "2024-01-07"),
        ("b.clj", "2024-01-08"),
        ("consolidated", "2024-01-07"),
        ("consolidated", "2024-01-08"),
    ]
    consolidated = lines[-1]["weights"]
    assert consolidated == pytest.approx({"SPY": 0.7, "TLT": 0.3}, abs=1e-12)


def test_failed_evaluation_prints_an_error_line_and_exits_1(workspace: Path) -> None:
    write_strategy(
        workspace, "short.clj", '(if (> (rsi "SPY" {:window 14}) 50) (asset "SPY") (asset "TLT"))'
    )
    completed = run_cli(
        workspace, "short.clj", "a.clj", "--bars", "bars.csv", "--as-of", "2024-01-08"
    )
    assert completed.returncode == 1
    failed, succeeded = jsonl(completed.stdout)
    assert failed == {
        "strategy": "short.clj",
        "as_of": "2024-01-08",
        "error": 'short.clj:2:10: (rsi "SPY" {:window 14}): insufficient history: needs 15 '
        "closes, SPY has 8 up to 2024-01-08; load older bars or choose a later as-of date",
    }
    assert succeeded["weights"] == {"SPY": 1.0}


def test_consolidated_line_fails_when_a_configured_file_fails(workspace: Path) -> None:
    write_strategy(
        workspace,
        "short.clj",
        '(filter (rsi {:window 30}) (select-top 1) [(asset "SPY") (asset "TLT")])',
    )
    (workspace / "allocation.json").write_text(
        json.dumps({"files": ["a.clj", "short.clj"], "allocations": {"a.clj": 1, "short.clj": 1}}),
        encoding="utf-8",
    )
    completed = run_cli(
        workspace, "--config", "allocation.json", "--bars", "bars.csv", "--as-of", "2024-01-08"
    )
    assert completed.returncode == 1
    consolidated = jsonl(completed.stdout)[-1]
    assert consolidated["strategy"] == "consolidated"
    assert str(consolidated["error"]).startswith("short.clj failed: short.clj:")
    assert "warning" in completed.stderr and "sum to 2" in completed.stderr


def test_ticker_outside_the_bars_universe_fails_before_evaluation(workspace: Path) -> None:
    write_strategy(workspace, "unknown.clj", '(asset "QQQ")')
    completed = run_cli(workspace, "unknown.clj", "--bars", "bars.csv", "--as-of", "2024-01-08")
    assert completed.returncode == 1
    [line] = jsonl(completed.stdout)
    assert "unknown ticker 'QQQ'" in str(line["error"])


def test_trace_adds_the_full_trace_to_each_line(workspace: Path) -> None:
    write_strategy(
        workspace,
        "branch.clj",
        '(if (> (current-price "SPY") (moving-average-price "SPY" {:window 3})) '
        '(asset "SPY") (asset "TLT"))',
    )
    completed = run_cli(
        workspace, "branch.clj", "--bars", "bars.csv", "--as-of", "2024-01-08", "--trace"
    )
    assert completed.returncode == 0, completed.stderr
    [line] = jsonl(completed.stdout)
    assert line["weights"] == {"TLT": 1.0}
    trace = line["trace"]
    assert isinstance(trace, list)
    assert trace[0]["node"] == "if" and trace[0]["branch"] == "else"
    assert trace[0]["left"] == 107.0


def test_help_says_where_the_trace_goes() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "services.cli", "evaluate", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert completed.returncode == 0
    assert '"trace" key' in completed.stdout


def test_bad_date_in_dates_file_names_file_and_line(workspace: Path) -> None:
    (workspace / "dates.txt").write_text("2024-01-08\n2024-13-01\n", encoding="utf-8")
    completed = run_cli(workspace, "a.clj", "--bars", "bars.csv", "--dates-file", "dates.txt")
    assert completed.returncode == 2
    assert "dates.txt:2: '2024-13-01' is not a date" in completed.stderr
    assert completed.stdout == ""


def test_evaluate_loads_no_service_framework(workspace: Path) -> None:
    probe = (
        "import sys\n"
        "from services.cli import app\n"
        "try:\n"
        "    app(['evaluate', 'a.clj', '--bars', 'bars.csv', '--as-of', '2024-01-08'],"
        " standalone_mode=False)\n"
        "finally:\n"
        f"    loaded = [m for m in {FORBIDDEN_ON_EVALUATE!r} if m in sys.modules]\n"
        "    print('LOADED', loaded, file=sys.stderr)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=workspace,
        env={
            **os.environ,
            "ALCHEMISER_CACHE_DIR": str(workspace / "cache"),
            "PYTHONPATH": str(REPO),
        },
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "LOADED []" in completed.stderr
    assert jsonl(completed.stdout) == [
        {"strategy": "a.clj", "as_of": "2024-01-08", "weights": {"SPY": 1.0}}
    ]


@pytest.mark.parametrize("bars", ["data/bars", "data"])
def test_a_bar_store_directory_is_accepted_as_bars(workspace: Path, bars: str) -> None:
    """`--bars data/bars` (as docs/operations.md writes it) or the data directory itself."""
    from shared.marketdata.barstore import BarStore

    BarStore(workspace / "data").import_csv(workspace / "bars.csv")
    completed = run_cli(workspace, "b.clj", "--bars", bars, "--as-of", "2024-01-08")
    assert completed.returncode == 0, completed.stderr
    assert jsonl(completed.stdout) == [
        {"strategy": "b.clj", "as_of": "2024-01-08", "weights": {"SPY": 0.5, "TLT": 0.5}}
    ]


def test_a_directory_without_a_bar_store_is_named(workspace: Path) -> None:
    (workspace / "empty").mkdir()
    completed = run_cli(workspace, "a.clj", "--bars", "empty", "--as-of", "2024-01-08")
    assert completed.returncode == 2
    assert "empty: no bar store" in completed.stderr
    assert "alchemiser data import" in completed.stderr
    assert not (workspace / "empty" / ".bars.lock").exists()


@pytest.mark.parametrize(
    ("as_of", "gap"),
    [("2024-01-12", "4 sessions (2024-01-09 to 2024-01-12)"), ("2030-01-02", "sessions")],
)
def test_an_as_of_after_the_last_bar_is_an_error_naming_it_and_the_gap(
    workspace: Path, as_of: str, gap: str
) -> None:
    """A signal on stale data must never look fresh: the bars end on Monday 2024-01-08."""
    completed = run_cli(
        workspace, "a.clj", "--bars", "bars.csv", "--as-of", "2024-01-08", "--as-of", as_of
    )
    assert completed.returncode == 2, completed.stdout
    assert completed.stdout == ""
    assert f"--as-of {as_of} is " in completed.stderr
    assert gap in completed.stderr
    assert "after the last bar (2024-01-08)" in completed.stderr


def test_an_as_of_after_the_last_bar_without_a_session_between_is_fresh(tmp_path: Path) -> None:
    """Bars ending Friday 2024-01-12 are the latest on Saturday and on Monday 2024-01-15, a
    holiday (Martin Luther King Jr. Day) of the exchange calendar."""
    write_bars(tmp_path / "bars.csv", {"SPY": [100.0 + day for day in range(12)]})
    write_strategy(tmp_path, "a.clj", '(asset "SPY")')
    completed = run_cli(
        tmp_path, "a.clj", "--bars", "bars.csv", "--as-of", "2024-01-13", "--as-of", "2024-01-15"
    )
    assert completed.returncode == 0, completed.stderr
    assert [line["as_of"] for line in jsonl(completed.stdout)] == ["2024-01-13", "2024-01-15"]
