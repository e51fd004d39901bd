"""`alchemiser backtest` over 1,000 sessions: the production config, all ten bundled files, and
3-Starburst alone, after the parse cache is warm; beside them bt simulating the production
config's precomputed consolidated targets on the same sessions, and the command as a process.

The bars are the synthetic sample (`shared/marketdata/sample.py`) for every bundled symbol on the
XNYS sessions from 2015 to 2024, so every file has the history it needs well before the last
1,000 sessions. Each figure is measured in a process of its own (started through
`/usr/bin/time`, which reports its peak resident memory), under the command's garbage-collection
policy; a full-output case writes what `--format json` writes, the HTML report and the JSON
object, to files. Prints figures and the machine's details only; never fails on a timing.

    .venv/bin/python benchmarks/backtest.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import TypeVar

from benchmarks.dsl import machine

SESSIONS = 1000
FIRST_SAMPLE_SESSION = date(2015, 1, 2)
LAST_SAMPLE_CLOSE = datetime(2024, 10, 2, tzinfo=UTC)
CAPITAL = Decimal(100_000)
STARBURST = "3-Starburst.clj"
CASES = {
    "production": "production config: equity + metrics",
    "production-json": "production config: full --format json + report",
    "ten-json": "all ten files: full --format json + report",
    "ten": "all ten files: equity + metrics",
    "starburst-json": "3-Starburst.clj: full --format json + report",
    "bt": "bt: the production config's precomputed targets",
}
T = TypeVar("T")


def measured(action: Callable[[], T]) -> tuple[T, float, float]:
    """The action's result, wall seconds and CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def run_case(case: str, bars_path: Path, cache_dir: Path) -> None:
    """One figure, in this process: prints `wall cpu detail`."""
    from services.backtest.backtest import Backtest, BacktestRequest
    from services.backtest.inputs import load_market, load_strategies
    from services.backtest.rebalance_schedule import RebalanceSchedule
    from services.backtest.simulation import TradingRules
    from services.commands.backtest import fewer_collections
    from services.strategy.symphonies import bundled_config
    from shared.settings import load_settings

    settings = load_settings(cache_dir=cache_dir, data_dir=cache_dir.parent / "data")
    market = load_market(bars_path, settings)
    start = date.fromisoformat(str(market.bars.sessions[-SESSIONS]))
    files = sorted(bundled_config().parent.glob("*.clj"))
    if case.startswith("ten"):
        strategies = load_strategies(files, None, settings)
    elif case.startswith("starburst"):
        strategies = load_strategies([p for p in files if p.name == STARBURST], None, settings)
    else:
        strategies = load_strategies([], bundled_config(), settings)
    live = TradingRules(
        schedule=RebalanceSchedule("daily"),
        cash_reserve=settings.cash_reserve,
        min_trade_fraction=settings.min_trade_fraction,
        min_notional_usd=settings.exec_min_notional_usd,
        slippage_bps=Decimal(1),
        fees="composer",
    )
    request = BacktestRequest(
        strategies=strategies,
        market=market,
        start=start,
        end=None,
        capital=CAPITAL,
        rules=live,
        timing="close",
        benchmarks=None,
        risk_free=0.0,
    )
    with fewer_collections():
        if case == "bt":
            wall, cpu, detail = bt_figures(Backtest(request))
        elif case.endswith("-json"):
            (json_size, page_size), wall, cpu = measured(
                lambda: full_output(Backtest(request), cache_dir.parent / case)
            )
            detail = f"{json_size / 2**20:.1f} MiB of JSON, {page_size / 2**20:.1f} MiB of report"
        else:
            portfolio, wall, cpu = measured(lambda: Backtest(request).portfolio())
            detail = f"{len(portfolio.run.equity)} sessions"
    print(f"{wall:.2f} {cpu:.2f} {detail}")


def full_output(backtest: object, folder: Path) -> tuple[int, int]:
    """What `alchemiser backtest --format json` writes: the report, then the JSON object (to a
    file here, not stdout); their sizes in bytes."""
    from services.backtest.backtest import Backtest
    from services.backtest.report import write_report

    assert isinstance(backtest, Backtest)
    result = backtest.result()
    folder.mkdir(exist_ok=True)
    with (folder / "report.html").open("w", encoding="utf-8") as page:
        write_report(result, page)
    with (folder / "backtest.json").open("w", encoding="utf-8") as out:
        result.write_json(out)
    return (folder / "backtest.json").stat().st_size, (folder / "report.html").stat().st_size


