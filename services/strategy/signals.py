"""From strategy files and bars to target weights: the one decision that the strategy service,
`alchemiser evaluate`, replay and the backtest all make.

`decide_dates` evaluates every file at every requested as-of date in one pass per file (the
evaluator works along the date axis, so 250 dates cost a few times one date, not 250 times),
with one indicator cache shared by the files, and combines each date by the files' allocation
weights. A file that could not be loaded, or that names a ticker outside the bars' universe,
fails at every date; an evaluation failure fails only the dates that depend on it. Any failing
weighted file leaves its dates without a consolidated target: there is no partial portfolio and
no silent re-weighting.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np

from services.strategy.dsl.ast import Symphony
from services.strategy.dsl.compiler import check_universe
from services.strategy.dsl.errors import DslError, DslEvaluationError
from services.strategy.dsl.evaluator import evaluate_symphony
from services.strategy.dsl.market_series import MarketSeries
from services.strategy.dsl.trace import DecisionTrace
from shared.allocation_config import (
    AllocationConfig,
    AllocationConfigError,
    consolidate,
    load_allocation_config,
)
from shared.marketdata.bars import BarSnapshot

FailureStage = Literal["load", "check", "evaluate"]
"""Where a file failed: reading or parsing it, the universe check against the bars, or evaluating
it at a date. The first two happen before any data is read, so they take precedence when several
weighted files fail at one date."""


class SignalGenerationError(Exception):
    """Why no signal could be made; the message names the file (or symbols) and the fix."""


@dataclass(frozen=True)
class StrategySet:
    config: AllocationConfig
    symphonies: Mapping[str, Symphony]
    files_hash: str
    """SHA-256 over each active file's name and content hash: which strategy code decided."""

    @property
    def tickers(self) -> frozenset[str]:
        return frozenset().union(*(symphony.tickers for symphony in self.symphonies.values()))


@dataclass(frozen=True)
class StrategyDecision:
    """One file's allocation at one as-of date."""

    strategy: str
    """The file's base name."""
    weight: float
    """The file's allocation weight `a_f` (0 for a file that is not part of the consolidation)."""
    allocation: Mapping[str, float]
    trace: DecisionTrace | None
    """The full decision trace; None when the caller did not ask for traces."""


@dataclass(frozen=True)
class StrategyFailure:
    """Why one file has no allocation at one as-of date; `message` names the place and the fix."""

    strategy: str
    stage: FailureStage
    message: str
    symbol: str | None = None
    """The asset whose data failed the evaluation (a short history, a missing close), if one
    did."""


@dataclass(frozen=True)
class DatedDecision:
    """Every file and the consolidated target at one as-of date."""

    as_of: date
    strategies: Mapping[str, StrategyDecision | StrategyFailure]
    """Keyed and ordered as the files were given."""
    target_weights: Mapping[str, float] | None
    """`W = Σ a_f · A_f` over the weighted files; None when one of them failed or none is
    weighted."""
    failed: str | None
    """The key of the weighted file whose failure leaves this date without a target."""

    @property
    def failure(self) -> StrategyFailure | None:
        outcome = self.strategies[self.failed] if self.failed is not None else None
        return outcome if isinstance(outcome, StrategyFailure) else None


@dataclass(frozen=True)
class SignalDecision:
    """A decision a workflow can trade: every configured file decided at `as_of`."""

    as_of: date
    strategies: tuple[StrategyDecision, ...]
    target_weights: Mapping[str, float]


def load_strategy_set(config_path: Path, cache_dir: Path | None) -> StrategySet:
    """Parse (through the disk cache) and statically check every file the config activates."""
    from services.strategy.parse_cache import load_symphony

    try:
        config = load_allocation_config(config_path)
    except AllocationConfigError as error:
        raise SignalGenerationError(str(error)) from None
    symphonies: dict[str, Symphony] = {}
    for name in config.active_files:
        try:
            symphony = load_symphony(config.file_path(name), cache_dir)
        except DslError as error:
            raise SignalGenerationError(f"{error}; fix the strategy file") from None
        except OSError as error:
            raise SignalGenerationError(
                f"{config.file_path(name)}: cannot read it ({error.strerror}); "
                f"check the files listed in {config.path}"
            ) from None
        symphonies[name] = symphony
    return StrategySet(config=config, symphonies=symphonies, files_hash=files_hash(symphonies))


def files_hash(symphonies: Mapping[str, Symphony]) -> str:
    """SHA-256 over each file's name and content hash, in the given order: which strategy code
    decided."""
    digest = hashlib.sha256()
    for name, symphony in symphonies.items():
        digest.update(f"{name}\0{symphony.source_sha256}\n".encode())
    return digest.hexdigest()


