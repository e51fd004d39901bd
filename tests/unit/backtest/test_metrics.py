"""Every backtest statistic against its definition on small hand-made curves, the undefined
cases as None, and the statistics ffn also computes against ffn itself.

ffn (1.4.x, `PerformanceStats`) is given rf 0 and annualization_factor=252 explicitly. Its
conventions, read from `ffn/core.py`, are the ones docs/backtest.md defines, so no adjustment
is made beyond the sign of the drawdown:
- it resamples prices to calendar days and drops the empty ones, which leaves a series with one
  value per session unchanged; returns are p_t / p_{t−1} − 1;
- CAGR's year is 365.25 days (`year_frac` divides seconds by 31,557,600);
- volatility and Sharpe use the sample standard deviation (ddof 1) times √252;
- Sortino's downside deviation is √mean(min(r − rf_d, 0)²) over every return, not only the
  negative ones;
- a scalar risk-free rate becomes rf_d = (1 + rate)^(1/252) − 1 (`deannualize`);
- max_drawdown is min(p / cummax(p)) − 1, negative; ours is its negation;
- calmar is cagr / |max_drawdown|;
- a Sharpe ratio of returns whose spread is within four machine epsilons of their magnitude is
  undefined (NaN there, None here); ours measures that spread against at least 1, the scale of
  a return's rounding, which no real return series comes near.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from services.backtest import metrics
from services.backtest.metrics import Curve
from tests.backtest_reference import ffn_figures

SQRT_252 = math.sqrt(252)

# E = 100, 120, 90, 108, 135: r = 0.2, −0.25, 0.2, 0.25 exactly, over 731 calendar days.
DATES = (date(2020, 1, 1), date(2020, 7, 1), date(2021, 1, 1), date(2021, 7, 1), date(2022, 1, 1))
EQUITY = (100, 120, 90, 108, 135)
YEARS = 731 / 365.25
MEAN = 0.1
STD = math.sqrt((0.1**2 + 0.35**2 + 0.1**2 + 0.15**2) / 3)


def curve(values: tuple[float, ...] = EQUITY, dates: tuple[date, ...] = DATES) -> Curve:
    return Curve.of(dates, values)


def sessions(count: int, start: date = date(2024, 1, 2)) -> tuple[date, ...]:
    return tuple(start + timedelta(days=i) for i in range(count))


def from_returns(returns: list[float], start: float = 100.0) -> tuple[float, ...]:
    return tuple(start * np.cumprod([1.0, *(1.0 + r for r in returns)]))


def test_daily_returns_are_each_value_over_the_previous_less_one() -> None:
    assert curve().returns() == pytest.approx([0.2, -0.25, 0.2, 0.25])


def test_total_return_is_last_over_first_less_one() -> None:
    assert metrics.total_return(curve()) == pytest.approx(0.35)


def test_cagr_compounds_over_calendar_years_of_365_25_days() -> None:
    assert metrics.cagr(curve()) == pytest.approx(1.35 ** (1 / YEARS) - 1)


def test_volatility_is_the_sample_standard_deviation_annualised() -> None:
    assert metrics.volatility(curve()) == pytest.approx(STD * SQRT_252)


def test_sharpe_is_mean_over_sample_deviation_of_excess_returns_annualised() -> None:
    assert metrics.sharpe(curve()) == pytest.approx(MEAN / STD * SQRT_252)


def test_sharpe_subtracts_the_daily_rate_of_the_annual_risk_free_rate() -> None:
    rf_d = 1.05 ** (1 / 252) - 1
    excess = np.array([0.2, -0.25, 0.2, 0.25]) - rf_d
    assert metrics.daily_risk_free(0.05) == pytest.approx(rf_d)
    assert metrics.sharpe(curve(), 0.05) == pytest.approx(
        excess.mean() / excess.std(ddof=1) * SQRT_252
    )


def test_sortino_divides_by_the_root_mean_square_of_the_negative_part_over_all_returns() -> None:
    # min(r, 0)² = 0, 0.0625, 0, 0: mean 0.015625, root 0.125.
    assert metrics.sortino(curve()) == pytest.approx(MEAN / 0.125 * SQRT_252)


def test_sortino_with_a_risk_free_rate_counts_returns_below_it_as_downside() -> None:
    rf_d = 1.05 ** (1 / 252) - 1
    excess = np.array([0.2, -0.25, 0.2, 0.25]) - rf_d
    downside = math.sqrt(np.mean(np.minimum(excess, 0) ** 2))
    assert metrics.sortino(curve(), 0.05) == pytest.approx(excess.mean() / downside * SQRT_252)


def test_max_drawdown_is_the_deepest_fall_below_the_running_high_as_a_positive_fraction() -> None:
    assert metrics.drawdowns(curve()) == pytest.approx([0, 0, 0.25, 0.1, 0])
    assert metrics.max_drawdown(curve()) == pytest.approx(0.25)


def test_max_drawdown_days_counts_sessions_from_the_peak_to_the_session_that_regains_it() -> None:
    # Peak 120 at session 1, regained (135) at session 4.
    assert metrics.max_drawdown_days(curve()) == 3


def test_max_drawdown_days_of_a_drawdown_never_regained_runs_to_the_last_session() -> None:
    values = (100, 90, 100, 130, 120, 110, 125)
    assert metrics.max_drawdown_days(curve(values, sessions(7))) == 3


def test_max_drawdown_days_takes_the_longest_spell_not_the_deepest() -> None:
    # A deep one-session dip, then a shallow four-session one.
    values = (100, 50, 100, 99, 99, 99, 99, 101)
    assert metrics.max_drawdown_days(curve(values, sessions(8))) == 5


def test_equity_equal_to_its_high_has_regained_it() -> None:
    values = (100, 90, 100, 95)
    assert metrics.max_drawdown_days(curve(values, sessions(4))) == 2


def test_calmar_is_cagr_over_max_drawdown() -> None:
    assert metrics.calmar(curve()) == pytest.approx((1.35 ** (1 / YEARS) - 1) / 0.25)


def test_best_and_worst_day_are_the_largest_and_smallest_return() -> None:
    assert metrics.best_day(curve()) == pytest.approx(0.25)
    assert metrics.worst_day(curve()) == pytest.approx(-0.25)


def test_win_rate_days_is_the_share_of_returns_above_zero() -> None:
    values = (100, 120, 90, 90, 108)  # +, −, 0, +
    assert metrics.win_rate_days(curve(values)) == pytest.approx(0.5)


def test_time_in_market_averages_invested_over_equity_across_every_session() -> None:
    invested = (0, 60, 90, 54, 135)  # 0, ½, 1, ½, 1
    assert metrics.time_in_market(curve(), invested) == pytest.approx(0.6)


def test_turnover_is_half_the_traded_value_after_the_start_over_mean_equity_per_year() -> None:
    traded = (100, 20, 30, 10, 40)  # the start session's 100 is the initial investment
    mean_equity = sum(EQUITY) / 5
    assert metrics.turnover(curve(), traded) == pytest.approx(50 / mean_equity / YEARS)


def test_rebalance_count_counts_sessions_after_the_start_with_an_order() -> None:
    assert metrics.rebalance_count((3, 0, 2, 0, 1)) == 2
    assert metrics.rebalance_count((3,)) == 0


def test_cost_drag_is_the_cagr_without_costs_less_the_cagr() -> None:
    free = curve((100, 121, 91, 110, 140))
    assert metrics.cost_drag(curve(), free) == pytest.approx(
        1.4 ** (1 / YEARS) - 1.35 ** (1 / YEARS)
    )


def test_trailing_return_starts_at_the_last_session_on_or_before_the_date_months_back() -> None:
    dates = (date(2023, 12, 29), date(2024, 2, 28), date(2024, 3, 1), date(2024, 3, 28))
    values = (80, 100, 110, 125)
    # 28 March less one month is 28 February, a session.
    assert metrics.trailing_return(curve(values, dates), 1) == pytest.approx(0.25)
    # 28 March less three months is 28 December 2023: before the first session.
    assert metrics.trailing_return(curve(values, dates), 3) is None


def test_trailing_return_from_a_month_end_clamps_to_the_shorter_month() -> None:
    dates = (date(2024, 1, 2), date(2024, 2, 28), date(2024, 3, 1), date(2024, 3, 31))
    values = (100, 100, 110, 121)
    # 31 March less one month is 29 February (leap year); the last session by then is the 28th.
    assert metrics.trailing_return(curve(values, dates), 1) == pytest.approx(0.21)


def test_trailing_return_from_exactly_the_first_session_is_defined() -> None:
    dates = (date(2023, 3, 15), date(2023, 9, 1), date(2024, 3, 15))
    assert metrics.trailing_return(curve((100, 90, 130), dates), 12) == pytest.approx(0.3)


def test_relative_statistics_of_a_leveraged_copy_of_the_benchmark() -> None:
    b = [0.1, -0.1, 0.0, 0.2, 0.05]
    r = [2 * x + 0.01 for x in b]
    dates = sessions(6)
    stats = metrics.relative(curve(from_returns(r), dates), curve(from_returns(b), dates))
    active = np.array(r) - np.array(b)
    assert stats.beta == pytest.approx(2.0)
    assert stats.alpha == pytest.approx(0.01 * 252)
    assert stats.correlation == pytest.approx(1.0)
    assert stats.r_squared == pytest.approx(1.0)
    assert stats.tracking_error == pytest.approx(active.std(ddof=1) * SQRT_252)
    assert stats.information_ratio == pytest.approx(
        active.mean() * 252 / (active.std(ddof=1) * SQRT_252)
    )


def test_relative_statistics_against_their_formulas() -> None:
    r = np.array([0.03, -0.01, 0.02, -0.04, 0.01, 0.0])
    b = np.array([0.01, 0.01, -0.02, -0.01, 0.02, 0.005])
    dates = sessions(7)
    stats = metrics.relative(
        curve(from_returns(list(r)), dates), curve(from_returns(list(b)), dates)
    )
    beta = np.cov(r, b, ddof=1)[0, 1] / np.var(b, ddof=1)
    correlation = np.corrcoef(r, b)[0, 1]
    tracking_error = np.std(r - b, ddof=1) * SQRT_252
    assert stats.beta == pytest.approx(beta)
    assert stats.alpha == pytest.approx((r.mean() - beta * b.mean()) * 252)
    assert stats.correlation == pytest.approx(correlation)
    assert stats.r_squared == pytest.approx(correlation**2)
    assert stats.tracking_error == pytest.approx(tracking_error)
    assert stats.information_ratio == pytest.approx((r - b).mean() * 252 / tracking_error)


def test_relative_statistics_use_only_the_dates_both_curves_have() -> None:
    dates = sessions(5)
    portfolio = curve((100, 110, 99, 120, 126), dates)
    # The benchmark lacks the second session: its first return spans sessions 0 to 2.
    benchmark = curve((50, 60, 54, 60), (dates[0], dates[2], dates[3], dates[4]))
    shared = curve((100, 99, 120, 126), (dates[0], dates[2], dates[3], dates[4]))
    assert metrics.relative(portfolio, benchmark) == metrics.relative(shared, benchmark)


def test_relative_statistics_without_overlap_are_none() -> None:
    portfolio = curve((100, 110, 120), sessions(3))
    benchmark = curve((100, 110, 120), sessions(3, date(2025, 1, 2)))
    assert metrics.relative(portfolio, benchmark) == metrics.UNRELATED


def test_relative_statistics_need_two_shared_returns() -> None:
    dates = sessions(2)
    assert metrics.relative(curve((100, 110), dates), curve((100, 90), dates)) == (
        metrics.UNRELATED
    )


def test_a_flat_benchmark_defines_no_beta_alpha_or_correlation() -> None:
    dates = sessions(4)
    stats = metrics.relative(curve((100, 110, 105, 120), dates), curve((50, 50, 50, 50), dates))
    assert (stats.beta, stats.alpha, stats.correlation, stats.r_squared) == (None,) * 4
    assert stats.tracking_error is not None and stats.tracking_error > 0
    assert stats.information_ratio is not None


def test_the_benchmark_itself_has_no_tracking_error_and_no_information_ratio() -> None:
    same = curve((100, 110, 105, 120), sessions(4))
    stats = metrics.relative(same, same)
    assert stats.beta == pytest.approx(1.0)
    assert stats.correlation == pytest.approx(1.0)
    assert stats.tracking_error == 0
    assert stats.information_ratio is None


def test_one_session_defines_only_the_statistics_that_need_no_return() -> None:
    single = curve((100,), (date(2024, 1, 2),))
    assert metrics.curve_metrics(single) == {
        "total_return": 0.0,
        "cagr": None,
        "volatility": None,
        "sharpe": None,
        "sortino": None,
        "max_drawdown": 0.0,
        "max_drawdown_days": 0,
        "calmar": None,
        "best_day": None,
        "worst_day": None,
        "win_rate_days": None,
        "return_1m": None,
        "return_3m": None,
        "return_1y": None,
    }
    assert metrics.turnover(single, (100,)) is None


def test_one_return_has_no_sample_deviation() -> None:
    two = curve((100, 90), sessions(2))
    assert metrics.volatility(two) is None
    assert metrics.sharpe(two) is None
    assert metrics.sortino(two) == pytest.approx(-1 * SQRT_252)


def test_constant_growth_has_no_sharpe_ratio_despite_rounding_residue() -> None:
    steady = curve(from_returns([0.001] * 30), sessions(31))
    assert np.std(steady.returns(), ddof=1) > 0  # the returns differ in their last bits
    assert metrics.sharpe(steady) is None


def test_a_curve_that_never_falls_has_no_sortino_and_no_calmar() -> None:
    rising = curve((100, 101, 103, 104), sessions(4))
    assert metrics.sortino(rising) is None
    assert metrics.max_drawdown(rising) == 0
    assert metrics.max_drawdown_days(rising) == 0
    assert metrics.calmar(rising) is None


def test_portfolio_metrics_hold_every_statistic_in_the_documented_order() -> None:
    result = metrics.portfolio_metrics(
        curve(),
        invested=(0, 60, 90, 54, 135),
        traded=(100, 20, 30, 10, 40),
        orders=(3, 0, 2, 0, 1),
        without_costs=curve(),
    )
    assert list(result) == [
        "total_return",
        "cagr",
        "volatility",
        "sharpe",
        "sortino",
        "max_drawdown",
        "max_drawdown_days",
        "calmar",
        "best_day",
        "worst_day",
        "win_rate_days",
        "return_1m",
        "return_3m",
        "return_1y",
        "time_in_market",
        "turnover",
        "rebalance_count",
        "cost_drag",
    ]
    assert result["cost_drag"] == 0
    assert result["rebalance_count"] == 2


def test_benchmark_metrics_add_the_portfolios_statistics_against_it() -> None:
    dates = sessions(5)
    benchmark = curve((100, 101, 99, 102, 104), dates)
    portfolio = curve((100, 103, 97, 105, 110), dates)
    result = metrics.benchmark_metrics(benchmark, portfolio)
    assert result["total_return"] == pytest.approx(0.04)
    assert result["beta"] == metrics.relative(portfolio, benchmark).beta


def test_a_huge_growth_over_one_day_is_none_rather_than_infinity() -> None:
    assert metrics.cagr(curve((1, 1e6), sessions(2))) is None


@pytest.mark.parametrize(
    ("dates", "values", "message"),
    [
        ((date(2024, 1, 2), date(2024, 1, 2)), (1, 2), "must increase"),
        ((date(2024, 1, 2),), (0,), "must be positive"),
        ((date(2024, 1, 2),), (float("nan"),), "must be positive"),
        ((date(2024, 1, 2),), (1, 2), "one value per date"),
        ((), (), "at least one session"),
    ],
)
def test_a_curve_refuses_values_no_return_can_be_computed_from(
    dates: tuple[date, ...], values: tuple[float, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Curve.of(dates, values)


def test_per_session_inputs_must_cover_every_session() -> None:
    with pytest.raises(ValueError, match="invested needs one value per session"):
        metrics.time_in_market(curve(), (1, 2))


def test_rolling_sharpe_is_the_sharpe_ratio_of_the_trailing_window() -> None:
    values = (100, 103, 101, 104, 104, 108, 107)
    whole = curve(values, sessions(7))
    rolling = metrics.rolling_sharpe(whole, sessions=3)
    assert rolling[:3] == [None, None, None]
    assert rolling[3] == metrics.sharpe(curve(values[:4], sessions(4)))
    assert rolling[6] == metrics.sharpe(curve(values[3:], sessions(7)[3:]))


def test_calendar_returns_chain_each_periods_last_value_from_e0() -> None:
    dates = (date(2023, 12, 20), date(2023, 12, 29), date(2024, 1, 31), date(2024, 2, 1))
    values = (100, 110, 121, 108.9)
    assert metrics.monthly_returns(curve(values, dates)) == pytest.approx(
        {(2023, 12): 0.1, (2024, 1): 0.1, (2024, 2): -0.1}
    )
    assert metrics.yearly_returns(curve(values, dates)) == pytest.approx({2023: 0.1, 2024: -0.01})


# --- against ffn --------------------------------------------------------------------------

FFN_TOLERANCE = 1e-6


def synthetic_equity() -> pd.Series:
    """~500 sessions (business days) of a seeded random walk with drift, a crash and recovery,
    so every statistic is defined and the drawdown is not at either end."""
    rng = np.random.default_rng(20240102)
    returns = rng.normal(0.0005, 0.012, 499)
    returns[200:215] -= 0.02
    index = pd.bdate_range("2022-01-03", periods=500)
    return pd.Series(100_000 * np.cumprod(np.concatenate(([1.0], 1.0 + returns))), index=index)


def ours(equity: pd.Series, rf: float) -> dict[str, float | int | None]:
    return metrics.curve_metrics(
        Curve.of([moment.date() for moment in equity.index], list(equity)), rf
    )


@pytest.mark.parametrize("rf", [0.0, 0.04])
def test_statistics_ffn_computes_agree_with_ffn(rf: float) -> None:
    pytest.importorskip("ffn")
    equity = synthetic_equity()
    theirs = ffn_figures(equity, rf)
    mine = ours(equity, rf)
    for name, expected in theirs.items():
        assert mine[name] == pytest.approx(expected, abs=FFN_TOLERANCE, rel=0), name
