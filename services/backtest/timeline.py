"""Which sessions a backtest runs over, and what every strategy decided on each.

The sessions are the dates on which the strategies' symbols have bars (as the strategy service
sees the bar store: only the symbols the files name). From its first bar on, each of those
symbols must have a bar on every session up to the end: a gap is an error naming the symbol and
the date, since live trading would have stopped there too. The end is the last session on or
before `--end`, clamped to the last bar. The first usable session is the first from which every
strategy decides on every session up to the end, with every symbol it names listed (live refuses
to decide before a symbol's first bar); under `previous-close` timing the session after it. An
earlier `--start` is an error naming the strategy, the indicator call and the asset whose history
is too short, with the asset's first date.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from services.backtest.errors import BacktestError
from services.backtest.inputs import Strategies
from services.backtest.result import Timing
from services.strategy.signals import DatedDecision, decide_dates
from shared.marketdata.bars import BarDataError, BarSnapshot

DECISION_LAG: dict[Timing, int] = {"close": 0, "previous-close": 1}
"""Sessions between the decision and the trade: `close` trades a session's decision at its own
close, `previous-close` the decision of the session before."""


@dataclass(frozen=True)
class Timeline:
    bars: BarSnapshot
    """The strategies' symbols only, on the sessions where any of them has a bar."""
    dates: tuple[date, ...]
    """Every session up to the end: the run's sessions and the history before them."""
    decisions: tuple[DatedDecision, ...]
    """What the files decided as of each of `dates`, each with its decision trace (walked when
    read)."""
    start: int
    end: int
    """The run's first and last session, indexes of `dates`."""
    first_decision: int
    """The first session from which every strategy decides up to the end."""
    warnings: tuple[str, ...]

    @property
    def run_dates(self) -> tuple[date, ...]:
        return self.dates[self.start : self.end + 1]

    def earliest_start(self, timing: Timing) -> int:
        return self.first_decision + DECISION_LAG[timing]

    def decision_index(self, session: int, timing: Timing) -> int:
        """The session whose decision is traded at `session`."""
        return session - DECISION_LAG[timing]


def build_timeline(
    strategies: Strategies,
    bars: BarSnapshot,
    *,
    start: date | None,
    end: date | None,
    timing: Timing,
) -> Timeline:
    try:
        visible = bars.restricted(strategies.tickers)
    except BarDataError as error:
        raise BacktestError(
            f"{error}; the strategies name them, so the bars must hold them"
        ) from None
    all_dates = tuple(_as_date(day) for day in visible.sessions)
    if not all_dates:
        raise BacktestError("the bars hold no session of the strategies' symbols")
    warnings: list[str] = []
    last = len(all_dates) - 1
    if end is not None and end > all_dates[-1]:
        warnings.append(
            f"--end {end} is after the last bar ({all_dates[-1]}); the backtest ends there"
        )
    elif end is not None:
        last = bisect.bisect_right(all_dates, end) - 1
        if last < 0:
            raise BacktestError(
                f"--end {end}: no session on or before it; the bars start on {all_dates[0]}"
            )
    dates = all_dates[: last + 1]
    first_bars = _first_bars(visible, last)
    _check_no_gaps(visible, first_bars, dates)
    decisions = tuple(decide_dates(strategies.symphonies, strategies.file_weights, visible, dates))
    blocked = max(
        (i for i, decision in enumerate(decisions) if decision.target_weights is None),
        default=-1,
    )
    first_decision = max(blocked + 1, max(first_bars.values()))
    earliest = first_decision + DECISION_LAG[timing]
    limit = (
        _limit(decisions[first_decision - 1], visible, first_bars, strategies)
        if first_decision > 0
        else "the first session of the bars"
        + (", which has no previous session" if timing == "previous-close" else "")
    )
    if earliest > last:
        raise BacktestError(f"no session up to {dates[-1]} to start on: {limit}")
    first = earliest
    if start is not None:
        first = bisect.bisect_left(dates, start)
        if first > last:
            raise BacktestError(f"no session between --start {start} and {dates[-1]}")
        if first < earliest:
            raise BacktestError(
                f"--start {start} is too early: {limit}; the earliest start is {dates[earliest]}"
            )
    warnings.append(f"first usable date {dates[earliest]}, limited by {limit}")
    opening = min(first_bars.values())
    warnings.extend(
        f"{symbol}'s first bar is {dates[index]}, later than the other symbols' ({dates[opening]})"
        for symbol, index in sorted(first_bars.items())
        if index > opening
    )
    return Timeline(
        bars=visible,
        dates=dates,
        decisions=decisions,
        start=first,
        end=last,
        first_decision=first_decision,
        warnings=tuple(warnings),
    )


def _first_bars(bars: BarSnapshot, last: int) -> dict[str, int]:
    """Each symbol's first session index; a symbol without a bar by `last` is an error."""
    firsts: dict[str, int] = {}
    for symbol, closes in bars.closes.items():
        present = np.flatnonzero(~np.isnan(closes[: last + 1]))
        if present.size == 0:
            raise BacktestError(
                f"{symbol} has no bar on or before {_as_date(bars.sessions[last])}; "
                "the strategies name it, so import its history or move --end"
            )
        firsts[symbol] = int(present[0])
    return firsts


def _check_no_gaps(bars: BarSnapshot, first_bars: dict[str, int], dates: Sequence[date]) -> None:
    for symbol, first in sorted(first_bars.items()):
        missing = np.flatnonzero(np.isnan(bars.closes[symbol][first : len(dates)]))
        if missing.size:
            day = dates[first + int(missing[0])]
            raise BacktestError(
                f"{symbol} has no bar on {day}, a session on which the strategies' other "
                "symbols have one; repair the bars or end the backtest before it (--end)"
            )


def _limit(
    decision: DatedDecision,
    bars: BarSnapshot,
    first_bars: dict[str, int],
    strategies: Strategies,
) -> str:
    """Why the session before the first usable one could not be traded: the strategy that
    failed there with its indicator call and asset, or the symbol listed last."""
    failure = decision.failure
    if failure is not None:
        text = f"{failure.strategy} on {decision.as_of}: {failure.message}"
        if failure.symbol in first_bars:
            first = _as_date(bars.sessions[first_bars[failure.symbol]])
            text += f" ({failure.symbol}'s first bar is {first})"
        return text
    if decision.target_weights is None:
        return f"no strategy file has a positive weight on {decision.as_of}"
    symbol = max(first_bars, key=lambda s: (first_bars[s], s))
    users = [name for name, symphony in strategies.symphonies.items() if symbol in symphony.tickers]
    return (
        f"{symbol} (named by {', '.join(users)}) has no bar before "
        f"{_as_date(bars.sessions[first_bars[symbol]])}"
    )


def _as_date(day: np.datetime64) -> date:
    return date.fromisoformat(str(day.astype("datetime64[D]")))
