"""`alchemiser backtest`: the live pipeline over history — the strategy files decided on every
session by the date-axis engine, each rebalance planned by the live planner and sized by
execution's rules, filled at the close.

Other tools read `--format json` from stdout, so stdout carries only the result and everything
else (warnings, logs, the progress bar) goes to stderr. A usage or data problem is one line on
stderr and exit code 2, with nothing written. The HTML report goes to `--report` and, always, to
a copy under `ALCHEMISER_DATA_DIR/backtests/`.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from services.commands.failures import OptionError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from services.backtest.backtest import BacktestRequest
    from services.backtest.result import BacktestResult
    from shared.settings import Settings

FORMATS = ("table", "json")
PROGRESS_AFTER_S = 1.0
REPORTS_FOLDER = "backtests"
BULK_GC_THRESHOLDS = (100_000, 50, 1_000)

Choice = TypeVar("Choice", bound=str)


def backtest(
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Strategy files (.clj), weighted equally; without them --config, else the "
            "configured strategy set (ALCHEMISER_STRATEGY_CONFIG or the bundled production "
            "config).",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Allocation JSON: its files with its weights."),
    ] = None,
    bars: Annotated[
        Path | None,
        typer.Option(
            "--bars",
            help="Bars (Parquet, .csv or .csv.gz, or a bar-store directory); default the "
            "installation's bar store.",
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--start", help="First session (YYYY-MM-DD; the first session on or after it)."
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--end", help="Last session (YYYY-MM-DD; the last on or before it)."),
    ] = None,
    capital: Annotated[str, typer.Option("--capital", help="Starting cash in dollars.")] = "100000",
    rebalance: Annotated[
        str,
        typer.Option("--rebalance", help="daily, weekly, monthly, quarterly, yearly or none."),
    ] = "daily",
    corridor: Annotated[
        str | None,
        typer.Option(
            "--corridor",
            help="With --rebalance none: also rebalance when a holding's weight leaves its "
            "target ± W (0.05 = 5 points).",
        ),
    ] = None,
    cash_reserve: Annotated[
        str | None,
        typer.Option("--cash-reserve", help="Default ALCHEMISER_CASH_RESERVE (0.01)."),
    ] = None,
    min_trade: Annotated[
        str | None,
        typer.Option(
            "--min-trade",
            help="Minimum trade as a fraction of the portfolio; default "
            "ALCHEMISER_MIN_TRADE_FRACTION (0.01). 0 trades every difference, also a "
            "fractional BUY under ALCHEMISER_EXEC_MIN_NOTIONAL_USD.",
        ),
    ] = None,
    slippage_bps: Annotated[
        str, typer.Option("--slippage-bps", help="Fills this far from the close, against you.")
    ] = "1",
    fees: Annotated[
        str, typer.Option("--fees", help="composer (SEC and FINRA TAF on sells) or none.")
    ] = "composer",
    timing: Annotated[
        str,
        typer.Option(
            "--timing",
            help="close: decide on a session's bar, trade at its close; previous-close: decide "
            "on the bars before it.",
        ),
    ] = "close",
    benchmark: Annotated[
        list[str] | None,
        typer.Option("--benchmark", help="Buy-and-hold comparison; repeatable (default SPY)."),
    ] = None,
    risk_free: Annotated[
        str, typer.Option("--risk-free", help="Annual risk-free rate as a fraction.")
    ] = "0",
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the HTML report here too.")
    ] = None,
    output_format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Backtest strategy files over the bars with the live planner and sizing; print the result.

    The HTML report is always written under ALCHEMISER_DATA_DIR/backtests/ (and to --report).
    Errors are one line on stderr with exit code 2, and nothing is written.
    """
    from services.commands.settings import settings_or_exit
    from shared.logs import configure_logging

    settings = settings_or_exit()
    configure_logging(settings.log_level)
    if output_format not in FORMATS:
        raise OptionError(f"--format {output_format!r}: use table or json")
    request = _request(
        settings,
        files=files or [],
        config=config,
        bars=bars,
        start=_date("--start", start),
        end=_date("--end", end),
        capital=_decimal("--capital", capital, minimum=Decimal(0), inclusive=False),
        rebalance=rebalance,
        corridor=None if corridor is None else _decimal("--corridor", corridor),
        cash_reserve=settings.cash_reserve
        if cash_reserve is None
        else _fraction("--cash-reserve", cash_reserve),
        min_trade=settings.min_trade_fraction
        if min_trade is None
        else _fraction("--min-trade", min_trade),
        slippage_bps=_decimal("--slippage-bps", slippage_bps, minimum=Decimal(0)),
        fees=fees,
        timing=timing,
        benchmarks=None if not benchmark else tuple(s.strip().upper() for s in benchmark),
        risk_free=float(_decimal("--risk-free", risk_free, minimum=Decimal(-1), inclusive=False)),
    )
    with fewer_collections():
        result = _run(request)
        _write_reports(result, report, settings)
        if output_format == "json":
            result.write_json(sys.stdout)
            sys.stdout.write("\n")
            sys.stdout.flush()
        else:
            from rich.console import Console

            from services.backtest.tables import print_tables

            print_tables(result, Console())


