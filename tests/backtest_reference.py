"""The independent references a backtest is checked against: bt's simulation of given target
weights, to which the backtest's equity curve is compared when every live rule is off (daily
rebalancing, no cash reserve, no minimum trade, no slippage, no fees), and ffn's statistics of an
equity curve.

bt trades to the target weights at each listed session's close, in fractional shares, and holds
on sessions the weights do not list. It prepends a dummy row, a day before the first session,
holding the initial capital before anything is bought; that row is dropped, so the first value is
the capital at the start session's close after its trades, as our E_0.
"""

from __future__ import annotations

import warnings

import pandas as pd


def bt_equity(closes: pd.DataFrame, target_weights: pd.DataFrame, capital: float) -> pd.Series:
    """The strategy's value at each session of `closes` (a column per symbol, a row per
    session) when it trades to `target_weights` (a row per session to trade on, weights
    summing to at most 1; the rest is cash) from `capital`."""
    import bt

    strategy = bt.Strategy("targets", [bt.algos.WeighTarget(target_weights), bt.algos.Rebalance()])
    backtest = bt.Backtest(
        strategy,
        closes,
        initial_capital=capital,
        integer_positions=False,
        progress_bar=False,
    )
    with warnings.catch_warnings():
        # bt and ffn warn about pandas deprecations of their own, nothing about the result.
        warnings.simplefilter("ignore")
        bt.run(backtest)
    values: pd.Series = backtest.strategy.values
    return values.iloc[1:]


def ffn_figures(equity: pd.Series, rf: float) -> dict[str, float]:
    """The statistics ffn 1.4 also computes, under our names, annualised over 252 sessions;
    ffn's maximum drawdown is negative, ours its negation."""
    import ffn

    stats = ffn.PerformanceStats(equity, rf=rf, annualization_factor=252)
    return {
        "total_return": stats.total_return,
        "cagr": stats.cagr,
        "volatility": stats.daily_vol,
        "sharpe": stats.daily_sharpe,
        "sortino": stats.daily_sortino,
        "max_drawdown": -stats.max_drawdown,
        "calmar": stats.calmar,
        "best_day": stats.best_day,
        "worst_day": stats.worst_day,
    }
