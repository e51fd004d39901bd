"""The `MarketData` port: daily bars for a set of symbols up to a market date
(docs/architecture.md, Broker and market data).

Adapters: the local bar store (`shared.marketdata.barstore.BarStoreMarketData`) and a fixed
snapshot held in memory, for tests; both pass the contract suite in
`tests/unit/marketdata/test_market_data_port.py`.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Protocol

from shared.marketdata.bars import BarSnapshot


class MarketData(Protocol):
    async def daily_bars(self, symbols: Collection[str], end: date) -> BarSnapshot:
        """Closes of `symbols` on every session up to and including `end`.

        Sessions are the dates on which one of the symbols has a bar. A symbol with no bar on or
        before `end` is a `BarDataError` naming it, never an empty series.
        """
        ...


class InMemoryMarketData:
    """Serves one fixed snapshot."""

    def __init__(self, snapshot: BarSnapshot) -> None:
        self._snapshot = snapshot

    async def daily_bars(self, symbols: Collection[str], end: date) -> BarSnapshot:
        return self._snapshot.view(symbols, end)
