"""The statistics a backtest reports, each computed exactly as docs/backtest.md defines it.

Pure functions over an equity curve (one value per session, E_0 at the start session's close)
and what a statistic needs beyond it: invested and traded value per session, a benchmark's
curve, the annual risk-free rate. Statistics are floats: money stays Decimal inside the
simulation, but a Sharpe ratio is not money.

A statistic that is undefined — too few sessions, zero dispersion, no drawdown to divide by, no
overlap with a benchmark — is None, never NaN or infinity, so the JSON output and the report
never print a number-like word for something that has no value.
"""

from __future__ import annotations

import bisect
import calendar
import itertools
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import TypeVar

import numpy as np
import numpy.typing as npt

TRADING_DAYS_PER_YEAR = 252
"""Annualisation factor of daily statistics (volatility, Sharpe, Sortino, alpha)."""

DAYS_PER_YEAR = 365.25
"""Calendar days per year of `years`, the span CAGR and turnover divide by."""

TRAILING_MONTHS = {"return_1m": 1, "return_3m": 3, "return_1y": 12}

Floats = npt.NDArray[np.float64]
Metric = float | int | None
P = TypeVar("P", bound=Hashable)


@dataclass(frozen=True, eq=False)
class Curve:
    """Values per session, oldest first: the portfolio's equity or a benchmark's buy-and-hold
    value. Positive, because every return divides by the previous value."""

    dates: tuple[date, ...]
    values: Floats = field(repr=False)

    @classmethod
    def of(cls, dates: Sequence[date], values: Sequence[float | Decimal]) -> Curve:
        if len(dates) != len(values):
            raise ValueError(
                f"a curve needs one value per date: {len(dates)} dates, {len(values)} values"
            )
        if not dates:
            raise ValueError("a curve needs at least one session")
        for earlier, later in itertools.pairwise(dates):
            if later <= earlier:
                raise ValueError(f"curve dates must increase: {later} follows {earlier}")
        array = np.asarray([float(v) for v in values], dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(array) | (array <= 0))
        if bad.size:
            first = int(bad[0])
            raise ValueError(
                f"curve value on {dates[first]} is {values[first]}; it must be positive"
            )
        array.flags.writeable = False
        return cls(tuple(dates), array)

    def returns(self) -> Floats:
        """r_i = E_i / E_{i−1} − 1 for i ≥ 1: N values for N + 1 sessions."""
        return self.values[1:] / self.values[:-1] - 1.0

    def years(self) -> float:
        return (self.dates[-1] - self.dates[0]).days / DAYS_PER_YEAR

    def window(self, start: int, stop: int) -> Curve:
        """Sessions start … stop − 1: a slice of a valid curve is valid, so no check again."""
        return Curve(self.dates[start:stop], self.values[start:stop])


def daily_risk_free(annual_rate: float) -> float:
    """The risk-free return per session, rf_d = (1 + rate)^(1/252) − 1, the conversion ffn uses."""
    return float((1.0 + annual_rate) ** (1.0 / TRADING_DAYS_PER_YEAR) - 1.0)


def total_return(curve: Curve) -> float | None:
    return _finite(curve.values[-1] / curve.values[0] - 1.0)


def cagr(curve: Curve) -> float | None:
    years = curve.years()
    if years <= 0:
        return None
    try:
        return _finite(float(curve.values[-1] / curve.values[0]) ** (1.0 / years) - 1.0)
    except OverflowError:
        return None


def volatility(curve: Curve) -> float | None:
    returns = curve.returns()
    if returns.size < 2:
        return None
    return _finite(np.std(returns, ddof=1) * math.sqrt(TRADING_DAYS_PER_YEAR))


def sharpe(curve: Curve, risk_free_rate: float = 0.0) -> float | None:
    excess = curve.returns() - daily_risk_free(risk_free_rate)
    if excess.size < 2 or not _dispersed(excess):
        return None
    return _finite(np.mean(excess) / np.std(excess, ddof=1) * math.sqrt(TRADING_DAYS_PER_YEAR))


def sortino(curve: Curve, risk_free_rate: float = 0.0) -> float | None:
    """The downside deviation is the root mean square of min(excess, 0) over every return,
    not only the negative ones."""
    excess = curve.returns() - daily_risk_free(risk_free_rate)
    if excess.size < 1:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    if downside == 0:
        return None
    return _finite(np.mean(excess) / downside * math.sqrt(TRADING_DAYS_PER_YEAR))


def drawdowns(curve: Curve) -> Floats:
    """1 − E_i / max_{j≤i} E_j per session: 0 at a high, 0.25 a quarter below it."""
    return 1.0 - curve.values / np.maximum.accumulate(curve.values)


def max_drawdown(curve: Curve) -> float | None:
    return _finite(np.max(drawdowns(curve)))


