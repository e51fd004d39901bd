"""`alchemiser evaluate`: strategy files against a bars file, one JSON line per (strategy, date).

Other tools (conformance checks, backtests, notebooks) read its stdout, so stdout carries only the
JSONL contract (docs/strategy-language.md, The evaluate command) and everything else — warnings,
progress, logs — goes to stderr. numpy, pyarrow and the engine are imported inside the command so
the CLI starts fast and never loads a service framework.
"""

from __future__ import annotations

import gc
import importlib.abc
import json
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.commands.failures import OptionError

if TYPE_CHECKING:
    from services.strategy.dsl.ast import Symphony
    from services.strategy.signals import StrategyDecision, StrategyFailure
    from shared.allocation_config import AllocationConfig
    from shared.marketdata.bars import BarSnapshot
    from shared.settings import Settings

CONSOLIDATED = "consolidated"


class _PandasBlocker(importlib.abc.MetaPathFinder):
    """Make `import pandas` fail as if pandas were not installed.

    pyarrow imports pandas (when installed) on its first array conversion, only to recognise
    DataFrames; evaluate never handles one, and the import would be about half of the command's
    start-up time.
    """

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        if fullname == "pandas" or fullname.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


@contextmanager
def _without_pandas() -> Iterator[None]:
    if "pandas" in sys.modules:
        yield
        return
    blocker = _PandasBlocker()
    sys.meta_path.insert(0, blocker)
    try:
        yield
    finally:
        sys.meta_path.remove(blocker)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _read_dates(as_of: Sequence[str], dates_file: Path | None) -> list[date]:
    """The --as-of values, then the dates file's lines (blank lines skipped), in order."""
    dates: list[date] = []
    for value in as_of:
        try:
            dates.append(date.fromisoformat(value))
        except ValueError:
            raise OptionError(f"--as-of {value!r}: expected a date YYYY-MM-DD") from None
    if dates_file is not None:
        try:
            lines = dates_file.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise OptionError(f"--dates-file {dates_file}: {error.strerror or error}") from None
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if not text:
                continue
            try:
                dates.append(date.fromisoformat(text))
            except ValueError:
                raise OptionError(
                    f"{dates_file}:{number}: {text!r} is not a date; write one YYYY-MM-DD per line"
                ) from None
    if not dates:
        raise OptionError("no as-of date: give --as-of YYYY-MM-DD or --dates-file FILE")
    return dates


def _strategy_paths(strategies: Sequence[Path], config: AllocationConfig | None) -> list[Path]:
    """The files to evaluate, each once: the arguments, then the config's weighted files."""
    paths: list[Path] = []
    seen: set[Path] = set()
    configured = [] if config is None else [config.file_path(f) for f in config.active_files]
    for path in [*strategies, *configured]:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            paths.append(path)
    return paths


def _load_strategy(path: Path, cache_dir: Path) -> Symphony | StrategyFailure:
    """The parsed file, or the failure to report for every date."""
    from services.strategy.dsl.errors import DslError
    from services.strategy.parse_cache import load_symphony
    from services.strategy.signals import StrategyFailure

    try:
        symphony = load_symphony(path, cache_dir)
    except DslError as error:
        return StrategyFailure(path.name, "load", str(error))
    except OSError as error:
        message = f"{path}: cannot read the strategy file ({error.strerror or error})"
        return StrategyFailure(path.name, "load", message)
    for warning in symphony.warnings:
        _stderr(f"warning: {warning}")
    return symphony


def _line(
    strategy: str,
    day: date,
    weights: Mapping[str, float] | None,
    error: str | None,
    trace: list[dict[str, Any]] | None = None,
) -> str:
    record: dict[str, Any] = {"strategy": strategy, "as_of": day.isoformat()}
    if error is None:
        record["weights"] = weights
        if trace is not None:
            record["trace"] = trace
    else:
        record["error"] = error
    return json.dumps(record)


def _outcome_line(outcome: StrategyDecision | StrategyFailure, day: date, with_trace: bool) -> str:
    from services.strategy.signals import StrategyFailure

    if isinstance(outcome, StrategyFailure):
        return _line(outcome.strategy, day, None, outcome.message)
    trace = outcome.trace.full() if with_trace and outcome.trace is not None else None
    return _line(outcome.strategy, day, outcome.allocation, None, trace)