def _request(
    settings: Settings,
    *,
    files: list[Path],
    config: Path | None,
    bars: Path | None,
    start: date | None,
    end: date | None,
    capital: Decimal,
    rebalance: str,
    corridor: Decimal | None,
    cash_reserve: Decimal,
    min_trade: Decimal,
    slippage_bps: Decimal,
    fees: str,
    timing: str,
    benchmarks: tuple[str, ...] | None,
    risk_free: float,
) -> BacktestRequest:
    from services.backtest.backtest import BacktestRequest
    from services.backtest.costs import FEE_MODELS
    from services.backtest.errors import BacktestError
    from services.backtest.inputs import load_market, load_strategies
    from services.backtest.rebalance_schedule import REBALANCE_MODES, RebalanceSchedule
    from services.backtest.result import TIMINGS
    from services.backtest.simulation import TradingRules

    mode = _choice("--rebalance", rebalance, REBALANCE_MODES)
    fee_model = _choice("--fees", fees, FEE_MODELS)
    trade_timing = _choice("--timing", timing, TIMINGS)
    if start is not None and end is not None and end < start:
        raise OptionError(f"--end {end} is before --start {start}: the date range is empty")
    try:
        schedule = RebalanceSchedule(mode, corridor)
        strategies = load_strategies(files, config, settings)
        market = load_market(bars, settings)
    except (ValueError, BacktestError) as error:
        raise OptionError(str(error)) from None
    for warning in strategies.warnings:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    return BacktestRequest(
        strategies=strategies,
        market=market,
        start=start,
        end=end,
        capital=capital,
        rules=TradingRules(
            schedule=schedule,
            cash_reserve=cash_reserve,
            min_trade_fraction=min_trade,
            # `--min-trade 0` asks for every difference to be traded: execution's floor for a
            # small fractional BUY is a minimum trade too
            # (docs/backtest.md, What a backtest assumes).
            min_notional_usd=settings.exec_min_notional_usd if min_trade > 0 else Decimal(0),
            slippage_bps=slippage_bps,
            fees=fee_model,
        ),
        timing=trade_timing,
        benchmarks=benchmarks,
        risk_free=risk_free,
    )


def _run(request: BacktestRequest) -> BacktestResult:
    from services.backtest.backtest import Backtest
    from services.backtest.errors import BacktestError

    bar = _ProgressBar()
    try:
        return Backtest(request, progress=bar).result()
    except BacktestError as error:
        raise OptionError(str(error)) from None
    finally:
        bar.close()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect garbage less often while the backtest builds and writes its result.

    The parsed trees and the bars live until the process ends, so they are taken out of the
    collector's reach (as `alchemiser evaluate` does), and a run keeps hundreds of thousands of
    plan items, orders and decision steps alive as it goes, which the default thresholds walk
    again at every full collection: all ten bundled files over 1,000 sessions spend about a fifth
    of their CPU time there (measured, docs/performance.md)."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*BULK_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def _write_reports(result: BacktestResult, report: Path | None, settings: Settings) -> None:
    """The page to --report (one that cannot be opened writes nothing) and to the dashboard's
    copy, both written as the page is rendered (it is never held whole); then the copy's
    headline (parameters and metrics, as `--format json` has them), last, so the dashboard lists
    only reports whose page is complete."""
    from services.backtest.report import write_report

    folder = settings.data_dir / REPORTS_FOLDER
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    digest = result.parameters.strategy_files_hash.removeprefix("sha256:")[:12]
    name = f"backtest-{stamp}-{digest}"
    with ExitStack() as files:
        pages = []
        if report is not None:
            try:
                pages.append(files.enter_context(report.open("w", encoding="utf-8")))
            except OSError as error:
                raise OptionError(f"--report {report}: {error.strerror or error}") from None
        folder.mkdir(parents=True, exist_ok=True)
        pages.append(files.enter_context((folder / f"{name}.html").open("w", encoding="utf-8")))
        write_report(result, *pages)
    # the dashboard's list reads the headline beside the page (docs/web.md, Pages)
    headline = {"parameters": result.parameters.to_json(), "metrics": dict(result.metrics)}
    (folder / f"{name}.json").write_text(json.dumps(headline, allow_nan=False), encoding="utf-8")


def _choice(flag: str, value: str, choices: Sequence[Choice]) -> Choice:
    for choice in choices:
        if value == choice:
            return choice
    raise OptionError(f"{flag} {value!r}: use {', '.join(choices)}")


def _date(flag: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise OptionError(f"{flag} {value!r}: expected a date YYYY-MM-DD") from None


def _decimal(
    flag: str, value: str, *, minimum: Decimal | None = None, inclusive: bool = True
) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise OptionError(f"{flag} {value!r}: expected a number") from None
    if not number.is_finite() or (
        minimum is not None and (number < minimum or (not inclusive and number == minimum))
    ):
        bound = "" if minimum is None else f" {'≥' if inclusive else '>'} {minimum}"
        raise OptionError(f"{flag} {value!r}: expected a finite number{bound}")
    return number


def _fraction(flag: str, value: str) -> Decimal:
    number = _decimal(flag, value, minimum=Decimal(0))
    if number >= 1:
        raise OptionError(f"{flag} {value!r}: expected a fraction in [0, 1)")
    return number


class _ProgressBar:
    """A progress bar on stderr, shown only when stderr is a terminal and the run has taken
    more than a second, so quick runs and captured output stay clean."""

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, done: int, total: int) -> None:
        if self._progress is None:
            if time.monotonic() - self._started < PROGRESS_AFTER_S or not sys.stderr.isatty():
                return
            from rich.console import Console
            from rich.progress import Progress

            self._progress = Progress(console=Console(stderr=True), transient=True)
            self._progress.start()
            self._task = self._progress.add_task("simulating sessions", total=total)
        assert self._task is not None
        self._progress.update(self._task, completed=done, total=total)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