def max_drawdown_days(curve: Curve) -> int:
    """Sessions from a peak to the first session whose equity is back at or above it (to the
    last session when it never is); 0 when equity never falls below a previous high."""
    values = curve.values
    peak = 0
    longest = 0
    for index in range(1, values.size):
        if values[index] >= values[peak]:
            if index - peak > 1:
                longest = max(longest, index - peak)
            peak = index
    if peak < values.size - 1:
        longest = max(longest, values.size - 1 - peak)
    return longest


def calmar(curve: Curve) -> float | None:
    growth, drawdown = cagr(curve), max_drawdown(curve)
    if growth is None or not drawdown:
        return None
    return _finite(growth / drawdown)


def best_day(curve: Curve) -> float | None:
    returns = curve.returns()
    return _finite(np.max(returns)) if returns.size else None


def worst_day(curve: Curve) -> float | None:
    returns = curve.returns()
    return _finite(np.min(returns)) if returns.size else None


def win_rate_days(curve: Curve) -> float | None:
    returns = curve.returns()
    return _finite(np.mean(returns > 0)) if returns.size else None


def time_in_market(curve: Curve, invested: Sequence[float | Decimal]) -> float | None:
    """Mean over every session of invested value / E_i (0 all cash, 1 fully invested)."""
    return _finite(np.mean(_per_session(curve, invested, "invested") / curve.values))


def turnover(curve: Curve, traded: Sequence[float | Decimal]) -> float | None:
    """Per year, how often the portfolio was traded over: Σ over sessions after the start of
    (buys + sells) / 2, over mean(E), over `years`. `traded` is buys + sells per session; the
    start session's initial investment is not turnover."""
    years = curve.years()
    if years <= 0:
        return None
    one_way = float(np.sum(_per_session(curve, traded, "traded")[1:])) / 2.0
    return _finite(one_way / float(np.mean(curve.values)) / years)


def rebalance_count(orders: Sequence[int]) -> int:
    """Sessions after the start with at least one order; `orders` counts orders per session,
    the start session first."""
    return sum(1 for count in orders[1:] if count > 0)


def cost_drag(curve: Curve, without_costs: Curve) -> float | None:
    """What slippage and fees cost per year: the CAGR of the same run with slippage 0 and no
    fees, minus this run's CAGR."""
    free, charged = cagr(without_costs), cagr(curve)
    if free is None or charged is None:
        return None
    return _finite(free - charged)


def trailing_return(curve: Curve, months: int) -> float | None:
    """E_N / E_k − 1, k the last session on or before the last date minus `months` calendar
    months (a day past the month's end is its last day: 31 March less one month is 28 or 29
    February); None when that date is before the first session."""
    since = _months_before(curve.dates[-1], months)
    if since < curve.dates[0]:
        return None
    k = bisect.bisect_right(curve.dates, since) - 1
    return _finite(curve.values[-1] / curve.values[k] - 1.0)


ROLLING_SHARPE_SESSIONS = 126
"""Six months of sessions: the window of the report's rolling Sharpe ratio."""


def rolling_sharpe(
    curve: Curve, sessions: int = ROLLING_SHARPE_SESSIONS, risk_free_rate: float = 0.0
) -> list[float | None]:
    """Per session, the Sharpe ratio of the `sessions` returns ending there; None until that
    many returns exist."""
    return [
        sharpe(curve.window(end - sessions, end + 1), risk_free_rate) if end >= sessions else None
        for end in range(len(curve.dates))
    ]


def monthly_returns(curve: Curve) -> dict[tuple[int, int], float | None]:
    """Per (year, month): the last value of the month over the last value of the month before,
    less one; the first month starts from E_0."""
    return _period_returns(curve, lambda day: (day.year, day.month))


def yearly_returns(curve: Curve) -> dict[int, float | None]:
    """Per calendar year, as `monthly_returns` per month."""
    return _period_returns(curve, lambda day: day.year)


@dataclass(frozen=True)
class Relative:
    """The portfolio against one benchmark, over the sessions both have."""

    beta: float | None
    alpha: float | None
    correlation: float | None
    r_squared: float | None
    tracking_error: float | None
    information_ratio: float | None

    def as_dict(self) -> dict[str, Metric]:
        return {
            "beta": self.beta,
            "alpha": self.alpha,
            "correlation": self.correlation,
            "r_squared": self.r_squared,
            "tracking_error": self.tracking_error,
            "information_ratio": self.information_ratio,
        }


UNRELATED = Relative(None, None, None, None, None, None)


