"""The sessions a backtest runs over: where it may start, where it ends, and the data problems
that stop it (each one line naming the thing)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.backtest.backtest import Backtest
from services.backtest.errors import BacktestError
from services.backtest.timeline import build_timeline
from tests.unit.backtest.handmade import HALF_AND_HALF, market, request, strategies

DAYS = [date(2024, 3, 4) + timedelta(days=i) for i in range(5)] + [
    date(2024, 3, 11) + timedelta(days=i) for i in range(5)
]
AVERAGE = (
    '(defsymphony "average" {}\n'
    '  (if (> (current-price "AAA") (moving-average-price "AAA" {:window 3}))\n'
    '      (asset "AAA") (asset "BBB")))'
)
RISING = [10.0 + i for i in range(len(DAYS))]
FLAT = [10.0] * len(DAYS)


def test_the_start_is_the_first_session_with_the_history_every_strategy_needs() -> None:
    bars = market(DAYS, {"AAA": RISING, "BBB": FLAT}).bars

    close = build_timeline(strategies(average=AVERAGE), bars, start=None, end=None, timing="close")
    previous = build_timeline(
        strategies(average=AVERAGE), bars, start=None, end=None, timing="previous-close"
    )

    assert close.run_dates[0] == DAYS[2]
    assert previous.run_dates[0] == DAYS[3]
    assert close.warnings[0].startswith(f"first usable date {DAYS[2]}, limited by average.clj")


def test_an_earlier_start_names_the_strategy_the_indicator_call_and_the_asset() -> None:
    bars = market(DAYS, {"AAA": RISING, "BBB": FLAT}).bars

    with pytest.raises(BacktestError) as error:
        build_timeline(strategies(average=AVERAGE), bars, start=DAYS[0], end=None, timing="close")

    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"--start {DAYS[0]} is too early: average.clj on {DAYS[1]}: ")
    assert 'average.clj:2:32: (moving-average-price "AAA" {:window 3})' in message
    assert "insufficient history" in message
    assert f"(AAA's first bar is {DAYS[0]})" in message
    assert message.endswith(f"the earliest start is {DAYS[2]}")


def test_a_symbol_starting_later_limits_the_start_and_is_a_data_warning() -> None:
    late = [float("nan")] * 3 + FLAT[3:]
    bars = market(DAYS, {"AAA": RISING, "BBB": late}).bars

    timeline = build_timeline(
        strategies(half=HALF_AND_HALF), bars, start=None, end=None, timing="close"
    )

    assert timeline.run_dates[0] == DAYS[3]
    assert f"BBB's first bar is {DAYS[3]}, later than the other symbols' ({DAYS[0]})" in (
        timeline.warnings
    )
    with pytest.raises(
        BacktestError, match=rf"BBB \(named by half.clj\) has no bar before {DAYS[3]}"
    ):
        build_timeline(
            strategies(half=HALF_AND_HALF), bars, start=DAYS[1], end=None, timing="close"
        )


def test_a_symbol_missing_mid_run_is_an_error_naming_it_and_the_date() -> None:
    gap = [*FLAT[:6], float("nan"), *FLAT[7:]]
    bars = market(DAYS, {"AAA": RISING, "BBB": gap}).bars

    with pytest.raises(BacktestError, match=rf"^BBB has no bar on {DAYS[6]}, a session on which"):
        build_timeline(strategies(half=HALF_AND_HALF), bars, start=None, end=None, timing="close")


def test_an_empty_date_range_is_an_error() -> None:
    bars = market(DAYS, {"AAA": RISING, "BBB": FLAT}).bars

    with pytest.raises(BacktestError, match=r"^no session between --start 2024-04-01 and "):
        build_timeline(
            strategies(half=HALF_AND_HALF), bars, start=date(2024, 4, 1), end=None, timing="close"
        )


def test_start_and_end_between_sessions_round_inwards_and_a_late_end_is_clamped() -> None:
    bars = market(DAYS, {"AAA": RISING, "BBB": FLAT}).bars

    inside = build_timeline(
        strategies(half=HALF_AND_HALF),
        bars,
        start=date(2024, 3, 9),
        end=date(2024, 3, 12),
        timing="close",
    )
    clamped = build_timeline(
        strategies(half=HALF_AND_HALF), bars, start=None, end=date(2024, 6, 1), timing="close"
    )

    assert inside.run_dates == (DAYS[5], DAYS[6])
    assert clamped.run_dates[-1] == DAYS[-1]
    assert clamped.warnings[0] == (
        f"--end 2024-06-01 is after the last bar ({DAYS[-1]}); the backtest ends there"
    )


def test_under_previous_close_a_branch_switch_is_traded_one_session_later() -> None:
    switch = [10.0, 10.5, 11.5, 12.0, 12.5, 13.0, 13.5, 14.0, 14.5, 15.0]
    branch = '(defsymphony "b" {} (if (> (current-price "AAA") 11) (asset "AAA") (asset "BBB")))'
    bars = market(DAYS, {"AAA": switch, "BBB": FLAT})

    close = Backtest(request(strategies(b=branch), bars, rebalance="none")).portfolio().run
    previous = (
        Backtest(request(strategies(b=branch), bars, rebalance="none", timing="previous-close"))
        .portfolio()
        .run
    )

    assert [close.dates[t.session] for t in close.trades] == [DAYS[0], DAYS[2]]
    assert [previous.dates[t.session] for t in previous.trades] == [DAYS[1], DAYS[3]]
