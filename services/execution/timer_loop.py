"""Execution's due timers, fired as the runtime's periodic work (trading spec §3.16).

Every `ALCHEMISER_TIMER_POLL_S` the runtime claims the due timers (a short lease, so replicas
share the work without firing one timer twice at once) and this runs them: workflows side by
side, each workflow's timers one after another on its state, recorded together — one outcome
per workflow, committed by the runtime as soon as that workflow is done — because they all save
the same state document. On start the first claim picks up every overdue timer, which is the
restart reconciliation: each submit and poll step looks its order up by client order id before
acting.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncGenerator

import structlog

from services.execution.executor import Executor
from shared.eventstore import timers
from shared.eventstore.port import EventStoreReader
from shared.service.runtime import Periodic, PeriodicContext, PeriodicOutcome

log = structlog.get_logger(__name__)

CLAIM_LIMIT = 200


def due_timers(executor: Executor, poll_s: float) -> Periodic:
    async def fire_due(context: PeriodicContext) -> AsyncGenerator[PeriodicOutcome, None]:
        by_workflow: dict[str, list[timers.Timer]] = defaultdict(list)
        for timer in await context.claim_due_timers(CLAIM_LIMIT):
            by_workflow[timer.workflow_id].append(timer)
        firing = [
            asyncio.create_task(_fire_in_order(executor, context.store, workflow_timers))
            for workflow_timers in by_workflow.values()
        ]
        try:
            for next_done in asyncio.as_completed(firing):
                outcome = await next_done
                if outcome is not None:
                    yield outcome
        finally:
            for task in firing:
                task.cancel()

    return Periodic("timers", poll_s, fire_due)


async def _fire_in_order(
    executor: Executor, store: EventStoreReader, workflow_timers: list[timers.Timer]
) -> PeriodicOutcome | None:
    """One workflow's steps; a failure is that workflow's alone."""
    workflow_id = workflow_timers[0].workflow_id
    try:
        return await executor.fire(store, workflow_id, workflow_timers)
    except Exception:
        log.exception(
            "timer steps failed; they run again when their lease expires",
            workflow_id=workflow_id,
            kinds=[timer.kind for timer in workflow_timers],
        )
        return None
