"""When a run may start (docs/trading-rules.md, Close window): unforced inside the close window
up to the last start (the close minus EXEC_CLOSE_MARGIN_S minus LAST_START_S, 15:53 with the
defaults); forced in paper at any time; forced in live only in the session, up to the last
start. A refusal names the next window and its last start."""

from __future__ import annotations

import datetime as dt

import pytest

from services.strategy.trigger import TriggerRefused, check_start
from shared.market_clock import NEW_YORK
from shared.settings import Settings, load_settings

PAPER = load_settings()
LIVE = load_settings(broker="alpaca", trading_mode="live")
TUESDAY = dt.date(2024, 11, 26)
EARLY_CLOSE = dt.date(2024, 11, 29)  # the day after Thanksgiving: closes at 13:00


def at(day: dt.date, hh: int, mm: int, ss: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hh, mm, ss), tzinfo=NEW_YORK)


ROWS = {
    "unforced at the window's start": (at(TUESDAY, 15, 45), False, PAPER, True),
    "unforced at the last start": (at(TUESDAY, 15, 53), False, PAPER, True),
    "unforced a second after the last start": (at(TUESDAY, 15, 53, 1), False, PAPER, False),
    "unforced in the morning": (at(TUESDAY, 11, 0), False, PAPER, False),
    "unforced live inside the window": (at(TUESDAY, 15, 50), False, LIVE, True),
    "forced paper after the last start": (at(TUESDAY, 15, 53, 1), True, PAPER, True),
    "forced paper on a Saturday": (at(dt.date(2024, 11, 30), 11, 0), True, PAPER, True),
    "forced live in the morning": (at(TUESDAY, 11, 0), True, LIVE, True),
    "forced live after the last start": (at(TUESDAY, 15, 53, 1), True, LIVE, False),
    "forced live after the close": (at(TUESDAY, 16, 30), True, LIVE, False),
    "forced live before the open": (at(TUESDAY, 9, 0), True, LIVE, False),
    "forced live on a Saturday": (at(dt.date(2024, 11, 30), 11, 0), True, LIVE, False),
    "unforced early close at 12:50": (at(EARLY_CLOSE, 12, 50), False, PAPER, True),
    "unforced early close after its last start": (at(EARLY_CLOSE, 12, 53, 1), False, PAPER, False),
}


@pytest.mark.parametrize(("now", "force", "settings", "accepted"), ROWS.values(), ids=ROWS.keys())
def test_a_run_starts_only_when_the_rules_allow(
    now: dt.datetime, force: bool, settings: Settings, accepted: bool
) -> None:
    if accepted:
        check_start(now, settings, force=force)
    else:
        with pytest.raises(TriggerRefused):
            check_start(now, settings, force=force)


def test_a_refusal_after_the_last_start_names_the_next_sessions_window_and_last_start() -> None:
    with pytest.raises(TriggerRefused) as refused:
        check_start(at(TUESDAY, 15, 53, 1), LIVE, force=True)

    wednesday = dt.date(2024, 11, 27)
    assert (refused.value.window_start, refused.value.window_end) == (
        at(wednesday, 15, 45),
        at(wednesday, 15, 53),
    )
    assert "even with force=true" in str(refused.value)


def test_the_last_start_moves_with_the_margin_and_the_last_start_setting() -> None:
    settings = load_settings(exec_close_margin_s=60, last_start_s=60)

    check_start(at(TUESDAY, 15, 58), settings, force=False)
    with pytest.raises(TriggerRefused) as refused:
        check_start(at(TUESDAY, 15, 58, 1), settings, force=False)
    assert refused.value.window_end == at(dt.date(2024, 11, 27), 15, 58)
    assert "force=true to run anyway" in str(refused.value)


def test_a_margin_and_last_start_that_fill_the_close_window_are_refused_at_start() -> None:
    with pytest.raises(Exception, match="ALCHEMISER_LAST_START_S"):
        load_settings(exec_close_margin_s=600, last_start_s=300)
