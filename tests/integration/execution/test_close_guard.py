"""The close guard against the loopback Alpaca, on one clock shared by execution and the
loopback (docs/trading-rules.md, Close guard / Close window): a run started just inside its last
start, with 50 ms of broker latency and a re-peg still pending when the guard begins. Nothing is
sent after the close minus the margin, no order is left open (`accepted`) for the next session,
`TradeExecuted` lists what was not placed and the email names each of those orders and why.

The margins are shortened (2 s guard, 1.5 s last start) so the run takes a few seconds."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from services.execution.executor import Executor
from services.execution.machine import SERVICE
from services.notify.rendering import render_workflow
from services.strategy.trigger import TriggerRefused, check_start
from shared.broker.alpaca import AlpacaBroker
from shared.broker.port import Broker
from shared.bus.memory import InMemoryBus
from shared.events import Event, OrderCancelled, OrderRequested
from shared.events.trades import TradeExecuted
from shared.eventstore import timers
from shared.eventstore.store import SqlEventStore
from shared.market_clock import NEW_YORK
from shared.messaging.consumer import Consumer
from shared.service.runtime import PeriodicRunner
from shared.workflow import is_finished
from tests.fakes.alpaca import FillMode, FillRule, running_alpaca
from tests.fakes.clock import ControlledClock
from tests.integration.execution.world import fast_settings, message, migrated_sqlite, plan_event

CLOSE = dt.datetime(2026, 11, 24, 16, 0, tzinfo=NEW_YORK)
MARGIN_S = 2.0
LAST_START_S = 1.5
GUARD = CLOSE - dt.timedelta(seconds=MARGIN_S)
STARTED = GUARD - dt.timedelta(seconds=LAST_START_S + 0.2)
"""0.2 s before the last start: the trigger is still accepted."""
WORKFLOW = "wf-close-guard"
PLAN = [
    ("AAA", "SELL", "-1000", "0"),  # fills at once
    ("DDD", "SELL", "-1000", "0"),  # rests: its re-peg is due after the guard
    ("BBB", "BUY", "1500", "0.5"),  # the BUY phase opens after the guard
    ("CCC", "BUY", "500", "0.2"),
]


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[str]:
    yield await migrated_sqlite(tmp_path)


async def run_timers(
    executor: Executor, store: SqlEventStore, clock: ControlledClock
) -> list[Event]:
    """The timer loop on the shared clock: claim what is due by the clock's now, fire, commit."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        due = await timers.claim_due(store, SERVICE, clock(), 10.0)
        if due:
            await PeriodicRunner(SERVICE, store).record(await executor.fire(store, WORKFLOW, due))
        events = [recorded.event for recorded in await store.read_correlation(WORKFLOW)]
        if is_finished(events):
            return events
        await asyncio.sleep(0.02)
    raise AssertionError("the workflow did not finish within 20 s")


async def test_nothing_is_sent_after_the_close_guard_and_nothing_is_left_for_tomorrow(
    database: str, tmp_path: Path
) -> None:
    clock = ControlledClock(STARTED)
    settings = fast_settings(
        database,
        tmp_path,
        broker="alpaca",
        exec_poll_s=0.1,
        exec_fill_wait_s=3.0,
        exec_close_margin_s=MARGIN_S,
        last_start_s=LAST_START_S,
    )
    check_start(clock(), settings, force=False)  # just inside the last start
    with pytest.raises(TriggerRefused):
        check_start(clock() + dt.timedelta(seconds=0.3), settings, force=False)

    with running_alpaca(clock=clock) as loopback:
        world = loopback.world
        world.set_latency(0.05)
        for symbol, bid, ask in (
            ("AAA", "99.90", "100.10"),
            ("DDD", "49.90", "50.10"),
            ("BBB", "149.90", "150.10"),
            ("CCC", "24.90", "25.10"),
        ):
            world.set_quote(symbol, Decimal(bid), Decimal(ask))
        world.set_position("AAA", Decimal(10), Decimal(90))
        world.set_position("DDD", Decimal(20), Decimal(40))
        world.set_fill(FillRule(FillMode.NEVER), "DDD")

        def alpaca(account_id: str) -> Broker:
            return AlpacaBroker(
                key_id=SecretStr(world.key_id),
                secret_key=SecretStr(world.secret_key),
                base_url_override=loopback.base_url,
            )

        store = SqlEventStore(database)
        executor = Executor(settings, alpaca, clock=clock)
        consumer = Consumer(SERVICE, store, InMemoryBus(), executor.handle, ["RebalancePlanned"])
        # the real clock at the guard, to read the loopback's arrival times against
        guard_monotonic = time.monotonic() + (GUARD - clock()).total_seconds()
        try:
            await consumer.handle_message(message(plan_event(WORKFLOW, PLAN)))
            events = await run_timers(executor, store, clock)
        finally:
            await executor.close()
            await store.close()

        sent = [r.at_s for r in world.requests if (r.method, r.path) == ("POST", "/v2/orders")]
        assert len(sent) == 2  # the two SELL limits; nothing after the guard
        assert all(at_s < guard_monotonic for at_s in sent)
        clock.set(CLOSE + dt.timedelta(hours=18))  # the next morning, the session open again
        with world.lock:
            world.settle()
            left = {order.symbol: order.status for order in world.orders.values()}
        assert left == {"AAA": "filled", "DDD": "canceled"}

    assert all(r.occurred_at < GUARD for r in events if isinstance(r, OrderRequested))
    [cancel] = [e for e in events if isinstance(e, OrderCancelled)]
    assert (cancel.symbol, cancel.reason) == ("DDD", "close")
    [executed] = [e for e in events if isinstance(e, TradeExecuted)]
    assert not executed.success
    assert (executed.orders_placed, executed.orders_succeeded) == (4, 1)
    results = {order.symbol: order for order in executed.execution_data.orders}
    assert results["AAA"].final_status == "filled"
    for symbol in ("DDD", "BBB", "CCC"):
        assert results[symbol].final_status == "unplaced"
        assert "not placed" in (results[symbol].error_message or "")
    assert [e.event_type for e in events][-1] == "WorkflowFailed"

    email = render_workflow(events, neutral=False, default_live=False)
    assert not email.fallback
    for symbol in ("DDD", "BBB", "CCC"):
        assert f"{symbol}: not placed" in email.html
        line = next(
            row for row in email.text.splitlines() if f" {symbol} " in row and "asked" in row
        )
        assert "Not Placed" in line and "ALCHEMISER_EXEC_CLOSE_MARGIN_S" in line
