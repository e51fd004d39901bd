from __future__ import annotations

import datetime as dt

import pytest

from shared.market_clock import (
    NEW_YORK,
    close_window,
    default_sim_now,
    is_open_at,
    market_now,
    next_close,
    next_close_window,
    next_open,
    session_close,
    session_for,
    sessions_between,
)
from shared.settings import BrokerKind, SettingsError, load_settings

NORMAL_DAY = dt.date(2024, 11, 27)
THANKSGIVING = dt.date(2024, 11, 28)
DAY_AFTER_THANKSGIVING = dt.date(2024, 11, 29)
CHRISTMAS_EVE = dt.date(2024, 12, 24)
SATURDAY = dt.date(2024, 11, 30)


def new_york(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK)


def test_a_normal_session_closes_at_four_and_its_window_starts_at_three_forty_five() -> None:
    start, end = close_window(NORMAL_DAY)

    assert start == new_york(NORMAL_DAY, 15, 45)
    assert end == new_york(NORMAL_DAY, 16)


@pytest.mark.parametrize("early_close", [DAY_AFTER_THANKSGIVING, CHRISTMAS_EVE])
def test_an_early_close_moves_the_window_to_twelve_forty_five(early_close: dt.date) -> None:
    start, end = close_window(early_close)

    assert start == new_york(early_close, 12, 45)
    assert end == new_york(early_close, 13)


def test_a_holiday_and_a_weekend_have_no_session() -> None:
    assert session_for(new_york(THANKSGIVING, 15, 50)) is None
    assert session_for(new_york(SATURDAY, 15, 50)) is None
    assert session_for(new_york(NORMAL_DAY, 15, 50)) == NORMAL_DAY


def test_the_trading_date_is_the_new_york_date_not_the_utc_date() -> None:
    late_evening_utc_next_day = dt.datetime(2024, 11, 28, 1, 0, tzinfo=dt.UTC)

    assert session_for(late_evening_utc_next_day) == NORMAL_DAY


def test_default_sim_now_is_fifteen_minutes_before_the_close() -> None:
    assert default_sim_now(NORMAL_DAY) == new_york(NORMAL_DAY, 15, 45)
    assert default_sim_now(DAY_AFTER_THANKSGIVING) == new_york(DAY_AFTER_THANKSGIVING, 12, 45)
    assert default_sim_now(CHRISTMAS_EVE).hour == 12


def test_default_sim_now_of_a_holiday_is_refused_with_the_date() -> None:
    with pytest.raises(ValueError, match="2024-11-28 is not a trading session"):
        default_sim_now(THANKSGIVING)


def test_the_session_is_open_between_open_and_close_only() -> None:
    assert is_open_at(new_york(NORMAL_DAY, 9, 30))
    assert is_open_at(new_york(DAY_AFTER_THANKSGIVING, 12, 59))
    assert not is_open_at(new_york(DAY_AFTER_THANKSGIVING, 13, 0))
    assert not is_open_at(new_york(NORMAL_DAY, 9, 29))
    assert not is_open_at(new_york(THANKSGIVING, 12))


def test_next_close_window_skips_the_holiday_to_the_early_close() -> None:
    after_the_close = new_york(NORMAL_DAY, 16, 30)

    assert next_close_window(after_the_close) == close_window(DAY_AFTER_THANKSGIVING)


def test_next_close_window_is_the_current_one_while_inside_it() -> None:
    inside = new_york(NORMAL_DAY, 15, 50)

    assert next_close_window(inside) == close_window(NORMAL_DAY)


def test_next_open_and_next_close_over_a_weekend() -> None:
    saturday_noon = new_york(SATURDAY, 12)

    assert next_open(saturday_noon) == new_york(dt.date(2024, 12, 2), 9, 30)
    assert next_close(saturday_noon) == new_york(dt.date(2024, 12, 2), 16)


def test_next_close_during_an_early_close_session_is_that_afternoon() -> None:
    assert next_close(new_york(DAY_AFTER_THANKSGIVING, 10)) == session_close(DAY_AFTER_THANKSGIVING)
    assert next_open(new_york(DAY_AFTER_THANKSGIVING, 10)) == new_york(dt.date(2024, 12, 2), 9, 30)


def test_sessions_between_leaves_out_christmas_and_the_weekend() -> None:
    assert sessions_between(dt.date(2024, 12, 20), dt.date(2024, 12, 27)) == [
        dt.date(2024, 12, 20),
        dt.date(2024, 12, 23),
        dt.date(2024, 12, 24),
        dt.date(2024, 12, 26),
        dt.date(2024, 12, 27),
    ]


def test_market_now_reads_a_naive_sim_now_as_new_york_time() -> None:
    settings = load_settings(broker=BrokerKind.SIMULATED, sim_now="2024-11-29T12:50:00")

    assert market_now(settings, NORMAL_DAY) == new_york(DAY_AFTER_THANKSGIVING, 12, 50)


def test_market_now_keeps_an_explicit_offset() -> None:
    settings = load_settings(broker=BrokerKind.SIMULATED, sim_now="2024-11-27T20:50:00+00:00")

    assert market_now(settings, None) == new_york(NORMAL_DAY, 15, 50)


def test_market_now_without_sim_now_is_the_bar_stores_close_window() -> None:
    settings = load_settings(broker=BrokerKind.SIMULATED, sim_now=None)

    assert market_now(settings, CHRISTMAS_EVE) == new_york(CHRISTMAS_EVE, 12, 45)


def test_market_now_with_alpaca_is_the_real_clock() -> None:
    settings = load_settings(broker=BrokerKind.ALPACA, sim_now="2024-11-29T12:50:00")
    before = dt.datetime.now(dt.UTC)

    now = market_now(settings, CHRISTMAS_EVE)

    assert before <= now <= dt.datetime.now(dt.UTC)


def test_a_bad_sim_now_names_the_variable_and_the_format_at_start() -> None:
    with pytest.raises(SettingsError, match="ALCHEMISER_SIM_NOW: not an ISO datetime"):
        load_settings(broker=BrokerKind.SIMULATED, sim_now="friday afternoon")
