"""One process fault: SIGKILL a service at a point of a running workflow, keep it down a
moment, start it again. Drawn from a seeded RNG so a reported run can be replayed."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from dataclasses import dataclass

from shared.eventstore.store import SqlEventStore
from tests.e2e.cluster import Cluster
from tests.servers import SERVICES

KILL_AFTER = (
    "WorkflowStarted",
    "SignalGenerated",
    "RebalancePlanned",
    "OrderRequested",
    "OrderSubmitted",
    "OrderFilled",
    "TradeExecuted",
    "WorkflowCompleted",
)
"""Event types to kill right after: the first is recorded, its consumers may be mid-handler."""
MAX_DELAY_S = 3.0
MAX_DOWNTIME_S = 1.5
WAIT_FOR_POINT_S = 60.0

CHAOS_SETTINGS = {
    "ALCHEMISER_TIMER_POLL_S": "0.05",
    "ALCHEMISER_EXEC_POLL_S": "0.2",
    "ALCHEMISER_EXEC_FILL_WAIT_S": "1",
    "ALCHEMISER_EXEC_CANCEL_CONFIRM_S": "1",
    "ALCHEMISER_EXEC_FINAL_WAIT_S": "1",
    "ALCHEMISER_WORKFLOW_DEADLINE_S": "300",
    "ALCHEMISER_LOG_LEVEL": "INFO",
}
"""Short execution waits so a run takes seconds; a deadline far beyond a kill-and-restart, so
a restarted service is never mistaken for a stalled one; INFO logs (`<service>.log` in the
test's directory) so a broken run can be read back."""


@dataclass(frozen=True)
class Kill:
    service: str
    after_event: str | None
    """Kill once this event type of the workflow is in the store; None: after `delay_s`."""
    delay_s: float
    downtime_s: float

    def __str__(self) -> str:
        point = (
            f"after {self.after_event} (+{self.delay_s:.2f} s)"
            if self.after_event
            else f"{self.delay_s:.2f} s after the trigger"
        )
        return f"SIGKILL {self.service} {point}, down {self.downtime_s:.2f} s"


def draw_kill(rng: random.Random) -> Kill:
    service = rng.choice(SERVICES)
    if rng.random() < 0.5:
        return Kill(
            service, rng.choice(KILL_AFTER), rng.uniform(0, 0.2), rng.uniform(0, MAX_DOWNTIME_S)
        )
    return Kill(service, None, rng.uniform(0, MAX_DELAY_S), rng.uniform(0, MAX_DOWNTIME_S))


async def until_recorded(store: SqlEventStore, workflow_id: str, event_type: str) -> None:
    """Until the workflow has recorded `event_type` or ended, for at most WAIT_FOR_POINT_S (the
    point may never come: a run without SELLs has no settlement, say)."""
    deadline = time.monotonic() + WAIT_FOR_POINT_S
    while time.monotonic() < deadline:
        types = {r.event.event_type for r in await store.read_correlation(workflow_id)}
        if event_type in types or types & {"WorkflowCompleted", "WorkflowFailed"}:
            return
        await asyncio.sleep(0.02)


async def inject(cluster: Cluster, workflow_id: str, kill: Kill) -> str:
    """Wait for the kill point, SIGKILL, restart, wait until ready; says what happened (the
    point may never come: a run that ended first is killed at its end)."""
    assert cluster.store is not None
    started = time.monotonic()
    if kill.after_event is not None:
        await until_recorded(cluster.store, workflow_id, kill.after_event)
    await asyncio.sleep(kill.delay_s)
    killed_at = time.monotonic() - started
    recorded = len(await cluster.store.read_correlation(workflow_id))
    cluster.stop(kill.service, signal.SIGKILL)
    await asyncio.sleep(kill.downtime_s)
    cluster.start(kill.service)
    await cluster.wait_ready(kill.service)
    return f"{kill}: killed at {killed_at:.2f} s with {recorded} events recorded"
