"""`alchemiser run`: the four services in one process — the same handlers as production over an
in-memory bus, one SQLite (or configured) event store and the simulated broker on the simulated
clock (or Alpaca on the real clock) — running one forced workflow to its end.

This module is the composition root of the embedded mode; like the CLI it may import every
service, which the services themselves never do of each other.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from services.pnl import pnl_view
from services.registry import SERVICES, ServiceName
from services.strategy.signal_step import bundled_symbols
from services.strategy.trigger import start_workflow
from services.strategy.workflow_status import WorkflowView, project_workflow
from shared import market_clock
from shared.bus.memory import InMemoryBus
from shared.events import Event
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.marketdata.barstore import BarStore
from shared.marketdata.sample import ensure_sample
from shared.messaging.relay import OutboxRelay
from shared.service.runtime import ServiceRuntime
from shared.settings import BrokerKind, Settings
from shared.workflow import is_finished

POLL_S = 0.1

#: What each event says in a progress line.
PROGRESS_WORDS = {
    "WorkflowStarted": "workflow started",
    "SignalGenerated": "strategies evaluated",
    "RebalancePlanned": "rebalance planned",
    "OrderRequested": "order requested",
    "OrderSubmitted": "order submitted",
    "OrderFilled": "order filled",
    "OrderCancelled": "order cancelled",
    "OrderRejected": "order rejected",
    "TradeExecuted": "trades executed",
    "OrdersPreviewed": "orders previewed (dry run: none sent)",
    "WorkflowCompleted": "workflow completed",
    "WorkflowFailed": "workflow failed",
    "NotificationSent": "notification sent",
}


@dataclass(frozen=True)
class RunResult:
    view: WorkflowView
    events: tuple[Event, ...]
    report_files: tuple[Path, Path]


class ServiceTaskDiedError(Exception):
    """A service's background task died during the run; the message names the task and why."""


class EmbeddedSystem:
    """The services (all four unless told) sharing one store, one in-memory bus and one outbox
    relay."""

    def __init__(
        self, settings: Settings, services: tuple[ServiceName, ...] = tuple(SERVICES)
    ) -> None:
        self.settings = settings
        self.store = SqlEventStore(settings.resolved_database_url)
        self.bus = InMemoryBus()
        definitions = [SERVICES[name].definition(settings) for name in services]
        # Only what the services running here consume is published: a replay runs without
        # strategy, so its WorkflowStarted has no queue to go to.
        self.relay = OutboxRelay(
            self.store,
            self.bus,
            routed={event_type for each in definitions for event_type in each.event_types},
        )
        self.runtimes = [
            ServiceRuntime(each, settings, self.store, self.bus, shared_relay=self.relay)
            for each in definitions
        ]
        self._relay_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.bus.connect()
        for runtime in self.runtimes:
            await runtime.start()
        self._relay_task = asyncio.create_task(self.relay.run(), name="embedded:outbox-relay")

        async def attached() -> bool:
            return all([(await runtime.readiness()).ready for runtime in self.runtimes])

        deadline = time.monotonic() + 30
        while not await attached():
            if self.failure is not None:
                raise ServiceTaskDiedError(f"the embedded services could not start: {self.failure}")
            if time.monotonic() > deadline:
                raise RuntimeError("the embedded services did not attach to the in-memory bus")
            await asyncio.sleep(POLL_S)

    @property
    def failure(self) -> str | None:
        """The first service task that died, as its runtime reports it."""
        return next((runtime.failure for runtime in self.runtimes if runtime.failure), None)

    def check_alive(self, workflow_id: str) -> None:
        """A service that has lost a task cannot finish the workflow, so whoever waits for it
        stops at once instead of waiting out the deadline."""
        if self.failure is not None:
            raise ServiceTaskDiedError(
                f"workflow {workflow_id} cannot finish: {self.failure}; the log above has the "
                "traceback"
            )

    async def stop(self) -> None:
        for runtime in self.runtimes:
            await runtime.stop()
        if self._relay_task is not None:
            self._relay_task.cancel()
            await asyncio.gather(self._relay_task, return_exceptions=True)
        await self.bus.close()
        await self.store.close()


