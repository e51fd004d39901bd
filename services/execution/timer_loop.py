"""The background loop that fires execution's due timers (trading spec §3.16).

Every `ALCHEMISER_TIMER_POLL_S` it claims the due timers (a short lease, so replicas share the
work without firing one timer twice at once) and runs them: workflows side by side, each
workflow's timers one after another on its state, committed together, because they all
save the same state document. On start
the first claim picks up every overdue timer, which is the restart reconciliation: each submit
and poll step looks its order up by client order id before acting.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from services.execution.executor import Executor
from services.execution.machine import SERVICE
from shared.eventstore import timers
from shared.eventstore.store import SqlEventStore

log = structlog.get_logger(__name__)

LEASE_S = 10.0
"""How long a claimed timer is hidden from other replicas; a step takes far less. A replica
that dies holding a lease delays that timer by at most this much."""
CLAIM_LIMIT = 200


async def fire_due(
    executor: Executor,
    store: SqlEventStore,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Claim and run every timer due now; returns how many fired."""
    due = await timers.claim_due(store, SERVICE, clock(), LEASE_S, CLAIM_LIMIT)
    by_workflow: dict[str, list[timers.Timer]] = defaultdict(list)
    for timer in due:
        by_workflow[timer.workflow_id].append(timer)
    await asyncio.gather(
        *(
            _fire_in_order(executor, store, workflow_timers)
            for workflow_timers in by_workflow.values()
        )
    )
    return len(due)


async def _fire_in_order(
    executor: Executor, store: SqlEventStore, workflow_timers: list[timers.Timer]
) -> None:
    workflow_id = workflow_timers[0].workflow_id
    try:
        await executor.fire(store, workflow_id, workflow_timers)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception(
            "timer steps failed; they run again when their lease expires",
            workflow_id=workflow_id,
            kinds=[timer.kind for timer in workflow_timers],
        )


async def run(executor: Executor, store: SqlEventStore, poll_s: float) -> None:
    """Fire due timers until cancelled; sleeps only when nothing was due."""
    try:
        while True:
            try:
                fired = await fire_due(executor, store)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("claiming due timers failed; retrying")
                fired = 0
            if fired == 0:
                await asyncio.sleep(poll_s)
    finally:
        await executor.close()
