"""Starting a workflow: once per trading day and account unless forced, and only inside the
start window (from the session's last 15 minutes, early closes included, up to the last start:
the close minus EXEC_CLOSE_MARGIN_S minus LAST_START_S). A forced paper run may start at any
time; a forced live run only in the session, up to the last start
(docs/trading-rules.md, Close window).

Once-per-day is enforced by the store itself: an unforced start appends `WorkflowStarted` to
the day's stream expecting it to be empty, so of two racing triggers exactly one wins and the
other is answered with the run that won. A forced start appends to the same stream at its end,
so the day's stream lists every run of that day.

A dry run (docs/trading-rules.md, Dry runs) may start at any time and never touches the day's
stream: its start goes to a `dry-run/` stream of the same key, appended at its end, and its id
starts with `dry-run-`, so it neither blocks nor counts as the day's run and any number of them
can run a day.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass

from shared import market_clock
from shared.events.control import CONTROL_STREAM, halt_of
from shared.events.ids import daily_run_key
from shared.events.workflow import WorkflowConfiguration, WorkflowStarted
from shared.eventstore.errors import ConcurrencyError
from shared.eventstore.store import SqlEventStore
from shared.settings import BrokerKind, Settings
from shared.workflow import DRY_RUN_ID_PREFIX, workflow_state

ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DAY_STREAM_PREFIX = "daily/"
DRY_RUN_STREAM_PREFIX = "dry-run/"


class TriggerRejected(Exception):
    """The request itself is wrong (an account id the broker cannot serve)."""


class TriggerRefused(Exception):
    """Not now: a closed day, outside the close window or past the last start; says when the
    next window opens and its last start."""

    def __init__(
        self, now: dt.datetime, window: tuple[dt.datetime, dt.datetime], *, live: bool
    ) -> None:
        self.now = now
        self.window_start, self.window_end = window
        local = window[0].astimezone(market_clock.NEW_YORK)
        hint = (
            "a live run is refused outside the session and after the last start even with "
            "force=true"
            if live
            else "send force=true to run anyway (paper and simulated only)"
        )
        super().__init__(
            f"outside the close window at {now.isoformat()}; the next window opens "
            f"{local:%Y-%m-%d %H:%M} New York time ({window[0].isoformat()}) and its last start "
            f"is {window[1].isoformat()} (the close minus ALCHEMISER_EXEC_CLOSE_MARGIN_S and "
            f"ALCHEMISER_LAST_START_S); {hint}"
        )


class TradingHaltedError(Exception):
    """The account is halted (docs/trading-rules.md, Halt); the message is the halt's refusal:
    since when, why, and how to resume."""


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


def check_start(now: dt.datetime, settings: Settings, *, force: bool) -> None:
    """May a run start at `now`? Unforced: inside the close window, up to its last start. A
    forced paper run: always (a demo, a test; execution's close guard still holds while the
    session is open). A forced live run: in the session, up to the last start."""
    if force and not settings.is_live:
        return
    cutoff = market_clock.last_start_cutoff(settings)
    session = market_clock.session_for(now)
    if session is not None:
        start, last_start = market_clock.close_window(session, cutoff)
        first = market_clock.session_open(session) if force else start
        if first <= now <= last_start:
            return
    raise TriggerRefused(now, market_clock.next_close_window(now, cutoff), live=settings.is_live)


async def start_workflow(
    store: SqlEventStore,
    settings: Settings,
    *,
    now: dt.datetime,
    force: bool,
    account_id: str,
    requested_by: str,
    dry_run: bool = False,
    email: bool = False,
) -> TriggerOutcome:
    """Start a run, or a dry run (`dry_run`, reported on the channels only with `email`; a run
    is always reported, so `email` changes nothing for it)."""
    check_account(settings, account_id)
    if not dry_run:
        # a dry run never reaches the broker: a halt does not stop it (docs/trading-rules.md, Halt)
        control = [recorded.event for recorded in await store.read_stream(CONTROL_STREAM)]
        halt = halt_of(control, account_id)
        if halt is not None:
            raise TradingHaltedError(halt.refusal())
        check_start(now, settings, force=force)
    day = trading_date(now)
    key = daily_run_key(settings.trading_mode.value, account_id, day)
    workflow_id = str(uuid.uuid4())
    if dry_run:
        workflow_id = f"{DRY_RUN_ID_PREFIX}{workflow_id}"
    started = WorkflowStarted(
        correlation_id=workflow_id,
        account_id=account_id,
        occurred_at=dt.datetime.now(dt.UTC),
        source="strategy",
        requested_by=requested_by,
        configuration=WorkflowConfiguration(live_trading=settings.is_live),
        trading_date=day,
        force=force,
        idempotency_key=f"dry-run:{key}" if dry_run else key,
        workflow_type="dry_run" if dry_run else "trading",
        notify=email or not dry_run,
    )
    if dry_run:
        await store.append(f"{DRY_RUN_STREAM_PREFIX}{key}", None, [started])
        return TriggerOutcome(workflow_id, True, "running")
    day_stream = f"{DAY_STREAM_PREFIX}{key}"
    try:
        await store.append(day_stream, None if force else 0, [started])
    except ConcurrencyError:
        latest = (await store.read_stream(day_stream))[-1].event
        history = await store.read_correlation(latest.correlation_id)
        state = workflow_state([recorded.event for recorded in history])
        return TriggerOutcome(latest.correlation_id, False, state.status if state else "running")
    return TriggerOutcome(workflow_id, True, "running")