def relative(curve: Curve, benchmark: Curve) -> Relative:
    """Beta, alpha, correlation, R², tracking error and information ratio of the portfolio's
    daily returns r against the benchmark's b. Both are taken over the dates the two curves
    share, so each pair of returns spans the same sessions; fewer than three shared dates (two
    returns) define none of them."""
    shared = sorted(set(curve.dates) & set(benchmark.dates))
    if len(shared) < 3:
        return UNRELATED
    r = _on(curve, shared)
    b = _on(benchmark, shared)
    active = r - b
    beta = _finite(np.cov(r, b, ddof=1)[0, 1] / np.var(b, ddof=1)) if _dispersed(b) else None
    correlation = _finite(np.corrcoef(r, b)[0, 1]) if _dispersed(r) and _dispersed(b) else None
    tracking_error = _finite(np.std(active, ddof=1) * math.sqrt(TRADING_DAYS_PER_YEAR))
    return Relative(
        beta=beta,
        alpha=(
            None
            if beta is None
            else _finite((np.mean(r) - beta * np.mean(b)) * TRADING_DAYS_PER_YEAR)
        ),
        correlation=correlation,
        r_squared=None if correlation is None else correlation**2,
        tracking_error=tracking_error,
        information_ratio=(
            _finite(np.mean(active) * TRADING_DAYS_PER_YEAR / tracking_error)
            if tracking_error and _dispersed(active)
            else None
        ),
    )


def curve_metrics(curve: Curve, risk_free_rate: float = 0.0) -> dict[str, Metric]:
    """Every statistic that needs only the curve: what a buy-and-hold benchmark has too."""
    return {
        "total_return": total_return(curve),
        "cagr": cagr(curve),
        "volatility": volatility(curve),
        "sharpe": sharpe(curve, risk_free_rate),
        "sortino": sortino(curve, risk_free_rate),
        "max_drawdown": max_drawdown(curve),
        "max_drawdown_days": max_drawdown_days(curve),
        "calmar": calmar(curve),
        "best_day": best_day(curve),
        "worst_day": worst_day(curve),
        "win_rate_days": win_rate_days(curve),
    } | {name: trailing_return(curve, months) for name, months in TRAILING_MONTHS.items()}


def portfolio_metrics(
    curve: Curve,
    *,
    invested: Sequence[float | Decimal],
    traded: Sequence[float | Decimal],
    orders: Sequence[int],
    without_costs: Curve,
    risk_free_rate: float = 0.0,
) -> dict[str, Metric]:
    """The `metrics` object of a backtest: the curve's statistics and those of its trading.
    `invested`, `traded` and `orders` have one entry per session of `curve`; `without_costs`
    is the same run with slippage 0 and no fees."""
    return curve_metrics(curve, risk_free_rate) | {
        "time_in_market": time_in_market(curve, invested),
        "turnover": turnover(curve, traded),
        "rebalance_count": rebalance_count(orders),
        "cost_drag": cost_drag(curve, without_costs),
    }


def benchmark_metrics(
    benchmark: Curve, portfolio: Curve, risk_free_rate: float = 0.0
) -> dict[str, Metric]:
    """A benchmark's own statistics and the portfolio's beta, alpha, correlation, R², tracking
    error and information ratio against it."""
    return curve_metrics(benchmark, risk_free_rate) | relative(portfolio, benchmark).as_dict()


def _period_returns(curve: Curve, period: Callable[[date], P]) -> dict[P, float | None]:
    ends: dict[P, float] = {}
    for day, value in zip(curve.dates, curve.values, strict=True):
        ends[period(day)] = float(value)
    returns: dict[P, float | None] = {}
    previous = float(curve.values[0])
    for key, end in ends.items():
        returns[key] = _finite(end / previous - 1.0)
        previous = end
    return returns


def _per_session(curve: Curve, values: Sequence[float | Decimal], name: str) -> Floats:
    if len(values) != curve.values.size:
        raise ValueError(
            f"{name} needs one value per session: {len(values)} for {curve.values.size} sessions"
        )
    return np.asarray([float(v) for v in values], dtype=np.float64)


def _on(curve: Curve, dates: Sequence[date]) -> Floats:
    index = {day: position for position, day in enumerate(curve.dates)}
    values = curve.values[[index[day] for day in dates]]
    return values[1:] / values[:-1] - 1.0


def _dispersed(returns: Floats) -> bool:
    """False when every return is the same up to rounding. ffn calls a spread within four
    machine epsilons of the returns' largest magnitude no dispersion; a return is a ratio of
    values less one, though, so its rounding residue is a few epsilons of 1, whatever its size:
    the returns of a curve growing a steady 0.1 % a session differ by about two epsilons, and a
    Sharpe ratio over that residue would be a meaningless 10^14. So the magnitude here is at
    least 1."""
    spread = float(np.max(returns) - np.min(returns))
    scale = max(1.0, abs(float(np.max(returns))), abs(float(np.min(returns))))
    return spread > 4 * float(np.finfo(np.float64).eps) * scale


def _finite(value: float | np.floating) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _months_before(day: date, months: int) -> date:
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))
