"""What a backtest reads: the strategy files with their weights, and the bars.

Strategy files are given on the command line (weighted equally), by an allocation config (its
weights), or neither, which is the installation's configured set, as the strategy service loads
it. Bars are a bars file as `alchemiser evaluate` reads it, a bar-store directory, or without
`--bars` the installation's bar store; the store's manifest (or its SYNTHETIC-DATA note beside a
bars file) says whether they are the generated sample rather than market history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from services.backtest.errors import BacktestError
from services.strategy.dsl.ast import Symphony
from services.strategy.dsl.errors import DslError
from services.strategy.parse_cache import load_symphony
from services.strategy.signals import SignalGenerationError, files_hash, load_strategy_set
from services.strategy.symphonies import configured_strategy_config
from shared.marketdata.bar_source import BarSource, load_bar_source, load_store
from shared.marketdata.bars import BarDataError
from shared.marketdata.barstore import BarStore
from shared.settings import Settings


@dataclass(frozen=True)
class Strategies:
    symphonies: Mapping[str, Symphony]
    """By file base name, in the order given (the config's order)."""
    file_weights: Mapping[str, float]
    """Normalised allocation weights by the same names."""
    config: Path | None
    files_hash: str
    warnings: tuple[str, ...]

    @property
    def tickers(self) -> frozenset[str]:
        return frozenset().union(*(symphony.tickers for symphony in self.symphonies.values()))

    def file_hashes(self) -> dict[str, str]:
        return {name: f"sha256:{s.source_sha256}" for name, s in self.symphonies.items()}


def load_strategies(files: Sequence[Path], config: Path | None, settings: Settings) -> Strategies:
    """The files weighted equally, or the config's weights, or the installation's config."""
    cache_dir = settings.resolved_cache_dir
    if files and config is not None:
        raise BacktestError(
            "give strategy files or --config, not both: --config names its own files"
        )
    if not files:
        return _configured(config or configured_strategy_config(settings), cache_dir)
    symphonies: dict[str, Symphony] = {}
    for path in files:
        if path.name in symphonies:
            raise BacktestError(
                f"{path}: another file is also named {path.name}; results are keyed by base "
                "name, so rename one"
            )
        symphonies[path.name] = _parsed(path, cache_dir)
    return Strategies(
        symphonies=symphonies,
        file_weights={name: 1 / len(symphonies) for name in symphonies},
        config=None,
        files_hash=files_hash(symphonies),
        warnings=tuple(w for s in symphonies.values() for w in s.warnings),
    )


def _configured(path: Path, cache_dir: Path) -> Strategies:
    try:
        strategy_set = load_strategy_set(path, cache_dir)
    except SignalGenerationError as error:
        raise BacktestError(str(error)) from None
    config = strategy_set.config
    return Strategies(
        symphonies=strategy_set.symphonies,
        file_weights={name: config.file_weights[name] for name in config.active_files},
        config=path,
        files_hash=strategy_set.files_hash,
        warnings=(
            *config.warnings,
            *(w for s in strategy_set.symphonies.values() for w in s.warnings),
        ),
    )


def _parsed(path: Path, cache_dir: Path) -> Symphony:
    try:
        return load_symphony(path, cache_dir)
    except DslError as error:
        raise BacktestError(f"{error}; fix the strategy file") from None
    except OSError as error:
        raise BacktestError(f"{path}: cannot read the strategy file ({error.strerror})") from None


def load_market(bars: Path | None, settings: Settings) -> BarSource:
    """A bars file, a bar-store directory (a data directory or its `bars/`), or the
    installation's bar store."""
    try:
        if bars is not None:
            return load_bar_source(bars)
        store = BarStore(settings.data_dir)
        if not store.exists():
            raise BacktestError(
                f"{store.path} (ALCHEMISER_DATA_DIR): no bar store; give --bars FILE or create "
                "a store with `alchemiser data sample` or `alchemiser data import FILE.csv`"
            )
        return load_store(store)
    except BarDataError as error:
        raise BacktestError(str(error)) from None
