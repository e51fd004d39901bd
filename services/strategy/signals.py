"""From strategy files and bars to the consolidated target: the pure half of signal generation.

Every configured file is parsed and checked against the bars' universe before any evaluation;
then all files are evaluated at one as-of date against one snapshot (sharing the indicator
cache), and combined by their allocation weights. Any failing file fails the whole signal —
there is no partial portfolio and no silent re-weighting (dsl.md §5 rule 4).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from services.strategy.allocation_config import (
    AllocationConfig,
    AllocationConfigError,
    consolidate,
    load_allocation_config,
)
from services.strategy.dsl.ast import Symphony
from services.strategy.dsl.compiler import check_universe
from services.strategy.dsl.errors import DslError
from services.strategy.dsl.evaluator import evaluate_symphony
from services.strategy.dsl.market_series import MarketSeries
from shared.marketdata.bars import BarSnapshot


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
    strategy: str
    weight: float
    allocation: Mapping[str, float]
    trace: Mapping[str, Any]
    """The compact decision path (`DecisionTrace.compact()`): `path` and `truncated`."""


@dataclass(frozen=True)
class SignalDecision:
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
    digest = hashlib.sha256()
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
        digest.update(f"{name}\0{symphony.source_sha256}\n".encode())
    return StrategySet(config=config, symphonies=symphonies, files_hash=digest.hexdigest())


def decide(strategy_set: StrategySet, bars: BarSnapshot, as_of: date) -> SignalDecision:
    """Evaluate every active file at `as_of` and consolidate; raise on the first failure."""
    for symphony in strategy_set.symphonies.values():
        try:
            check_universe(symphony, bars.symbols)
        except DslError as error:
            raise SignalGenerationError(
                f"{error}; add bars for it (`alchemiser data import`) or change the strategy"
            ) from None
    market = MarketSeries(bars)
    decisions: list[StrategyDecision] = []
    for name, symphony in strategy_set.symphonies.items():
        [evaluation] = evaluate_symphony(symphony, bars, [as_of], market=market)
        if evaluation.error is not None or evaluation.weights is None:
            raise SignalGenerationError(str(evaluation.error))
        trace = evaluation.trace.compact() if evaluation.trace is not None else {"path": []}
        decisions.append(
            StrategyDecision(
                strategy=name,
                weight=strategy_set.config.file_weights[name],
                allocation=evaluation.weights,
                trace=trace,
            )
        )
    target = consolidate(
        strategy_set.config.file_weights, {d.strategy: d.allocation for d in decisions}
    )
    return SignalDecision(as_of=as_of, strategies=tuple(decisions), target_weights=target)


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
