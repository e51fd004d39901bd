"""Rebalance modes end to end on hand-made bars: on which sessions the backtest places orders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest

from services.backtest.backtest import Backtest
from services.backtest.rebalance_schedule import RebalanceMode
from tests.unit.backtest.handmade import AAA_ABOVE_11, HALF_AND_HALF, market, request, strategies


def d(month: int, day: int, year: int = 2024) -> date:
    return date(year, month, day)


@dataclass(frozen=True)
class Case:
    source: str
    mode: RebalanceMode
    days: list[date]
    aaa: list[float]
    trades_on: list[date]
    corridor: str | None = None
    min_trade: str = "0"


WEEK = [d(1, 2), d(1, 3), d(1, 4), d(1, 5), d(1, 8)]

CASES = {
    "daily-trades-every-drift": Case(HALF_AND_HALF, "daily", WEEK, [10, 11, 12, 12.5, 12.6], WEEK),
    "corridor-trades-when-a-weight-leaves-the-band": Case(
        HALF_AND_HALF, "none", WEEK, [10, 11, 12, 12.5, 12.6], [d(1, 2), d(1, 5)], "0.05"
    ),
    "none-holds-a-drift-without-a-corridor": Case(
        HALF_AND_HALF, "none", WEEK, [10, 11, 12, 12.5, 12.6], [d(1, 2)]
    ),
    "none-trades-on-each-branch-switch": Case(
        AAA_ABOVE_11, "none", WEEK, [10, 10.5, 11.5, 12, 10.8], [d(1, 2), d(1, 4), d(1, 8)]
    ),
    "monthly-ignores-a-branch-switch-inside-the-month": Case(
        AAA_ABOVE_11,
        "monthly",
        [d(1, 29), d(1, 30), d(1, 31), d(2, 1)],
        [10, 12, 12, 12],
        [d(1, 29), d(2, 1)],
    ),
    "monthly-trades-on-the-first-session-of-each-month": Case(
        HALF_AND_HALF,
        "monthly",
        [d(1, 30), d(1, 31), d(2, 1), d(2, 2), d(3, 1)],
        [10, 11, 12, 13, 14],
        [d(1, 30), d(2, 1), d(3, 1)],
    ),
    "a-month-opening-on-a-holiday-trades-on-its-first-session": Case(
        HALF_AND_HALF,
        "monthly",
        [d(12, 28, 2023), d(12, 29, 2023), d(1, 2), d(1, 3)],
        [10, 11, 12, 13],
        [d(12, 28, 2023), d(1, 2)],
    ),
    "a-week-opening-on-a-holiday-trades-on-its-tuesday": Case(
        HALF_AND_HALF,
        "weekly",
        [d(1, 10), d(1, 11), d(1, 12), d(1, 16), d(1, 17)],
        [10, 11, 12, 13, 14],
        [d(1, 10), d(1, 16)],
    ),
    "the-minimum-trade-holds-a-small-drift-on-a-rebalance-date": Case(
        HALF_AND_HALF,
        "monthly",
        [d(1, 30), d(1, 31), d(2, 1)],
        [10, 10.1, 10.2],
        [d(1, 30)],
        min_trade="0.05",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_orders_are_placed_on_the_sessions_the_mode_trades(case: Case) -> None:
    bars = market(case.days, {"AAA": case.aaa, "BBB": [10.0] * len(case.days)})
    backtest = Backtest(
        request(
            strategies(strategy=case.source),
            bars,
            rebalance=case.mode,
            corridor=case.corridor,
            min_trade=case.min_trade,
        )
    )

    run = backtest.portfolio().run

    assert [run.dates[trades.session] for trades in run.trades] == case.trades_on
