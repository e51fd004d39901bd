"""Scores of non-asset filter candidates from their synthetic daily return series (§3.7).

A candidate is treated as a fund holding, over session d, the allocation it decided at the close
of session d − 1. Its allocation is already known at every session of the scoring windows (the
evaluator computed it there in the same pass), so the return series is a few array operations:
`R_d = Σ_t A_{d−1}(t) · r_t(d) / Σ_t A_{d−1}(t)`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from services.strategy.dsl.allocation import (
    NO_FAILURE,
    FailureCodes,
    SessionAllocation,
    SessionIndex,
)
from services.strategy.dsl.ast import Span
from services.strategy.dsl.failures import Failure, FailureTable
from services.strategy.dsl.indicators import IndicatorName, group_metric_series
from services.strategy.dsl.market_series import MarketSeries, Series


def scoring_sessions(sessions: SessionIndex, window: int) -> SessionIndex:
    """The sessions a candidate must be evaluated at: each as-of bar and the `window` before it."""
    offsets = np.arange(-window, 1, dtype=np.int64)
    needed = (sessions[:, None] + offsets[None, :]).ravel()
    return np.unique(needed[needed >= 0])


def _broken_close(label: str, ticker: str, market: MarketSeries) -> Callable[[int], str]:
    """Why a held ticker has no return for session `day`: no bars, no bar yet, or a defect."""

    def describe(day: int) -> str:
        history = market.history(ticker)
        if history is None:
            reason = f"{ticker} has no bars in the bar data"
        elif day - 1 < history.first:
            reason = f"{ticker} has no bars before {market.session_date(history.first)}"
        else:
            reason = (
                f"{ticker} has no valid close on {market.session_date(history.end)} (missing or "
                "not positive) and no return can be computed from then on"
            )
        return (
            f"{label}: cannot compute its return of {market.session_date(day)}: {reason}; "
            "repair the bar data or choose a later as-of date"
        )

    return describe


def _daily_returns(
    allocation: SessionAllocation,
    market: MarketSeries,
    span: Span,
    label: str,
    failures: FailureTable,
) -> tuple[Series, FailureCodes]:
    """Dense (one entry per session) returns, and the failures of the returns themselves (a held
    ticker without a usable close); zero and no failure where a return is not computed."""
    count = market.session_count
    returns = np.zeros(count, dtype=np.float64)
    codes = np.full(count, NO_FAILURE, dtype=np.int64)
    sessions = allocation.sessions
    follows = np.flatnonzero(sessions[1:] == sessions[:-1] + 1)
    if follows.size == 0:
        return returns, codes
    previous_rows = follows
    days = sessions[follows + 1]
    held = allocation.weights[previous_rows]
    ticker_returns = np.zeros_like(held)
    for column, ticker in enumerate(allocation.tickers):
        holding = held[:, column] > 0.0
        if not holding.any():
            continue
        history = market.history(ticker)
        if history is None:
            usable = np.zeros(days.size, dtype=bool)
        else:
            usable = (days - 1 >= history.first) & (days < history.end)
        broken = holding & ~usable
        if broken.any():
            code = failures.add(
                Failure(
                    span,
                    ticker,
                    _broken_close(label, ticker, market),
                )
            )
            broken_days = days[broken]
            codes[broken_days] = np.where(
                codes[broken_days] == NO_FAILURE, code, codes[broken_days]
            )
        if history is not None:
            safe = holding & usable
            today = history.closes[days[safe]]
            yesterday = history.closes[days[safe] - 1]
            ticker_returns[safe, column] = today / yesterday - 1.0
    totals = held.sum(axis=1)
    returns[days] = np.divide(
        (held * ticker_returns).sum(axis=1),
        totals,
        out=np.zeros(days.size, dtype=np.float64),
        where=totals > 0.0,
    )
    return returns, codes


def candidate_scores(
    allocation: SessionAllocation,
    market: MarketSeries,
    indicator: IndicatorName,
    window: int,
    sessions: SessionIndex,
    *,
    span: Span,
    label: str,
    failures: FailureTable,
) -> tuple[Series, FailureCodes]:
    """The rank-fn of a candidate's synthetic returns over the `window` returns ending at each
    of `sessions`; a failure anywhere in that window fails the score."""
    returns, return_codes = _daily_returns(allocation, market, span, label, failures)
    # Only the windows ending at `sessions` matter: score that stretch, not the whole history.
    start = max(0, int(sessions[0]) - window)
    stretch = returns[start : int(sessions[-1]) + 1]
    scores = group_metric_series(indicator, stretch, window)[sessions - start]
    codes = np.full(sessions.size, NO_FAILURE, dtype=np.int64)

    too_early = sessions < window
    if too_early.any():
        codes[too_early] = failures.add(
            Failure(
                span,
                None,
                lambda session: (
                    f"{label} cannot be scored: {indicator} {window} needs {window} sessions "
                    f"before {market.session_date(session)} and the bar data has {session}; "
                    "load older bars or choose a later as-of date"
                ),
            )
        )
    # A score needs the allocations decided at T−w … T (the last one is what the filter holds)
    # and the returns of sessions T−w+1 … T; the first failure among them fails it.
    decided = np.full(market.session_count, NO_FAILURE, dtype=np.int64)
    decided[allocation.sessions] = allocation.failures
    context = f"{label} cannot be scored over the {window} sessions before"
    for dense, lowest in ((decided, sessions - window), (return_codes, sessions - window + 1)):
        failed_at = np.flatnonzero(dense != NO_FAILURE)
        if failed_at.size == 0:
            continue
        first_in_window = np.minimum(np.searchsorted(failed_at, lowest), failed_at.size - 1)
        positions = failed_at[first_in_window]
        inside = (positions >= lowest) & (positions <= sessions)
        for row in np.flatnonzero(inside & (codes == NO_FAILURE)):
            position = int(positions[row])
            codes[row] = failures.restated(
                int(dense[position]),
                position,
                f"{context} {market.session_date(int(sessions[row]))}",
            )
    not_a_number = np.isnan(scores) & (codes == NO_FAILURE)
    if not_a_number.any():
        codes[not_a_number] = failures.add(
            Failure(
                span,
                None,
                lambda session: (
                    f"{label} cannot be scored: {indicator} {window} of its "
                    f"return series is NaN as of {market.session_date(session)}"
                ),
            )
        )
    scores = np.where(codes == NO_FAILURE, scores, 0.0)
    return scores, codes