def decide_dates(
    files: Mapping[str, Symphony | StrategyFailure],
    file_weights: Mapping[str, float],
    bars: BarSnapshot,
    dates: Sequence[date],
    *,
    trace: bool = True,
    market: MarketSeries | None = None,
) -> list[DatedDecision]:
    """Every file's allocation (or failure) and the consolidated target at each of `dates`, in
    the order given.

    `files` maps a caller's key to a parsed file, or to the failure that kept it from loading.
    `file_weights` are the normalised allocation weights by the same keys (as in the config; a
    weight of 0 leaves the file out of the consolidation); every positively weighted key must be
    in `files`. `market` (a `MarketSeries` of `bars`) lets several calls over the same bars
    share their indicator series. Pure: reads only `bars`.
    """
    weighted = [key for key, weight in file_weights.items() if weight > 0.0]
    missing = [key for key in weighted if key not in files]
    if missing:
        raise ValueError(f"weighted files without a strategy: {', '.join(missing)}")
    market = market if market is not None else MarketSeries(bars)
    columns: dict[str, list[StrategyDecision | StrategyFailure]] = {}
    for key, loaded in files.items():
        weight = file_weights.get(key, 0.0)
        if isinstance(loaded, StrategyFailure):
            columns[key] = [loaded] * len(dates)
            continue
        try:
            check_universe(loaded, bars.symbols)
        except DslError as error:
            columns[key] = [StrategyFailure(loaded.file_name, "check", str(error))] * len(dates)
            continue
        columns[key] = [
            StrategyFailure(
                evaluation.strategy,
                "evaluate",
                str(evaluation.error),
                evaluation.error.symbol
                if isinstance(evaluation.error, DslEvaluationError)
                else None,
            )
            if evaluation.weights is None
            else StrategyDecision(evaluation.strategy, weight, evaluation.weights, evaluation.trace)
            for evaluation in evaluate_symphony(loaded, bars, dates, trace=trace, market=market)
        ]
    decisions: list[DatedDecision] = []
    for row, day in enumerate(dates):
        outcomes = {key: column[row] for key, column in columns.items()}
        failed = _first_failure(outcomes, weighted)
        target = None
        if failed is None and weighted:
            allocations = {
                key: outcome.allocation
                for key in weighted
                if isinstance(outcome := outcomes[key], StrategyDecision)
            }
            target = consolidate(file_weights, allocations)
        decisions.append(DatedDecision(day, outcomes, target, failed))
    return decisions


_STAGE_ORDER: Mapping[FailureStage, int] = {"load": 0, "check": 1, "evaluate": 2}


def _first_failure(
    outcomes: Mapping[str, StrategyDecision | StrategyFailure], weighted: Sequence[str]
) -> str | None:
    """The weighted file that fails the date: the earliest stage first, then the config order."""
    failures = [
        (_STAGE_ORDER[outcome.stage], position, key)
        for position, key in enumerate(weighted)
        if isinstance(outcome := outcomes[key], StrategyFailure)
    ]
    return min(failures)[2] if failures else None


def decide(strategy_set: StrategySet, bars: BarSnapshot, as_of: date) -> SignalDecision:
    """The configured files at `as_of` as one tradable decision; any failure raises."""
    [dated] = decide_dates(strategy_set.symphonies, strategy_set.config.file_weights, bars, [as_of])
    failure = dated.failure
    if failure is not None:
        hint = ""
        if failure.stage == "check":
            hint = "; add bars for it (`alchemiser data import`) or change the strategy"
        raise SignalGenerationError(failure.message + hint)
    if dated.target_weights is None:
        raise SignalGenerationError(
            f"{strategy_set.config.path}: no strategy file has a positive weight"
        )
    # The event names each file as the config lists it.
    decisions = [
        replace(outcome, strategy=name)
        for name, outcome in dated.strategies.items()
        if isinstance(outcome, StrategyDecision)
    ]
    return SignalDecision(as_of, tuple(decisions), dated.target_weights)


def stale_symbols(bars: BarSnapshot, symbols: frozenset[str], last_completed: date) -> list[str]:
    """Symbols whose latest bar is older than the last completed session (or that have none),
    each with the date of its last bar — a signal on stale data is never emitted."""
    stale: list[str] = []
    cutoff = np.datetime64(last_completed, "D")
    for symbol in sorted(symbols):
        closes = bars.closes.get(symbol)
        present = bars.sessions[~np.isnan(closes)] if closes is not None else bars.sessions[:0]
        if present.size == 0:
            stale.append(f"{symbol} (no bars)")
        elif present[-1] < cutoff:
            stale.append(f"{symbol} (last bar {present[-1]})")
    return stale


def decimal_text(value: float) -> str:
    """The shortest string that round-trips the float: how weights leave the evaluator."""
    if not math.isfinite(value):
        raise ValueError(f"weight {value!r} is not finite")
    return repr(float(value))
