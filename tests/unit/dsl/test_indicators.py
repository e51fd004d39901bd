"""Indicator series against the worked examples, and the as-of contract:

docs/strategy-language.md, Indicator examples / RSI example / Long-series example
docs/strategy-language.md, Group candidate example
docs/strategy-language.md, As-of bar / History needed
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.strategy.dsl.indicators import (
    GROUP_METRICS,
    INDICATORS,
    group_metric_series,
    indicator_series,
    needs,
)

TOLERANCE = 1e-9
P = np.array([100, 102, 101, 104, 103, 106, 108, 107], dtype=np.float64)
L = np.array([round(100 + 5 * math.sin(0.7 * i) + 0.3 * i, 4) for i in range(60)])


def last(indicator: str, closes: np.ndarray, window: int | None) -> float:
    return float(indicator_series(indicator, closes, window)[-1])


@pytest.mark.parametrize(
    ("indicator", "window", "expected"),
    [
        ("current-price", None, 107.0),
        ("moving-average-price", 3, 107.0),
        ("moving-average-price", 8, 103.875),
        ("exponential-moving-average-price", 3, 106.59375),
        ("exponential-moving-average-price", 5, 105.66209419295842),
        ("cumulative-return", 3, 3.8834951456310662),
        ("cumulative-return", 7, 7.000000000000006),
        ("moving-average-return", 3, 1.291162628709186),
        ("stdev-return", 3, 1.62269168988206),
        ("stdev-return", 7, 1.7239486454033854),
        ("max-drawdown", 4, 0.92592592592593),
        ("max-drawdown", 8, 0.9803921568627416),
        ("rsi", 2, 63.0),
        ("rsi", 3, 70.63469675599436),
        ("rsi", 7, 75.15915982582986),
    ],
)
def test_indicators_on_the_short_series_match_section_7_1(
    indicator: str, window: int | None, expected: float
) -> None:
    assert last(indicator, P, window) == pytest.approx(expected, abs=TOLERANCE)


@pytest.mark.parametrize(
    ("indicator", "window", "expected"),
    [
        ("rsi", 14, 52.2899123401),
        ("rsi", 10, 50.0908293831),
        ("moving-average-price", 20, 114.805765),
        ("exponential-moving-average-price", 10, 117.0169758405),
        ("cumulative-return", 20, -0.3049122643),
        ("moving-average-return", 10, -0.0187548701),
        ("stdev-return", 10, 2.1738518579),
        ("max-drawdown", 20, 6.9948069049),
        ("current-price", None, 115.4834),
    ],
)
def test_indicators_on_the_longer_series_match_section_7_3(
    indicator: str, window: int | None, expected: float
) -> None:
    assert last(indicator, L, window) == pytest.approx(expected, abs=TOLERANCE)


def test_stdev_return_uses_the_population_divisor_not_the_sample_one() -> None:
    assert abs(last("stdev-return", P, 3) - 1.9873833250328037) > 0.1


def test_rsi_is_zero_seeded_wilder_not_textbook_nor_simple_averages() -> None:
    value = last("rsi", P, 3)
    assert abs(value - 70.9832134292566) > 0.1
    assert abs(value - 83.3333) > 0.1
    assert abs(last("rsi", L, 14) - 52.3885969838) > 0.05


@pytest.mark.parametrize(
    ("closes", "expected"),
    [([1, 2, 3, 4, 5], 100.0), ([5, 4, 3, 2, 1], 0.0), ([5, 5, 5, 5], 50.0)],
)
def test_rsi_edge_cases_of_section_7_2(closes: list[float], expected: float) -> None:
    assert last("rsi", np.array(closes, dtype=np.float64), 3) == expected


def test_rsi_with_fewer_closes_than_it_needs_is_nan_not_a_neutral_fifty() -> None:
    assert math.isnan(last("rsi", P, 14))
    assert needs("rsi", 14) == 15


def test_ema_is_seeded_at_the_first_close_so_its_value_depends_on_the_history_start() -> None:
    assert last("exponential-moving-average-price", P[1:], 3) != pytest.approx(106.59375)


def test_max_drawdown_spans_n_closes() -> None:
    closes = np.array([120, 100, 103, 106, 108, 107], dtype=np.float64)
    assert last("max-drawdown", closes, 4) == pytest.approx(100 * (1 - 107 / 108), abs=TOLERANCE)
    assert last("max-drawdown", closes, 5) == pytest.approx(100 * (1 - 107 / 108), abs=TOLERANCE)
    assert last("max-drawdown", closes, 6) == pytest.approx(100 * (1 - 100 / 120), abs=TOLERANCE)


@pytest.mark.parametrize(
    ("indicator", "window", "expected"),
    [
        ("current-price", None, 1),
        ("moving-average-price", 20, 20),
        ("exponential-moving-average-price", 12, 12),
        ("rsi", 10, 11),
        ("cumulative-return", 60, 61),
        ("moving-average-return", 21, 22),
        ("stdev-return", 6, 7),
        ("max-drawdown", 60, 60),
    ],
)
def test_needs_follows_the_formula_table(indicator: str, window: int | None, expected: int) -> None:
    assert needs(indicator, window) == expected


@pytest.mark.parametrize("indicator", sorted(INDICATORS))
def test_values_start_exactly_when_enough_closes_exist(indicator: str) -> None:
    window = None if indicator == "current-price" else 3
    series = indicator_series(indicator, L[:10], window)
    first_value = needs(indicator, window) - 1
    assert np.isnan(series[:first_value]).all()
    assert np.isfinite(series[first_value:]).all()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(min_value=1.0, max_value=1000.0), min_size=2, max_size=40),
    st.sampled_from(sorted(INDICATORS)),
    st.integers(min_value=2, max_value=6),
)
def test_value_as_of_a_bar_uses_only_closes_up_to_that_bar(
    closes: list[float], indicator: str, window: int
) -> None:
    prices = np.array(closes, dtype=np.float64)
    n = None if indicator == "current-price" else window
    full = indicator_series(indicator, prices, n)
    for t in range(prices.size):
        alone = indicator_series(indicator, prices[: t + 1], n)[-1]
        assert (np.isnan(alone) and np.isnan(full[t])) or alone == full[t]


def test_leading_nans_mean_the_history_starts_at_the_first_close() -> None:
    padded = np.concatenate([np.full(5, np.nan), P])
    for indicator, window in (("rsi", 3), ("exponential-moving-average-price", 5)):
        series = indicator_series(indicator, padded, window)
        assert np.isnan(series[:5]).all()
        np.testing.assert_array_equal(series[5:], indicator_series(indicator, P, window))


def test_a_missing_bar_poisons_every_value_that_depends_on_it() -> None:
    gapped = P.copy()
    gapped[4] = np.nan
    assert math.isnan(last("rsi", gapped, 3))
    assert math.isnan(last("exponential-moving-average-price", gapped, 3))
    assert math.isnan(last("stdev-return", gapped, 3))
    assert last("moving-average-price", gapped, 3) == pytest.approx(107.0)


def test_unknown_indicator_and_bad_windows_are_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="unknown indicator 'sharpe'"):
        indicator_series("sharpe", P, 3)
    with pytest.raises(ValueError, match="rsi needs an integer window"):
        indicator_series("rsi", P, None)
    with pytest.raises(ValueError, match="stdev-return needs a window of at least 2"):
        needs("stdev-return", 1)


def returns_of(closes: dict[str, list[float]], weights: dict[str, float]) -> np.ndarray:
    """A fixed-weight fund's daily returns: the synthetic return `R_d` with the same holdings
    every session (docs/strategy-language.md, Block scoring)."""
    sessions = len(next(iter(closes.values())))
    total = sum(weights.values())
    returns = [np.nan]
    for d in range(1, sessions):
        returns.append(
            sum(w * (closes[t][d] / closes[t][d - 1] - 1) for t, w in weights.items()) / total
        )
    return np.array(returns)


def test_group_cumulative_return_of_section_7_7_is_ten_percent() -> None:
    g = returns_of({"A": [100, 110, 121, 133.1], "B": [100, 90, 99, 89.1]}, {"A": 0.5, "B": 0.5})
    assert group_metric_series("cumulative-return", g, 3)[3] == pytest.approx(10.0, abs=TOLERANCE)
    assert group_metric_series("cumulative-return", g, 3)[3] < 20.0


R = np.array([np.nan, 0.01, 0.02, -0.01])


def test_group_moving_average_return_is_the_mean_in_percent() -> None:
    assert group_metric_series("moving-average-return", R, 3)[3] == pytest.approx(
        100 * (0.01 + 0.02 - 0.01) / 3, abs=TOLERANCE
    )
    assert group_metric_series("moving-average-return", R, 2)[3] == pytest.approx(
        0.5, abs=TOLERANCE
    )


def test_group_stdev_return_uses_the_population_divisor() -> None:
    assert group_metric_series("stdev-return", R, 3)[3] == pytest.approx(
        math.sqrt(42 / 27), abs=TOLERANCE
    )


def test_group_rsi_is_seeded_with_the_first_change_of_the_price_path() -> None:
    # P = 100, 110, 99, 108.9: changes +10, −11, +9.9; AG = 40/9 + 3.3, AL = 22/9.
    returns = np.array([np.nan, 0.1, -0.1, 0.1])
    assert group_metric_series("rsi", returns, 3)[3] == pytest.approx(
        100 - 2200 / 91.7, abs=TOLERANCE
    )


def test_group_rsi_without_losses_is_one_hundred() -> None:
    assert group_metric_series("rsi", np.array([np.nan, 0.01, 0.02, 0.0]), 3)[3] == 100.0
    assert group_metric_series("rsi", np.array([np.nan, 0.0, 0.0, 0.0]), 3)[3] == 100.0


def test_group_max_drawdown_spans_the_w_plus_one_points_from_one_hundred() -> None:
    # P = 100, 110, 88, 92.4: the fall from 110 to 88 is 20 %.
    returns = np.array([np.nan, 0.1, -0.2, 0.05])
    assert group_metric_series("max-drawdown", returns, 3)[3] == pytest.approx(20.0, abs=TOLERANCE)
    assert group_metric_series("max-drawdown", np.array([np.nan, -0.1, 0.1]), 2)[2] == (
        pytest.approx(10.0, abs=TOLERANCE)
    )


@pytest.mark.parametrize("indicator", sorted(GROUP_METRICS))
def test_group_metrics_are_nan_until_w_returns_exist_and_slide_after(indicator: str) -> None:
    returns = np.array([np.nan, 0.01, -0.02, 0.03, 0.01, -0.01])
    series = group_metric_series(indicator, returns, 3)
    assert np.isnan(series[:3]).all()
    assert np.isfinite(series[3:]).all()
    shifted = group_metric_series(indicator, np.concatenate([[np.nan], returns[2:]]), 3)
    assert series[4] == pytest.approx(shifted[3], abs=TOLERANCE)


def test_price_indicators_cannot_score_a_group() -> None:
    with pytest.raises(ValueError, match="'current-price' cannot score a group"):
        group_metric_series("current-price", R, 3)


def naive(indicator: str, closes: list[float], n: int) -> float:
    """Each indicator's formula written out for the last bar only, straight from the formula
    table (docs/strategy-language.md, Indicators)."""
    returns = [closes[i] / closes[i - 1] - 1 for i in range(1, len(closes))]
    if indicator == "moving-average-price":
        return sum(closes[-n:]) / n
    if indicator == "cumulative-return":
        return 100 * (closes[-1] / closes[-1 - n] - 1)
    if indicator == "moving-average-return":
        return 100 * sum(returns[-n:]) / n
    if indicator == "stdev-return":
        window = [100 * r for r in returns[-n:]]
        mean = sum(window) / n
        return math.sqrt(sum((x - mean) ** 2 for x in window) / n)
    if indicator == "max-drawdown":
        window = closes[-n:]
        return 100 * max(1 - w / max(window[: k + 1]) for k, w in enumerate(window))
    assert indicator == "exponential-moving-average-price"
    alpha = 2 / (n + 1)
    ema = closes[0]
    for close in closes[1:]:
        ema = alpha * close + (1 - alpha) * ema
    return ema


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=1.0, max_value=1000.0), min_size=12, max_size=30),
    st.sampled_from(
        [
            "moving-average-price",
            "exponential-moving-average-price",
            "cumulative-return",
            "moving-average-return",
            "stdev-return",
            "max-drawdown",
        ]
    ),
    st.integers(min_value=2, max_value=10),
)
def test_vectorised_series_match_the_formulas_written_out(
    closes: list[float], indicator: str, window: int
) -> None:
    value = last(indicator, np.array(closes), window)
    assert value == pytest.approx(naive(indicator, closes, window), rel=1e-9, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(min_value=1.0, max_value=1000.0), min_size=8, max_size=30),
    st.integers(min_value=2, max_value=6),
)
def test_a_group_holding_one_asset_scores_like_the_asset(closes: list[float], window: int) -> None:
    prices = np.array(closes)
    returns = np.concatenate([[np.nan], prices[1:] / prices[:-1] - 1])
    for indicator, asset_window in (
        ("cumulative-return", window),
        ("moving-average-return", window),
        ("stdev-return", window),
        ("max-drawdown", window + 1),
    ):
        group = group_metric_series(indicator, returns, window)[window:]
        asset = indicator_series(indicator, prices, asset_window)[window:]
        np.testing.assert_allclose(group, asset, rtol=1e-9, atol=1e-9)
