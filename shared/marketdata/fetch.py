"""`alchemiser data fetch`: fill the bar store from a broker's historical daily bars (Alpaca),
incrementally, without ever mixing two adjustments of one symbol's history.

Adjusted bars change in the past when a split or dividend happens, so each incremental fetch
re-reads an overlap of recent sessions: when a stored close there differs from the fetched one,
that symbol's whole history is fetched again and replaces what was stored. A synthetic store is
replaced, never merged (real and generated prices must not mix).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pyarrow as pa

from shared.broker.models import DailyBar
from shared.marketdata.bars_file import BAR_COLUMNS
from shared.marketdata.barstore import BarStore

OVERLAP_DAYS = 10
"""Calendar days re-fetched before a symbol's last stored bar to detect re-adjusted history."""
DEFAULT_HISTORY_DAYS = 8 * 365
SYMBOLS_PER_REQUEST = 50
CLOSE_TOLERANCE = 1e-6


class DailyBarSource(Protocol):
    async def get_daily_bars(
        self, symbols: Sequence[str], start: dt.date, end: dt.date
    ) -> list[DailyBar]: ...


@dataclass(frozen=True)
class FetchResult:
    symbols: int
    rows_fetched: int
    readjusted: tuple[str, ...]
    """Symbols whose past bars changed (a split or dividend) and were fetched in full again."""


async def fetch_into_store(
    store: BarStore,
    source: DailyBarSource,
    symbols: Collection[str],
    end: dt.date,
    *,
    start: dt.date | None = None,
    source_name: str,
    progress: Callable[[str], None] = lambda line: None,
) -> FetchResult:
    first_day = start or end - dt.timedelta(days=DEFAULT_HISTORY_DAYS)
    stored = _stored_rows(store)
    last_stored = _last_dates(stored)
    wanted = sorted(set(symbols))
    fresh = [s for s in wanted if s not in last_stored]
    known = [s for s in wanted if s in last_stored]
    fetched: list[DailyBar] = []
    if fresh:
        fetched += await _fetch(source, fresh, first_day, end, progress)
    recent: list[DailyBar] = []
    if known:
        since = min(last_stored[s] for s in known) - dt.timedelta(days=OVERLAP_DAYS)
        recent = await _fetch(source, known, since, end, progress)
    readjusted = _readjusted(stored, recent)
    if readjusted:
        progress(f"re-adjusted history, fetching again in full: {', '.join(readjusted)}")
        fetched += await _fetch(source, readjusted, first_day, end, progress)
    fetched += [bar for bar in recent if bar.symbol not in set(readjusted)]
    replaced = set(fresh) | set(readjusted)
    kept = [row for row in stored if row["symbol"] not in replaced]
    merged = {(row["date"], row["symbol"]): row for row in kept}
    for bar in fetched:
        merged[(bar.date, bar.symbol)] = _row(bar)
    if not merged:
        raise ValueError(
            f"no bars for {', '.join(wanted)} between {first_day} and {end}; "
            "check the symbols and the data feed"
        )
    columns = {name: [row[name] for row in merged.values()] for name in BAR_COLUMNS}
    store.write(pa.table(columns), synthetic=False, source=source_name)
    return FetchResult(len(wanted), len(fetched), tuple(readjusted))


async def _fetch(
    source: DailyBarSource,
    symbols: Sequence[str],
    start: dt.date,
    end: dt.date,
    progress: Callable[[str], None],
) -> list[DailyBar]:
    bars: list[DailyBar] = []
    for offset in range(0, len(symbols), SYMBOLS_PER_REQUEST):
        chunk = symbols[offset : offset + SYMBOLS_PER_REQUEST]
        progress(
            f"fetching {len(chunk)} symbols {start}..{end} ({offset + len(chunk)}/{len(symbols)})"
        )
        bars += await source.get_daily_bars(chunk, start, end)
    return bars


def _stored_rows(store: BarStore) -> list[dict[str, object]]:
    if not store.exists() or store.manifest().synthetic:
        return []
    rows: list[dict[str, object]] = store.table().select(list(BAR_COLUMNS)).to_pylist()
    return rows


def _last_dates(rows: list[dict[str, object]]) -> dict[str, dt.date]:
    last: dict[str, dt.date] = {}
    for row in rows:
        symbol, day = str(row["symbol"]), row["date"]
        assert isinstance(day, dt.date)
        if symbol not in last or day > last[symbol]:
            last[symbol] = day
    return last


def _readjusted(stored: list[dict[str, object]], recent: list[DailyBar]) -> list[str]:
    closes = {(row["date"], row["symbol"]): float(str(row["close"])) for row in stored}
    changed = set()
    for bar in recent:
        before = closes.get((bar.date, bar.symbol))
        if before is not None and not math.isclose(
            before, float(bar.close), rel_tol=CLOSE_TOLERANCE
        ):
            changed.add(bar.symbol)
    return sorted(changed)


def _row(bar: DailyBar) -> dict[str, object]:
    return {
        "date": bar.date,
        "symbol": bar.symbol,
        "open": float(bar.open),
        "high": float(bar.high),
        "low": float(bar.low),
        "close": float(bar.close),
        "volume": int(np.int64(bar.volume)),
    }
