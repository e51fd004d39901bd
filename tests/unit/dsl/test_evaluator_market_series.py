"""The evaluator's indicator cache reads the same values however requests are ordered."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from services.strategy.dsl.ast import Span
from services.strategy.dsl.failures import FailureTable
from services.strategy.dsl.indicators import IndicatorName, indicator_series
from services.strategy.dsl.market_series import MarketSeries, Series
from shared.marketdata.bars import BarSnapshot

COUNT = 60
DAYS = [date(2024, 1, 1) + timedelta(days=i) for i in range(COUNT)]
CLOSES = list(100.0 * np.exp(np.cumsum(np.random.default_rng(7).normal(0.0, 0.02, COUNT))))
LATE = [float("nan")] * 5 + CLOSES[5:]
BARS = BarSnapshot.from_closes(DAYS, {"X": CLOSES, "LATE": LATE})
SPAN = Span(1, 1)
INDICATORS: list[tuple[IndicatorName, int | None]] = [
    ("current-price", None),
    ("moving-average-price", 5),
    ("exponential-moving-average-price", 4),
    ("rsi", 3),
    ("cumulative-return", 4),
    ("moving-average-return", 6),
    ("stdev-return", 5),
    ("max-drawdown", 7),
]


def read(
    market: MarketSeries, ticker: str, name: IndicatorName, window: int | None, at: list[int]
) -> Series:
    values, _ = market.read(
        ticker, name, window, np.array(at, dtype=np.int64), span=SPAN, failures=FailureTable()
    )
    return values


@pytest.mark.parametrize(("name", "window"), INDICATORS)
@pytest.mark.parametrize("ticker", ["X", "LATE"])
def test_reads_in_any_order_equal_the_whole_history_series(
    ticker: str, name: IndicatorName, window: int | None
) -> None:
    closes = np.array(BARS.closes[ticker])
    first = int(np.flatnonzero(~np.isnan(closes))[0])
    expected = np.full(COUNT, np.nan)
    expected[first:] = indicator_series(name, closes[first:], window)
    market = MarketSeries(BARS)
    late = read(market, ticker, name, window, [50, 55, 59])
    early = read(market, ticker, name, window, [3, 8, 12, 20])
    middle = read(market, ticker, name, window, [30, 31])
    np.testing.assert_array_equal(late, expected[[50, 55, 59]])
    np.testing.assert_array_equal(early, expected[[3, 8, 12, 20]])
    np.testing.assert_array_equal(middle, expected[[30, 31]])


def test_short_history_is_a_failure_naming_the_closes_available() -> None:
    market = MarketSeries(BARS)
    failures = FailureTable()
    values, codes = market.read(
        "LATE", "rsi", 3, np.array([6, 9], dtype=np.int64), span=SPAN, failures=failures
    )
    assert np.isnan(values[0]) and not np.isnan(values[1])
    assert codes[1] == -1
    error = failures.error(int(codes[0]), file="f.clj", session=6, as_of=DAYS[6])
    assert error.symbol == "LATE"
    assert "needs 4 closes, LATE has 2 up to 2024-01-07" in error.message
