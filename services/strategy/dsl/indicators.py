"""Indicator series over a close history (dsl.md §3.3) and over a group's return series (§3.7).

The evaluator computes each (ticker, indicator, window) once per run and reads it at any as-of
bar, so every function returns the full series: element `t` is the value as of bar `t`, computed
from `closes[0..t]` only, and NaN where `t + 1` closes are fewer than the indicator needs (§3.5
makes that an evaluation error; raising it with the call's location is the evaluator's job).

Leading NaNs in `closes` mean the ticker has no history yet: its series starts at the first finite
close, which is where RSI and EMA are seeded. A later NaN (a missing bar) makes every value that
depends on it NaN, so a gap can never pass for a real value.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

CURRENT_PRICE = "current-price"
MOVING_AVERAGE_PRICE = "moving-average-price"
EXPONENTIAL_MOVING_AVERAGE_PRICE = "exponential-moving-average-price"
RSI = "rsi"
CUMULATIVE_RETURN = "cumulative-return"
MOVING_AVERAGE_RETURN = "moving-average-return"
STDEV_RETURN = "stdev-return"
MAX_DRAWDOWN = "max-drawdown"

INDICATORS = frozenset(
    {
        CURRENT_PRICE,
        MOVING_AVERAGE_PRICE,
        EXPONENTIAL_MOVING_AVERAGE_PRICE,
        RSI,
        CUMULATIVE_RETURN,
        MOVING_AVERAGE_RETURN,
        STDEV_RETURN,
        MAX_DRAWDOWN,
    }
)
GROUP_METRICS = frozenset(
    {MOVING_AVERAGE_RETURN, CUMULATIVE_RETURN, STDEV_RETURN, RSI, MAX_DRAWDOWN}
)


def needs(indicator: str, window: int | None) -> int:
    """Minimum number of closes the indicator needs as of a bar (§3.3 "Needs")."""
    if indicator == CURRENT_PRICE:
        return 1
    n = _window(indicator, window)
    if indicator in (MOVING_AVERAGE_PRICE, EXPONENTIAL_MOVING_AVERAGE_PRICE, MAX_DRAWDOWN):
        return n
    return n + 1


def indicator_series(indicator: str, closes: FloatArray, window: int | None) -> FloatArray:
    """The indicator as of every bar of `closes` (float64, same length, NaN while too short)."""
    prices = np.asarray(closes, dtype=np.float64)
    if prices.ndim != 1:
        raise ValueError(f"closes must be one-dimensional, got shape {prices.shape}")
    compute = _ASSET_FORMULAS.get(indicator)
    if compute is None:
        raise ValueError(f"unknown indicator {indicator!r}; expected one of {sorted(INDICATORS)}")
    n = 1 if indicator == CURRENT_PRICE else _window(indicator, window)
    result = np.full(prices.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(prices))
    if finite.size == 0:
        return result
    first = int(finite[0])
    history = prices[first:]
    if history.size >= needs(indicator, window):
        result[first:] = compute(history, n)
    return result


def group_metric_series(indicator: str, returns: FloatArray, window: int) -> FloatArray:
    """§3.7's score of a non-asset filter candidate as of every bar of its return series.

    `returns[d]` is the candidate's return over session `d` as a fraction (`returns[0]` has no
    previous session and is ignored); element `t` scores `returns[t-w+1..t]` and is NaN for
    `t < w`, where fewer than `w` returns exist.
    """
    series = np.asarray(returns, dtype=np.float64)
    if series.ndim != 1:
        raise ValueError(f"returns must be one-dimensional, got shape {series.shape}")
    compute = _GROUP_FORMULAS.get(indicator)
    if compute is None:
        raise ValueError(
            f"{indicator!r} cannot score a group; expected one of {sorted(GROUP_METRICS)}"
        )
    w = _window(indicator, window)
    result = np.full(series.shape, np.nan)
    if series.size > w:
        result[w:] = compute(sliding_window_view(series[1:], w))
    return result


def _window(indicator: str, window: int | None) -> int:
    minimum = 2 if indicator == STDEV_RETURN else 1
    if window is None or isinstance(window, bool) or not isinstance(window, int):
        raise ValueError(f"{indicator} needs an integer window, got {window!r}")
    if window < minimum:
        raise ValueError(f"{indicator} needs a window of at least {minimum}, got {window}")
    return window


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
    # `sum(window) / n`, so a price exactly equal to its average compares equal (§7.9).
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
    """Wilder smoothing seeded with zero averages at the first bar (§3.3)."""
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
    """Wilder RSI over each window's price path, seeded with its first change (§3.7)."""
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


_ASSET_FORMULAS: dict[str, Callable[[FloatArray, int], FloatArray]] = {
    CURRENT_PRICE: _current_price,
    MOVING_AVERAGE_PRICE: _moving_average_price,
    EXPONENTIAL_MOVING_AVERAGE_PRICE: _exponential_moving_average_price,
    RSI: _rsi,
    CUMULATIVE_RETURN: _cumulative_return,
    MOVING_AVERAGE_RETURN: _moving_average_return,
    STDEV_RETURN: _stdev_return,
    MAX_DRAWDOWN: _max_drawdown,
}

_GROUP_FORMULAS: dict[str, Callable[[FloatArray], FloatArray]] = {
    MOVING_AVERAGE_RETURN: _group_moving_average_return,
    CUMULATIVE_RETURN: _group_cumulative_return,
    STDEV_RETURN: _group_stdev_return,
    RSI: _group_rsi,
    MAX_DRAWDOWN: _group_max_drawdown,
}