async def prepare_data(settings: Settings, progress: Callable[[str], None]) -> None:
    """The store's schema and, with the simulated broker, bars to trade on (the synthetic
    sample, generated atomically on first use)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await upgrade(settings.resolved_database_url)
    if settings.broker is BrokerKind.SIMULATED and not BarStore(settings.data_dir).exists():
        progress("generating the synthetic sample bar store (labelled synthetic) ...")
        end_before = market_clock.simulated_now(settings.sim_now, None)
        symbols = await asyncio.to_thread(bundled_symbols, settings.resolved_cache_dir)
        await asyncio.to_thread(ensure_sample, settings.data_dir, symbols, end_before)


async def run_once(
    settings: Settings,
    *,
    account_id: str,
    out_dir: Path,
    progress: Callable[[str], None],
    dry_run: bool = False,
    email: bool = False,
) -> RunResult:
    """One forced run, or a dry run (`dry_run`; reported on the channels only with `email`)."""
    from services.notify.files import write_report_files

    system = EmbeddedSystem(settings)
    try:
        await system.start()
        now = market_clock.market_now(settings, BarStore(settings.data_dir).last_session())
        outcome = await start_workflow(
            system.store,
            settings,
            now=now,
            force=True,
            account_id=account_id,
            requested_by="alchemiser run",
            dry_run=dry_run,
            email=email,
        )
        system.relay.wake()
        kind = "dry run" if dry_run else "workflow"
        progress(f"{kind} {outcome.workflow_id} for account {account_id} at {now.isoformat()}")
        notified = _notification_expected(settings) and (email or not dry_run)
        events = await _follow(system, outcome.workflow_id, settings, progress, notified)
        pnl = await pnl_view(system.store, account_id)
    finally:
        await system.stop()
    view = project_workflow(events)
    assert view is not None
    files = write_report_files(events, out_dir, settings, pnl)
    return RunResult(view=view, events=tuple(events), report_files=files)


async def run_sessions(
    settings: Settings,
    sessions: Sequence[dt.date],
    *,
    account_id: str,
    out_dir: Path,
    progress: Callable[[str], None],
) -> AsyncIterator[tuple[dt.date, RunResult]]:
    """One forced workflow per session, in order, on one account: the simulated clock steps
    session by session, each run at the start of that session's close window (15:45 New York,
    12:45 on an early close), so the strategy decides on the session's bar as the live bar
    (its close is the broker's last price) and the broker fills and values at it. The account
    carries over from session to session in the store; the caller sees each session's result
    before the clock moves on."""
    for session in sessions:
        clocked = at_close_window(settings, session)
        yield (
            session,
            await run_once(clocked, account_id=account_id, out_dir=out_dir, progress=progress),
        )


def at_close_window(settings: Settings, session: dt.date) -> Settings:
    """The settings with the simulated clock at the start of the session's close window."""
    at = market_clock.default_sim_now(session)
    return settings.model_copy(update={"sim_now": at.isoformat()})


async def _follow(
    system: EmbeddedSystem,
    workflow_id: str,
    settings: Settings,
    progress: Callable[[str], None],
    notified: bool,
) -> list[Event]:
    """Show each new event until the workflow ends and, when `notified`, its notification is
    recorded (or the deadline passes with nothing new, or a service task dies)."""
    shown = 0
    last_progress = time.monotonic()
    finished_at: float | None = None
    while True:
        system.check_alive(workflow_id)
        events = [recorded.event for recorded in await system.store.read_correlation(workflow_id)]
        for event in events[shown:]:
            progress(f"  {PROGRESS_WORDS.get(event.event_type, event.event_type)}{_detail(event)}")
            last_progress = time.monotonic()
        shown = len(events)
        if is_finished(events):
            finished_at = finished_at or time.monotonic()
            sent = any(e.event_type == "NotificationSent" for e in events)
            if sent or not notified or (time.monotonic() - finished_at > 30):
                return events
        if time.monotonic() - last_progress > settings.workflow_deadline_s:
            progress(f"no progress for {settings.workflow_deadline_s:.0f} s; giving up")
            return events
        await asyncio.sleep(POLL_S)


def _notification_expected(settings: Settings) -> bool:
    return bool(settings.smtp_host or settings.webhook_url or settings.notify_urls)


def _detail(event: Event) -> str:
    symbol = getattr(event, "symbol", None)
    side = getattr(event, "side", None)
    if symbol and side:
        return f": {side} {symbol}"
    reason = getattr(event, "failure_reason", None)
    return f": {reason}" if reason else ""


def print_summary(result: RunResult, stream: TextIO = sys.stdout) -> None:
    """The run as tables: signals, plan, orders and fills, and the portfolio afterwards."""
    from services.run_summary import summary_lines

    for line in summary_lines(result.view, result.events, result.report_files):
        print(line, file=stream)