def evaluate(
    bars: Annotated[
        Path,
        typer.Option(
            "--bars",
            help="Daily bars: a file (Parquet, .csv or .csv.gz: "
            "date,symbol,open,high,low,close,volume) or a bar store (a data directory or its "
            "bars/); its symbols are the asset universe.",
            show_default=False,
        ),
    ],
    strategies: Annotated[
        list[Path] | None,
        typer.Argument(help="Strategy files (.clj); optional with --config.", show_default=False),
    ] = None,
    as_of: Annotated[
        list[str] | None,
        typer.Option("--as-of", help="As-of date YYYY-MM-DD; repeat for several."),
    ] = None,
    dates_file: Annotated[
        Path | None,
        typer.Option("--dates-file", help="File with one as-of date YYYY-MM-DD per line."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Allocation JSON: evaluate its files and add one line per date with "
            '"strategy": "consolidated" (the allocation-weighted portfolio).',
        ),
    ] = None,
    trace: Annotated[
        bool,
        typer.Option(
            "--trace",
            help='Add the full decision trace of each evaluation as a "trace" key (a list of '
            "if/filter/inverse-volatility/indicator entries) on its JSON line.",
        ),
    ] = False,
    output_format: Annotated[
        str, typer.Option("--format", help="Output format; only jsonl.")
    ] = "jsonl",
) -> None:
    """Evaluate strategy files at as-of dates and print one JSON line per (strategy, date).

    A line is {"strategy": FILE, "as_of": DATE, "weights": {SYMBOL: weight}} (weights sum to 1,
    zero weights left out) or {"strategy", "as_of", "error": MESSAGE}; the exit code is 1 when
    any line holds an error. Only JSON goes to stdout; warnings and progress go to stderr.
    """
    started = time.perf_counter()
    if output_format != "jsonl":
        raise OptionError(f"--format {output_format!r}: only 'jsonl' is supported")
    dates = _read_dates(as_of or [], dates_file)
    if not strategies and config is None:
        raise OptionError("no strategy: give STRATEGY.clj files or --config allocation.json")
    with _without_pandas():
        inputs = _load_inputs(strategies or [], bars, config)
    _refuse_stale_bars(inputs.snapshot, bars, dates)
    with _without_pandas():
        evaluated_files, failed = _evaluate_files(inputs, dates, trace)
    _stderr(
        f"evaluated {evaluated_files} file(s) at {len(dates)} date(s) in "
        f"{time.perf_counter() - started:.2f} s"
    )
    if failed:
        raise typer.Exit(code=1)


@dataclass(frozen=True)
class _Inputs:
    settings: Settings
    strategies: Sequence[Path]
    config: AllocationConfig | None
    snapshot: BarSnapshot


def _load_inputs(strategies: Sequence[Path], bars: Path, config: Path | None) -> _Inputs:
    """The settings, the allocation config and the bars, or a usage error naming the problem."""
    from shared.logs import configure_logging
    from shared.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as error:
        raise OptionError(str(error)) from None
    configure_logging(settings.log_level)

    from shared.allocation_config import AllocationConfigError, load_allocation_config
    from shared.marketdata.bar_source import load_bar_source
    from shared.marketdata.bars import BarDataError

    allocation_config = None
    if config is not None:
        try:
            allocation_config = load_allocation_config(config)
        except AllocationConfigError as error:
            raise OptionError(str(error)) from None
        for warning in allocation_config.warnings:
            _stderr(f"warning: {warning}")
    try:
        snapshot = load_bar_source(bars).bars
    except BarDataError as error:
        raise OptionError(str(error)) from None
    return _Inputs(settings, strategies, allocation_config, snapshot)


def _refuse_stale_bars(snapshot: BarSnapshot, bars: Path, dates: Sequence[date]) -> None:
    """An as-of after the last bar by one session or more is a usage error: a signal on stale
    data must never look fresh (docs/strategy-language.md, The evaluate command). A weekend or
    holiday after the last bar is not a gap."""
    from shared.market_clock import sessions_after

    if snapshot.sessions.size == 0:
        return
    last_bar = snapshot.sessions[-1].astype(date)
    for day in dates:
        if day <= last_bar:
            continue
        staleness = sessions_after(last_bar, day)
        if staleness.sessions or staleness.beyond_calendar:
            raise OptionError(
                f"--as-of {day.isoformat()} is {staleness.describe()} after the last bar "
                f"({last_bar.isoformat()}) of {bars}; evaluate on or before "
                f"{last_bar.isoformat()}, "
                "or add the missing bars (`alchemiser data fetch` or `alchemiser data import "
                "FILE.csv`)"
            )


def _evaluate_files(inputs: _Inputs, dates: list[date], trace: bool) -> tuple[int, bool]:
    """Print the lines of every (file, date) and the consolidated lines; return how many files
    were evaluated and whether any line holds an error."""
    from services.strategy.signals import StrategyFailure, decide_dates

    settings, allocation_config, snapshot = inputs.settings, inputs.config, inputs.snapshot
    strategies = inputs.strategies
    # Keyed by the config's name for a configured file (its consolidated error names it), by the
    # resolved path otherwise: two arguments with one base name stay two files.
    configured = (
        {}
        if allocation_config is None
        else {
            allocation_config.file_path(name).resolve(): name
            for name in allocation_config.active_files
        }
    )
    files: dict[str, Symphony | StrategyFailure] = {}
    for path in _strategy_paths(strategies, allocation_config):
        key = configured.get(path.resolve(), str(path.resolve()))
        files[key] = _load_strategy(path, settings.resolved_cache_dir)
    file_weights = {} if allocation_config is None else allocation_config.file_weights
    # The parsed trees (a few hundred thousand objects) and the bars live until the process
    # ends: taking them out of the collector's reach keeps every full collection during the
    # evaluation from walking them again.
    gc.freeze()
    decisions = decide_dates(files, file_weights, snapshot, dates, trace=trace)

    out = sys.stdout
    failed = False
    for key in files:
        for decision in decisions:
            outcome = decision.strategies[key]
            failed = failed or isinstance(outcome, StrategyFailure)
            out.write(_outcome_line(outcome, decision.as_of, trace) + "\n")
    if allocation_config is not None:
        for decision in decisions:
            failure = decision.failure
            if failure is None:
                line = _line(CONSOLIDATED, decision.as_of, decision.target_weights, None)
            else:
                message = f"{decision.failed} failed: {failure.message}"
                line = _line(CONSOLIDATED, decision.as_of, None, message)
            out.write(line + "\n")
    out.flush()
    return len(files), failed
