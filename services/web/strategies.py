"""The Strategies page's data: the installation's allocation config and its files (the same
`ALCHEMISER_STRATEGY_CONFIG` the strategy service reads, else the bundled one), each file's
recorded allocations as a stacked chart, and its outline with the last decision path
(docs/web.md, Pages)."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from services.web.outline import Outline, read_outline
from shared.allocation_config import AllocationConfig, AllocationConfigError, load_allocation_config
from shared.settings import Settings

BUNDLED_CONFIG = Path(__file__).parents[1] / "strategy" / "symphonies" / "allocation.prod.json"
"""The strategy service's bundled production config, read as a file: the web service imports no
strategy code (docs/decisions.md)."""
HISTORY_RUNS = 200


def config_of(settings: Settings) -> AllocationConfig | str:
    """The validated config, or the one-line reason it cannot be read."""
    try:
        return load_allocation_config(settings.strategy_config or BUNDLED_CONFIG)
    except AllocationConfigError as error:
        return str(error)


def base_name(file_name: str) -> str:
    """What a signal calls a strategy file: its name without `.clj`."""
    return file_name.removesuffix(".clj")


def stacked(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Each symbol's weight across the runs, stacked: series k is the sum of the first k
    symbols' weights, so uPlot draws bands without a plugin."""
    symbols = sorted({symbol for signal in history for symbol in signal["allocation"]})
    totals = [Decimal(0)] * len(history)
    series = []
    for symbol in symbols:
        for index, signal in enumerate(history):
            totals[index] += Decimal(signal["allocation"].get(symbol, "0"))
        series.append({"label": symbol, "values": [float(total) for total in totals]})
    return {"x": [signal["at"].timestamp() for signal in history], "series": series}


def outline_of(config: AllocationConfig, file_name: str, trace: list[dict[str, Any]]) -> Outline:
    path = config.file_path(file_name)
    positions = frozenset(
        ":".join(step["span"].rsplit(":", 2)[-2:]) for step in trace if step.get("span")
    )
    return _outline(path, path.stat().st_mtime_ns, positions)


@lru_cache(maxsize=32)
def _outline(path: Path, mtime_ns: int, positions: frozenset[str]) -> Outline:
    """Read once per file version and path: the bundled files reach megabytes."""
    del mtime_ns  # part of the cache key only
    return read_outline(path, set(positions))
