"""What time it is for trading, and when the exchange is open
(docs/trading-rules.md, Market hours / Simulated clock).

Sessions, early closes and holidays come from the XNYS exchange calendar. With the simulated
broker "now" is `ALCHEMISER_SIM_NOW` (or 15 minutes before the close of the bar store's last
session), so a run behaves the same at any real hour; with Alpaca it is the real clock.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

from shared.settings import CLOSE_WINDOW_S, BrokerKind, Settings, SettingsError

if TYPE_CHECKING:
    from exchange_calendars import ExchangeCalendar

NEW_YORK = ZoneInfo("America/New_York")
CLOSE_WINDOW = dt.timedelta(seconds=CLOSE_WINDOW_S)
CALENDAR_START = "2000-01-03"
SESSION_CACHE = 4096
"""Dates whose calendar answers are kept: a lookup in the exchange calendar costs 0.2–0.6 ms
of pandas work, and a broker call or an order decision asks about the same few dates again and
again (docs/performance.md, Where the time goes)."""


class ClockSettings(Protocol):
    """The two settings that decide "now": which broker, and the simulated moment if any."""

    @property
    def broker(self) -> BrokerKind: ...

    @property
    def sim_now(self) -> str | None: ...


@cache
def exchange_calendar() -> ExchangeCalendar:
    """The New York Stock Exchange calendar; built once, since importing it takes a second."""
    import exchange_calendars

    with warnings.catch_warnings():
        # exchange_calendars trips pandas deprecation warnings of its own while it builds.
        warnings.simplefilter("ignore")
        return exchange_calendars.get_calendar("XNYS", start=CALENDAR_START)


def _timestamp(session: dt.date) -> object:
    import pandas

    return pandas.Timestamp(session)


def _in_calendar(session: dt.date) -> None:
    calendar = exchange_calendar()
    first, last = calendar.first_session.date(), calendar.last_session.date()
    if not first <= session <= last:
        raise ValueError(
            f"{session.isoformat()} is outside the exchange calendar ({first} to {last}); "
            "use a date inside it (check ALCHEMISER_SIM_NOW and the bar store's dates)"
        )


@lru_cache(maxsize=SESSION_CACHE)
def is_session(day: dt.date) -> bool:
    """Whether the exchange trades on `day` (weekends and holidays do not)."""
    _in_calendar(day)
    return bool(exchange_calendar().is_session(_timestamp(day)))


@lru_cache(maxsize=SESSION_CACHE)
def session_open(session: dt.date) -> dt.datetime:
    """The session's open, in New York time."""
    _require_session(session)
    opened = exchange_calendar().session_open(_timestamp(session))
    return opened.to_pydatetime().astimezone(NEW_YORK)  # type: ignore[no-any-return]


@lru_cache(maxsize=SESSION_CACHE)
def session_close(session: dt.date) -> dt.datetime:
    """The session's close in New York time, early closes (13:00) included."""
    _require_session(session)
    closed = exchange_calendar().session_close(_timestamp(session))
    return closed.to_pydatetime().astimezone(NEW_YORK)  # type: ignore[no-any-return]


def _require_session(session: dt.date) -> None:
    if not is_session(session):
        raise ValueError(
            f"{session.isoformat()} is not a trading session of the exchange "
            "(weekend or holiday); pass a session date"
        )


