"""The indicators of the strategy language: one table that the compiler, the evaluator and the
bar-data checks all read, and the series each indicator computes.

Every series function returns the indicator as of every bar: element `t` is the value as of bar
`t`, computed from `closes[0..t]` only, and NaN where `t + 1` closes are fewer than the indicator
needs (turning that into an error with the call's location is the evaluator's job).

Leading NaNs in `closes` mean the ticker has no history yet: its series starts at the first finite
close, which is where RSI and EMA are seeded. A later NaN (a missing bar) makes every value that
depends on it NaN, so a gap can never pass for a real value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IndicatorName: TypeAlias = str
"""A key of `INDICATORS`; the compiler lets no other name into a tree."""

STDEV_RETURN = "stdev-return"
"""Also the volatility that `weight-inverse-volatility` weights by."""


@dataclass(frozen=True, slots=True)
class Indicator:
    """One indicator: how a call is written, how much history a value needs, and its formulas.

    `extra_closes` are the closes needed beyond the window (n returns need n + 1 closes).
    `seeded` indicators (RSI, EMA) depend on where the history starts, so they are always computed
    over a ticker's whole history. Only indicators with a `group_formula` can score a filter
    candidate that is a block rather than an asset: that formula takes rows of the candidate's
    daily returns (one row per scored bar) instead of closes.
    """

    name: IndicatorName
    formula: Callable[[FloatArray, int], FloatArray]
    windowed: bool = True
    min_window: int = 1
    extra_closes: int = 0
    seeded: bool = False
    group_formula: Callable[[FloatArray], FloatArray] | None = None

    def window(self, window: int | None) -> int:
        """The checked window (1 for an indicator written without one)."""
        if not self.windowed:
            return 1
        if window is None or isinstance(window, bool) or not isinstance(window, int):
            raise ValueError(f"{self.name} needs an integer window, got {window!r}")
        if window < self.min_window:
            raise ValueError(
                f"{self.name} needs a window of at least {self.min_window}, got {window}"
            )
        return window

    def needs(self, window: int | None) -> int:
        """Minimum number of closes a value needs as of a bar."""
        return self.window(window) + self.extra_closes

    def call_text(self, ticker: str, window: int | None) -> str:
        """The call as written in a strategy file, e.g. `(rsi "TQQQ" {:window 10})`."""
        if not self.windowed:
            return f'({self.name} "{ticker}")'
        return f'({self.name} "{ticker}" {{:window {window}}})'


def _valid_from(values: FloatArray, first_valid: int) -> FloatArray:
    """Pad a computed tail with NaN so it lines up with bars 0…T."""
    padded = np.full(first_valid + values.size, np.nan)
    padded[first_valid:] = values
    return padded


def _daily_returns(closes: FloatArray) -> FloatArray:
    """`r_t = c_t / c_{t-1} - 1` for t ≥ 1 (length T)."""
    return closes[1:] / closes[:-1] - 1.0


def _current_price(closes: FloatArray, _n: int) -> FloatArray:
    return closes.copy()


def _moving_average_price(closes: FloatArray, n: int) -> FloatArray:
    # Summing each window (not differencing a cumulative sum) keeps the value bit-identical to
    # `sum(window) / n`, so a price exactly equal to its average compares equal.
    return _valid_from(sliding_window_view(closes, n).sum(axis=1) / n, n - 1)


def _exponential_moving_average_price(closes: FloatArray, n: int) -> FloatArray:
    alpha = 2.0 / (n + 1)
    keep = 1.0 - alpha
    values = closes.tolist()
    ema = values[0]
    out = [ema]
    for close in values[1:]:
        ema = alpha * close + keep * ema
        out.append(ema)
    result = np.array(out)
    result[: n - 1] = np.nan
    return result


def _rsi(closes: FloatArray, n: int) -> FloatArray:
    """Wilder smoothing seeded with zero averages at the first bar."""
    changes = np.diff(closes)
    gains = np.maximum(changes, 0.0).tolist()
    losses = np.maximum(-changes, 0.0).tolist()
    keep = 1.0 - 1.0 / n
    average_gain = 0.0
    average_loss = 0.0
    out = [np.nan] * closes.size
    for t, (gain, loss) in enumerate(zip(gains, losses, strict=True), start=1):
        average_gain = keep * average_gain + gain / n
        average_loss = keep * average_loss + loss / n
        if t >= n:
            out[t] = _rsi_value(average_gain, average_loss)
    return np.array(out)


def _rsi_value(average_gain: float, average_loss: float) -> float:
    if average_loss == 0.0:
        return 50.0 if average_gain == 0.0 else 100.0
    return 100.0 - 100.0 / (1.0 + average_gain / average_loss)


def _cumulative_return(closes: FloatArray, n: int) -> FloatArray:
    return _valid_from(100.0 * (closes[n:] / closes[:-n] - 1.0), n)


def _moving_average_return(closes: FloatArray, n: int) -> FloatArray:
    windows = sliding_window_view(_daily_returns(closes), n)
    return _valid_from(100.0 * (windows.sum(axis=1) / n), n)


def _stdev_return(closes: FloatArray, n: int) -> FloatArray:
    windows = sliding_window_view(100.0 * _daily_returns(closes), n)
    return _valid_from(windows.std(axis=1, ddof=0), n)


def _max_drawdown(closes: FloatArray, n: int) -> FloatArray:
    return _valid_from(_window_drawdowns(sliding_window_view(closes, n)), n - 1)


def _window_drawdowns(windows: FloatArray) -> FloatArray:
    """`100 · max_k (1 − W_k / max(W_0…W_k))` for each row of `windows`."""
    running_peak = np.maximum.accumulate(windows, axis=1)
    deepest: FloatArray = (1.0 - windows / running_peak).max(axis=1)
    return 100.0 * deepest


def _group_moving_average_return(windows: FloatArray) -> FloatArray:
    mean: FloatArray = windows.mean(axis=1)
    return 100.0 * mean


def _group_cumulative_return(windows: FloatArray) -> FloatArray:
    growth: FloatArray = (1.0 + windows).prod(axis=1)
    return 100.0 * (growth - 1.0)


def _group_stdev_return(windows: FloatArray) -> FloatArray:
    deviation: FloatArray = (100.0 * windows).std(axis=1, ddof=0)
    return deviation


def _price_paths(windows: FloatArray) -> FloatArray:
    """`P_0 = 100`, `P_j = P_{j−1}·(1 + R_j)`: one row of w + 1 points per window."""
    start = np.full((windows.shape[0], 1), 100.0)
    return np.cumprod(np.hstack([start, 1.0 + windows]), axis=1)


def _group_rsi(windows: FloatArray) -> FloatArray:
    """Wilder RSI over each window's price path, seeded with its first change."""
    w = windows.shape[1]
    changes = np.diff(_price_paths(windows), axis=1)
    gains = np.maximum(changes, 0.0)
    losses = np.maximum(-changes, 0.0)
    keep = 1.0 - 1.0 / w
    average_gain = gains[:, 0].copy()
    average_loss = losses[:, 0].copy()
    for j in range(1, w):
        average_gain = keep * average_gain + gains[:, j] / w
        average_loss = keep * average_loss + losses[:, j] / w
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = 100.0 - 100.0 / (1.0 + average_gain / average_loss)
    scores[average_loss == 0.0] = 100.0
    scores[np.isnan(average_gain) | np.isnan(average_loss)] = np.nan
    return scores


