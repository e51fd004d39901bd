"""Execution's due timers, fired as the runtime's periodic work
(docs/trading-rules.md, Durable timers).

A pipeline, not rounds: up to `IN_FLIGHT` workflows are stepped at once, and as they finish their
slots are filled by claiming more due timers, so one slow workflow holds up only itself. Each
workflow's due timers run together, one after another on its state, and are recorded together —
one outcome per workflow, committed through the runtime as soon as that workflow is done, up to
`COMMITS_AT_ONCE` side by side — because they all save the same state document. A workflow still
being stepped or committed is left out of the next claims, so its timers never run side by side
on its state, and the leases of the timers being worked on are renewed while they are, so no
replica fires one of them at the same time. On start the first claim picks up every overdue
timer, which is the restart reconciliation: each submit and poll step looks its order up by
client order id before acting.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict

import structlog

from services.execution.executor import Executor
from shared.eventstore import timers
from shared.messaging.consumer import is_database_unavailable
from shared.service.runtime import TIMER_LEASE_S, Periodic, PeriodicContext

log = structlog.get_logger(__name__)

IN_FLIGHT = 200
"""Workflows one process steps at once. Their steps mostly wait (on the broker, on the
database), so many side by side keep the process busy; the broker's connection pool and the
store's bound how many of those waits are on the database at once."""
CLAIM_BATCH = 20
"""Free slots worth a claim at once after a workflow finishes; fewer wait for the poll interval,
so a busy pipeline claims in batches rather than once per finished workflow."""
COMMITS_AT_ONCE = 4
"""Outcomes committed side by side: a commit waits mostly on the database, so one at a time
would cap the loop at one commit per commit latency; more than a few would take the store's
connections from the consumer's handlers."""
LEASE_RENEWAL_S = TIMER_LEASE_S / 3
"""How often the leases of the timers being worked on are renewed: two renewals may be missed
(a process short of CPU) before a lease runs out."""


def due_timers(executor: Executor, poll_s: float) -> Periodic:
    async def fire_due(context: PeriodicContext) -> None:
        await _Pipeline(executor, context, poll_s).run()

    return Periodic("timers", poll_s, fire_due)


class _Pipeline:
    """The workflows being stepped or committed (`firing`: each one's task and the timers it
    holds) and the claims that keep it full. Ends when a claim finds fewer due timers than free
    slots and what is in flight is done."""

    def __init__(self, executor: Executor, context: PeriodicContext, poll_s: float) -> None:
        self._executor = executor
        self._context = context
        self._poll_s = poll_s
        self._commits = asyncio.Semaphore(COMMITS_AT_ONCE)
        self._firing: dict[str, tuple[asyncio.Task[None], list[timers.Timer]]] = {}
        self._committing: set[str] = set()
        """Workflows whose outcome is being committed: that transaction deletes or gives back
        their timers, so their leases are no longer renewed."""

    async def run(self) -> None:
        """Claims while every claim comes back full (a backlog), then finishes what is in flight
        and returns: a round ends, and a workflow that keeps arming due timers cannot keep it
        going for ever."""
        loop = asyncio.get_running_loop()
        claimed_at, renewed_at = -math.inf, loop.time()
        finished_since_claim, backlog = True, True
        try:
            while True:
                now = loop.time()
                free = IN_FLIGHT - len(self._firing)
                if backlog and (
                    (free >= min(CLAIM_BATCH, IN_FLIGHT) and finished_since_claim)
                    or (free > 0 and now - claimed_at >= self._poll_s)
                ):
                    claimed_at, finished_since_claim = now, False
                    claimed = await self._context.claim_due_timers(
                        free, skip_workflows=list(self._firing)
                    )
                    backlog = len(claimed) == free
                    self._start(claimed)
                if not self._firing:
                    return
                if now - renewed_at >= LEASE_RENEWAL_S:
                    renewed_at = now
                    await self._renew_leases()
                done, _ = await asyncio.wait(
                    [task for task, _ in self._firing.values()],
                    timeout=min(self._poll_s, LEASE_RENEWAL_S),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for workflow_id, (task, _) in list(self._firing.items()):
                    if task in done:
                        del self._firing[workflow_id]
                        finished_since_claim = True
                        task.result()  # a lost database ends the round, for the runtime to wait out
        finally:
            for task, _ in self._firing.values():
                task.cancel()

    def _start(self, claimed: list[timers.Timer]) -> None:
        by_workflow: dict[str, list[timers.Timer]] = defaultdict(list)
        for timer in claimed:
            by_workflow[timer.workflow_id].append(timer)
        for workflow_id, workflow_timers in by_workflow.items():
            self._firing[workflow_id] = (
                asyncio.create_task(self._step(workflow_timers)),
                workflow_timers,
            )

    async def _step(self, workflow_timers: list[timers.Timer]) -> None:
        """One workflow's steps and their commit; a failure is that workflow's alone, but for a
        lost database."""
        workflow_id = workflow_timers[0].workflow_id
        try:
            outcome = await self._executor.fire(self._context.store, workflow_id, workflow_timers)
        except Exception as error:
            if is_database_unavailable(error):
                raise
            log.exception(
                "timer steps failed; they run again when their lease expires",
                workflow_id=workflow_id,
                kinds=[timer.kind for timer in workflow_timers],
            )
            return
        async with self._commits:
            self._committing.add(workflow_id)
            try:
                await self._context.record(outcome)
            finally:
                self._committing.discard(workflow_id)

    async def _renew_leases(self) -> None:
        stepping = {
            workflow_id: held
            for workflow_id, (_, held) in self._firing.items()
            if workflow_id not in self._committing
        }
        renewed = {
            timer.id: timer
            for timer in await self._context.extend_leases(
                [timer for held in stepping.values() for timer in held]
            )
        }
        for workflow_id, workflow_timers in stepping.items():
            task, _ = self._firing[workflow_id]  # only `run`, waiting on this, removes entries
            if task.done() or workflow_id in self._committing:
                continue  # its commit deleted or gave back the timers meanwhile
            kept = [renewed[timer.id] for timer in workflow_timers if timer.id in renewed]
            if len(kept) < len(workflow_timers):
                log.warning(
                    "a timer's lease ran out while its step was running; another replica may "
                    "fire it too, and the state document's version lets only one of them record",
                    workflow_id=workflow_id,
                )
            self._firing[workflow_id] = (task, kept)