def bt_figures(backtest: object) -> tuple[float, float, str]:
    """bt simulating the consolidated targets the backtest decided (precomputed, not timed)."""
    import bt
    import pandas as pd

    from services.backtest.backtest import Backtest

    assert isinstance(backtest, Backtest)
    timeline = backtest.timeline
    dates = pd.to_datetime(list(timeline.run_dates))
    weights = pd.DataFrame(
        [timeline.decisions[i].target_weights for i in range(timeline.start, timeline.end + 1)],
        index=dates,
    ).fillna(0.0)
    closes = pd.DataFrame(
        {symbol: timeline.bars.closes[symbol] for symbol in weights.columns},
        index=pd.to_datetime(timeline.bars.sessions),
    ).loc[dates]

    def simulate() -> object:
        strategy = bt.Strategy("targets", [bt.algos.WeighTarget(weights), bt.algos.Rebalance()])
        run = bt.Backtest(
            strategy,
            closes,
            initial_capital=float(CAPITAL),
            integer_positions=False,
            progress_bar=False,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bt.run(run)

    _, wall, cpu = measured(simulate)
    return wall, cpu, f"{len(dates)} sessions, {len(weights.columns)} symbols"


def timed_process(command: list[str], environment: dict[str, str]) -> tuple[str, float]:
    """The command's stdout and its peak resident memory in MiB, from /usr/bin/time."""
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *command],
        capture_output=True,
        text=True,
        env=environment,
        check=True,
    )
    return done.stdout, int(done.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", choices=CASES)
    parser.add_argument("--bars", type=Path)
    parser.add_argument("--cache", type=Path)
    arguments = parser.parse_args()
    if arguments.case:
        run_case(arguments.case, arguments.bars, arguments.cache)
        return
    from services.backtest.inputs import load_strategies
    from services.strategy.signal_step import bundled_symbols
    from services.strategy.symphonies import bundled_config
    from shared.marketdata.sample import generate_sample, sample_sessions
    from shared.settings import load_settings

    print(f"alchemiser backtest benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"{machine()}, bt {version('bt')}")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        cache = work / "cache"
        settings = load_settings(cache_dir=cache, data_dir=work / "data")
        import pyarrow.parquet as pq

        sessions = sample_sessions(LAST_SAMPLE_CLOSE, first=FIRST_SAMPLE_SESSION)
        symbols = bundled_symbols(cache)
        bars_path = work / "bars.parquet"
        pq.write_table(generate_sample(symbols, sessions), bars_path)
        load_strategies(sorted(bundled_config().parent.glob("*.clj")), None, settings)
        start = sessions[-SESSIONS]
        print(
            f"bars: synthetic sample, {len(symbols)} symbols x {sessions.size} sessions "
            f"({sessions[0]} to {sessions[-1]}); each run over the last {SESSIONS} sessions "
            f"({start} to {sessions[-1]}) with the live rules, parse cache warm"
        )
        print(f"\n{'run':<52} {'wall s':>7} {'CPU s':>7} {'peak MiB':>9}  detail")
        environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        for case, label in CASES.items():
            output, peak = timed_process(
                [
                    sys.executable,
                    __file__,
                    "--case",
                    case,
                    "--bars",
                    str(bars_path),
                    "--cache",
                    str(cache),
                ],
                environment,
            )
            wall, cpu, detail = output.strip().split(" ", 2)
            print(f"{label:<52} {wall:>7} {cpu:>7} {peak:>9.0f}  {detail}")
        command = [
            sys.executable,
            "-m",
            "services.cli",
            "backtest",
            "--bars",
            str(bars_path),
            "--start",
            str(start),
            "--format",
            "json",
        ]
        cli_environment = {
            **environment,
            "ALCHEMISER_CACHE_DIR": str(cache),
            "ALCHEMISER_DATA_DIR": str(work / "data"),
        }
        wall = time.perf_counter()
        output, peak = timed_process(command, cli_environment)
        wall = time.perf_counter() - wall
        print(
            f"\n`alchemiser backtest --format json` as a process (production config, start-up, "
            f"bars, the report written too): {wall:.2f} s wall, peak {peak:.0f} MiB, "
            f"{len(output) / 2**20:.1f} MiB of JSON"
        )


if __name__ == "__main__":
    main()
