"""Starting a workflow: once per trading day and account unless forced, and only inside the
close window (the session's last 15 minutes, early closes included) unless forced.

Once-per-day is enforced by the store itself: an unforced start appends `WorkflowStarted` to
the day's stream expecting it to be empty, so of two racing triggers exactly one wins and the
other is answered with the run that won. A forced start appends to the same stream at its end,
so the day's stream lists every run of that day.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass

from shared import market_clock
from shared.events.ids import daily_run_key
from shared.events.workflow import WorkflowConfiguration, WorkflowStarted
from shared.eventstore.errors import ConcurrencyError
from shared.eventstore.store import SqlEventStore
from shared.settings import BrokerKind, Settings
from shared.workflow import workflow_state

ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DAY_STREAM_PREFIX = "daily/"


class TriggerRejected(Exception):
    """The request itself is wrong (an account id the broker cannot serve)."""


class TriggerRefused(Exception):
    """Not now: a closed day or outside the close window; says when the next window opens."""

    def __init__(self, now: dt.datetime, window: tuple[dt.datetime, dt.datetime]) -> None:
        self.now = now
        self.window_start, self.window_end = window
        local = window[0].astimezone(market_clock.NEW_YORK)
        super().__init__(
            f"outside the close window at {now.isoformat()}; the next window opens "
            f"{local:%Y-%m-%d %H:%M} New York time ({window[0].isoformat()}) and closes "
            f"{window[1].isoformat()}; send force=true to run anyway"
        )


@dataclass(frozen=True)
class TriggerOutcome:
    workflow_id: str
    created: bool
    status: str


def check_account(settings: Settings, account_id: str) -> None:
    if not ACCOUNT_ID.match(account_id):
        raise TriggerRejected(
            f"account_id {account_id!r}: letters, digits, '_', '.', '-' only, at most 64 characters"
        )
    if settings.broker is BrokerKind.ALPACA and account_id != "default":
        raise TriggerRejected(
            f"account_id {account_id!r}: the Alpaca broker serves one account, 'default'"
        )


def trading_date(now: dt.datetime) -> dt.date:
    """The session `now` falls in, else New York's calendar date (a forced run on a closed day)."""
    return market_clock.session_for(now) or now.astimezone(market_clock.NEW_YORK).date()


def check_window(now: dt.datetime) -> None:
    session = market_clock.session_for(now)
    if session is not None:
        start, end = market_clock.close_window(session)
        if start <= now < end:
            return
    raise TriggerRefused(now, market_clock.next_close_window(now))


async def start_workflow(
    store: SqlEventStore,
    settings: Settings,
    *,
    now: dt.datetime,
    force: bool,
    account_id: str,
    requested_by: str,
) -> TriggerOutcome:
    check_account(settings, account_id)
    if not force:
        check_window(now)
    day = trading_date(now)
    key = daily_run_key(settings.trading_mode.value, account_id, day)
    workflow_id = str(uuid.uuid4())
    started = WorkflowStarted(
        correlation_id=workflow_id,
        account_id=account_id,
        occurred_at=dt.datetime.now(dt.UTC),
        source="strategy",
        requested_by=requested_by,
        configuration=WorkflowConfiguration(live_trading=settings.is_live),
        trading_date=day,
        force=force,
        idempotency_key=key,
    )
    day_stream = f"{DAY_STREAM_PREFIX}{key}"
    try:
        await store.append(day_stream, None if force else 0, [started])
    except ConcurrencyError:
        latest = (await store.read_stream(day_stream))[-1].event
        history = await store.read_correlation(latest.correlation_id)
        state = workflow_state([recorded.event for recorded in history])
        return TriggerOutcome(latest.correlation_id, False, state.status if state else "running")
    return TriggerOutcome(workflow_id, True, "running")