def _group_max_drawdown(windows: FloatArray) -> FloatArray:
    return _window_drawdowns(_price_paths(windows))


INDICATORS: Mapping[IndicatorName, Indicator] = {
    spec.name: spec
    for spec in (
        Indicator("current-price", _current_price, windowed=False),
        Indicator("moving-average-price", _moving_average_price),
        Indicator(
            "exponential-moving-average-price", _exponential_moving_average_price, seeded=True
        ),
        Indicator("rsi", _rsi, extra_closes=1, seeded=True, group_formula=_group_rsi),
        Indicator(
            "cumulative-return",
            _cumulative_return,
            extra_closes=1,
            group_formula=_group_cumulative_return,
        ),
        Indicator(
            "moving-average-return",
            _moving_average_return,
            extra_closes=1,
            group_formula=_group_moving_average_return,
        ),
        Indicator(
            STDEV_RETURN,
            _stdev_return,
            min_window=2,
            extra_closes=1,
            group_formula=_group_stdev_return,
        ),
        Indicator("max-drawdown", _max_drawdown, group_formula=_group_max_drawdown),
    )
}
GROUP_METRICS = frozenset(name for name, spec in INDICATORS.items() if spec.group_formula)
"""The indicators that can score a filter candidate that is a block (by its return series)."""


def indicator(name: str) -> Indicator:
    """The table entry of `name`; a name outside the table is a programming error here (the
    compiler has already rejected it in a strategy file)."""
    spec = INDICATORS.get(name)
    if spec is None:
        raise ValueError(f"unknown indicator {name!r}; expected one of {sorted(INDICATORS)}")
    return spec


def needs(name: IndicatorName, window: int | None) -> int:
    """Minimum number of closes the indicator needs as of a bar."""
    return indicator(name).needs(window)


def indicator_series(name: IndicatorName, closes: FloatArray, window: int | None) -> FloatArray:
    """The indicator as of every bar of `closes` (float64, same length, NaN while too short)."""
    prices = np.asarray(closes, dtype=np.float64)
    if prices.ndim != 1:
        raise ValueError(f"closes must be one-dimensional, got shape {prices.shape}")
    spec = indicator(name)
    n = spec.window(window)
    result = np.full(prices.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(prices))
    if finite.size == 0:
        return result
    first = int(finite[0])
    history = prices[first:]
    if history.size >= spec.needs(window):
        result[first:] = spec.formula(history, n)
    return result


def group_metric_series(name: IndicatorName, returns: FloatArray, window: int) -> FloatArray:
    """The score of a block filter candidate as of every bar of its daily return series.

    `returns[d]` is the candidate's return over session `d` as a fraction (`returns[0]` has no
    previous session and is ignored); element `t` scores `returns[t-w+1..t]` and is NaN for
    `t < w`, where fewer than `w` returns exist.
    """
    series = np.asarray(returns, dtype=np.float64)
    if series.ndim != 1:
        raise ValueError(f"returns must be one-dimensional, got shape {series.shape}")
    spec = INDICATORS.get(name)
    if spec is None or spec.group_formula is None:
        raise ValueError(f"{name!r} cannot score a group; expected one of {sorted(GROUP_METRICS)}")
    w = spec.window(window)
    result = np.full(series.shape, np.nan)
    if series.size > w:
        result[w:] = spec.group_formula(sliding_window_view(series[1:], w))
    return result
