"""One contract for every `MarketData` adapter, subclassed once per adapter."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import pytest

from shared.marketdata.bars import BarDataError, BarSnapshot
from shared.marketdata.barstore import BarStore, BarStoreMarketData
from shared.marketdata.port import InMemoryMarketData, MarketData
from tests.unit.marketdata.tables import bars_table

DAYS = [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4), date(2024, 1, 5)]
CLOSES: dict[str, list[float | None]] = {
    "SPY": [100.0, 101.0, 102.0, 103.0],
    "TLT": [90.0, None, 92.0, 93.0],
    "NEW": [None, None, None, 10.0],
}


class MarketDataContract:
    def adapter(self, tmp_path: Path) -> MarketData:
        raise NotImplementedError

    async def test_returns_the_requested_symbols_up_to_the_end_date(self, tmp_path: Path) -> None:
        bars = await self.adapter(tmp_path).daily_bars({"SPY", "TLT"}, date(2024, 1, 4))
        assert bars.symbols == frozenset({"SPY", "TLT"})
        assert bars.sessions.tolist() == DAYS[:3]
        assert bars.closes["SPY"].tolist() == [100.0, 101.0, 102.0]
        assert math.isnan(bars.closes["TLT"][1])

    async def test_an_end_between_sessions_sees_the_last_session_before_it(
        self, tmp_path: Path
    ) -> None:
        bars = await self.adapter(tmp_path).daily_bars(["SPY"], date(2024, 1, 7))
        assert bars.last_session == date(2024, 1, 5)

    async def test_sessions_are_the_dates_where_a_requested_symbol_has_a_bar(
        self, tmp_path: Path
    ) -> None:
        bars = await self.adapter(tmp_path).daily_bars(["NEW"], date(2024, 1, 5))
        assert bars.sessions.tolist() == [date(2024, 1, 5)]

    async def test_a_symbol_without_bars_by_the_end_date_is_named(self, tmp_path: Path) -> None:
        with pytest.raises(BarDataError, match="no bars for NEW, XYZ on or before 2024-01-04"):
            await self.adapter(tmp_path).daily_bars(["SPY", "NEW", "XYZ"], date(2024, 1, 4))

    async def test_an_end_before_the_first_session_is_an_error(self, tmp_path: Path) -> None:
        with pytest.raises(BarDataError, match="no bars on or before 2023-12-29"):
            await self.adapter(tmp_path).daily_bars(["SPY"], date(2023, 12, 29))


class TestInMemoryMarketData(MarketDataContract):
    def adapter(self, tmp_path: Path) -> MarketData:
        closes = {s: [math.nan if c is None else c for c in v] for s, v in CLOSES.items()}
        return InMemoryMarketData(BarSnapshot.from_closes(DAYS, closes))


class TestBarStoreMarketData(MarketDataContract):
    def adapter(self, tmp_path: Path) -> MarketData:
        store = BarStore(tmp_path)
        store.write(bars_table(DAYS, CLOSES), synthetic=False, source="test")
        return BarStoreMarketData(store)


async def test_the_bar_store_adapter_sees_a_rewritten_store(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    store.write(bars_table(DAYS, CLOSES), synthetic=False, source="test")
    market_data = BarStoreMarketData(store)
    assert (await market_data.daily_bars(["SPY"], DAYS[-1])).closes["SPY"][-1] == 103.0
    store.write(bars_table(DAYS, {"SPY": [1.0, 2.0, 3.0, 4.0]}), synthetic=False, source="new")
    assert (await market_data.daily_bars(["SPY"], DAYS[-1])).closes["SPY"][-1] == 4.0