def _aware(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; pass a timezone-aware datetime")
    return moment


def session_for(moment: dt.datetime) -> dt.date | None:
    """The trading date of `moment`: its New York date when that is a session, else None."""
    day = _aware(moment).astimezone(NEW_YORK).date()
    return day if is_session(day) else None


def is_open_at(moment: dt.datetime) -> bool:
    """Whether `moment` falls inside a session (open included, close excluded)."""
    session = session_for(moment)
    return session is not None and session_open(session) <= moment < session_close(session)


def close_window(
    session: dt.date, cutoff: dt.timedelta = dt.timedelta(0)
) -> tuple[dt.datetime, dt.datetime]:
    """The session's last 15 minutes, when a daily run may start unforced: from 15 minutes
    before the close to `cutoff` before it (the last start)."""
    close = session_close(session)
    return close - CLOSE_WINDOW, close - cutoff


@lru_cache(maxsize=SESSION_CACHE)
def next_session(day: dt.date) -> dt.date:
    """The first session on or after `day`."""
    _in_calendar(day)
    found = exchange_calendar().date_to_session(_timestamp(day), direction="next")
    return found.date()  # type: ignore[no-any-return]


def next_close_window(
    moment: dt.datetime, cutoff: dt.timedelta = dt.timedelta(0)
) -> tuple[dt.datetime, dt.datetime]:
    """The close window (see `close_window`) that `moment` is in, or the first one after it."""
    day = _aware(moment).astimezone(NEW_YORK).date()
    session = next_session(day)
    start, end = close_window(session, cutoff)
    if moment >= end:
        start, end = close_window(next_session(session + dt.timedelta(days=1)), cutoff)
    return start, end


def last_start_cutoff(settings: Settings) -> dt.timedelta:
    """How long before the close the last start is: the close guard's margin plus the time a
    run needs to plan and place its orders before the guard begins."""
    return dt.timedelta(seconds=settings.exec_close_margin_s + settings.last_start_s)


def next_open(moment: dt.datetime) -> dt.datetime:
    """The first session open strictly after `moment`."""
    day = _aware(moment).astimezone(NEW_YORK).date()
    session = next_session(day)
    if session_open(session) <= moment:
        session = next_session(session + dt.timedelta(days=1))
    return session_open(session)


def next_close(moment: dt.datetime) -> dt.datetime:
    """The first session close strictly after `moment` (today's while the session is open)."""
    day = _aware(moment).astimezone(NEW_YORK).date()
    session = next_session(day)
    if session_close(session) <= moment:
        session = next_session(session + dt.timedelta(days=1))
    return session_close(session)


def sessions_between(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every session from `start` to `end`, both included."""
    if end < start:
        return []
    _in_calendar(start)
    _in_calendar(end)
    found = exchange_calendar().sessions_in_range(_timestamp(start), _timestamp(end))
    return [stamp.date() for stamp in found]


@dataclass(frozen=True)
class Staleness:
    """The sessions that traded after a last bar, up to a later day."""

    sessions: list[dt.date]
    beyond_calendar: bool
    """The day is past the calendar's end: `sessions` counts only those up to that end."""

    def describe(self) -> str:
        """E.g. "4 sessions (2024-01-09 to 2024-01-12)"."""
        count = len(self.sessions)
        text = f"{'at least ' if self.beyond_calendar else ''}{count} session{'s' * (count != 1)}"
        if not self.sessions:
            return text
        end = ", where the exchange calendar ends" if self.beyond_calendar else ""
        return f"{text} ({self.sessions[0].isoformat()} to {self.sessions[-1].isoformat()}{end})"


def sessions_after(last_bar: dt.date, day: dt.date) -> Staleness:
    """The sessions after `last_bar` up to `day` included: how many daily bars are missing for
    `day`. Without a weekday in between none can be, and the calendar (a second to build) is
    not loaded."""
    start = last_bar + dt.timedelta(days=1)
    if not any((start + dt.timedelta(days=n)).weekday() < 5 for n in range((day - last_bar).days)):
        return Staleness([], beyond_calendar=False)
    calendar_end = exchange_calendar().last_session.date()
    return Staleness(sessions_between(start, min(day, calendar_end)), day > calendar_end)


def last_completed_session(moment: dt.datetime) -> dt.date:
    """The latest session whose close is at or before `moment`: the newest complete daily bar."""
    day = _aware(moment).astimezone(NEW_YORK).date()
    while not (is_session(day) and session_close(day) <= moment):
        day -= dt.timedelta(days=1)
    return day


def default_sim_now(last_bar_session: dt.date) -> dt.datetime:
    """15 minutes before that session's close, in New York time: the start of its close
    window (15:45 on a normal day, 12:45 on an early close)."""
    start, _ = close_window(last_bar_session)
    return start.astimezone(NEW_YORK)


def parse_sim_now(value: str) -> dt.datetime:
    """`ALCHEMISER_SIM_NOW` as an aware datetime; a naive value is New York time."""
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise SettingsError(
            f"ALCHEMISER_SIM_NOW: not an ISO datetime (got {value!r}); "
            "write it like 2024-11-29T12:45:00 (New York time) or 2024-11-29T17:45:00+00:00"
        ) from None
    return moment.replace(tzinfo=NEW_YORK) if moment.tzinfo is None else moment


def market_now(settings: ClockSettings, bar_store_last_session: dt.date | None) -> dt.datetime:
    """ "Now" for the broker's clock, the close-window check and the trading date.

    The simulated broker stands still at `ALCHEMISER_SIM_NOW`, else at the start of the bar
    store's last close window; without a bar store (or with Alpaca) it is the real clock."""
    if settings.broker is BrokerKind.SIMULATED:
        return simulated_now(settings.sim_now, bar_store_last_session)
    return dt.datetime.now(dt.UTC)


def simulated_now(sim_now: str | None, bar_store_last_session: dt.date | None) -> dt.datetime:
    """The simulated broker's "now": `ALCHEMISER_SIM_NOW` when set, else the start of the bar
    store's last close window, else (no bars yet) the real clock."""
    if sim_now:
        return parse_sim_now(sim_now)
    if bar_store_last_session is not None:
        return default_sim_now(bar_store_last_session)
    return dt.datetime.now(dt.UTC)
