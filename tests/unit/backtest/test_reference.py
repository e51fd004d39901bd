"""The bt reference harness itself, against daily rebalancing worked out by hand, before the
equivalence test relies on it."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.backtest_reference import bt_equity

pytest.importorskip("bt")

SESSIONS = pd.bdate_range("2024-01-02", periods=6)
CLOSES = pd.DataFrame(
    {"A": [10, 11, 12, 11, 13, 14.0], "B": [20, 19, 21, 22, 20, 21.0]}, index=SESSIONS
)


def test_daily_targets_grow_by_each_sessions_weighted_price_change() -> None:
    weights = pd.DataFrame(
        {"A": [0.5, 0.5, 1.0, 0.0, 0.3, 0.3], "B": [0.5, 0.5, 0.0, 1.0, 0.7, 0.7]},
        index=SESSIONS,
    )
    expected = [1000.0]
    for i in range(1, len(SESSIONS)):
        growth = sum(
            weights.iloc[i - 1][s] * CLOSES.iloc[i][s] / CLOSES.iloc[i - 1][s] for s in "AB"
        )
        expected.append(expected[-1] * growth)
    equity = bt_equity(CLOSES, weights, 1000.0)
    assert list(equity.index) == list(SESSIONS)
    assert list(equity) == pytest.approx(expected, rel=1e-12)


def test_sessions_without_targets_hold_the_shares_and_weights_below_one_keep_cash() -> None:
    weights = pd.DataFrame({"A": [0.6], "B": [0.0]}, index=SESSIONS[:1])
    equity = bt_equity(CLOSES, weights, 1000.0)
    shares = 600.0 / 10
    assert list(equity) == pytest.approx([400.0 + shares * price for price in CLOSES["A"]])
