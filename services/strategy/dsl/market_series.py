"""Indicator values of one evaluation run, each (ticker, indicator, window) computed once.

The seeded indicators (RSI, EMA) depend on where the series starts, so they are computed over
the ticker's whole history; the others only over the stretch that the requested sessions can
see, which gives the same values for far less work when few dates are asked for. Values are then
read at any number of sessions by indexing. A ticker's usable history runs from its first bar up
to (not including) its first missing or non-positive close: sessions after such a defect fail
with the date of the defect, sessions before the first bar or too close to it fail as
insufficient history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from services.strategy.dsl.allocation import NO_FAILURE, FailureCodes, SessionIndex
from services.strategy.dsl.ast import Span
from services.strategy.dsl.failures import Failure, FailureTable
from services.strategy.dsl.indicators import INDICATORS, IndicatorName, indicator_series, needs
from shared.marketdata.bars import BarSnapshot

Series = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TickerHistory:
    """Closes aligned to the snapshot's sessions; usable from `first` up to `end` (exclusive)."""

    closes: Series
    first: int
    end: int


@dataclass(frozen=True, slots=True)
class _Computed:
    """An indicator computed over sessions `start` … `stop - 1` (NaN elsewhere)."""

    start: int
    stop: int
    values: Series


class MarketSeries:
    """Read-only view of a bar snapshot with per-run indicator caching."""

    def __init__(self, bars: BarSnapshot) -> None:
        self.bars = bars
        self.session_count = int(bars.sessions.size)
        self._histories: dict[str, TickerHistory | None] = {}
        self._series: dict[tuple[str, str, int | None], _Computed] = {}

    def session_date(self, session: int) -> date:
        day: date = self.bars.sessions[session].astype(object)
        return day

    def history(self, ticker: str) -> TickerHistory | None:
        if ticker not in self._histories:
            self._histories[ticker] = self._load_history(ticker)
        return self._histories[ticker]

    def _load_history(self, ticker: str) -> TickerHistory | None:
        closes = self.bars.closes.get(ticker)
        if closes is None:
            return None
        present = np.flatnonzero(~np.isnan(closes))
        if present.size == 0:
            return TickerHistory(closes=closes, first=self.session_count, end=self.session_count)
        first = int(present[0])
        tail = closes[first:]
        defects = np.flatnonzero(~(np.isfinite(tail) & (tail > 0.0)))
        end = first + int(defects[0]) if defects.size else self.session_count
        return TickerHistory(closes=closes, first=first, end=end)

    def _values(
        self, ticker: str, indicator: IndicatorName, window: int | None, sessions: SessionIndex
    ) -> Series:
        """The indicator at `sessions` (ascending), NaN where it cannot be computed.

        RSI and EMA are computed once over the whole history (they depend on where the series
        starts); the windowed indicators only over the stretch the requested sessions can see,
        which gives the same values. Each (ticker, indicator, window) keeps one computed stretch,
        widened when a later request reaches outside it.
        """
        history = self.history(ticker)
        if history is None or sessions.size == 0:
            return np.full(sessions.size, np.nan)
        if INDICATORS[indicator].seeded:
            start, stop = history.first, history.end
        else:
            start = max(history.first, int(sessions[0]) - needs(indicator, window) + 1)
            stop = min(int(sessions[-1]) + 1, history.end)
        if stop <= start:
            return np.full(sessions.size, np.nan)
        key = (ticker, indicator, window)
        computed = self._series.get(key)
        if computed is None or start < computed.start or stop > computed.stop:
            if computed is not None:
                start, stop = min(start, computed.start), max(stop, computed.stop)
            values = np.full(self.session_count, np.nan, dtype=np.float64)
            values[start:stop] = indicator_series(indicator, history.closes[start:stop], window)
            computed = _Computed(start, stop, values)
            self._series[key] = computed
        return computed.values[sessions]

    def read(
        self,
        ticker: str,
        indicator: IndicatorName,
        window: int | None,
        sessions: SessionIndex,
        *,
        span: Span,
        failures: FailureTable,
        context: str | None = None,
    ) -> tuple[Series, FailureCodes]:
        """Indicator values at `sessions`, with a failure code where a value is unusable."""
        values = self._values(ticker, indicator, window, sessions)
        codes = np.full(sessions.size, NO_FAILURE, dtype=np.int64)
        missing = np.isnan(values)
        if not missing.any():
            return values, codes
        call = INDICATORS[indicator].call_text(ticker, window)
        subject = call if context is None else f"{context}: {call}"
        history = self.history(ticker)
        if history is None:
            code = failures.add(
                Failure(
                    span,
                    ticker,
                    lambda _s: (
                        f"{subject}: {ticker} has no bars in the bar data; "
                        "add its history or remove it from the strategy"
                    ),
                )
            )
            codes[missing] = code
            return values, codes
        defect = missing & (sessions >= history.end)
        if defect.any():
            defect_day = self.session_date(history.end)
            codes[defect] = failures.add(
                Failure(
                    span,
                    ticker,
                    lambda _s: (
                        f"{subject}: {ticker} has no valid close on {defect_day} "
                        "(missing or not positive); repair the bar data"
                    ),
                )
            )
        short = missing & ~defect
        if short.any():
            required = needs(indicator, window)
            first = history.first

            def insufficient(session: int) -> str:
                available = max(0, session - first + 1)
                if available >= required:
                    return f"{subject}: value is NaN as of {self.session_date(session)}"
                return (
                    f"{subject}: insufficient history: needs {required} closes, {ticker} has "
                    f"{available} up to {self.session_date(session)}; load older bars or "
                    "choose a later as-of date"
                )

            codes[short] = failures.add(Failure(span, ticker, insufficient))
        return values, codes

    def bars_used(
        self, ticker: str, indicator: IndicatorName, window: int | None, session: int
    ) -> int:
        """Closes an indicator value rests on (the whole history for RSI and EMA)."""
        if INDICATORS[indicator].seeded:
            history = self.history(ticker)
            return 0 if history is None else session - history.first + 1
        return needs(indicator, window)
