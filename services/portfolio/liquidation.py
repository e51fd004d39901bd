"""Non-positive cash with `ALCHEMISER_LIQUIDATE_ON_NON_POSITIVE_CASH=true` (trading spec §2.3):
close every position (open orders cancelled first, one broker call), then check the account
every 2 s — a durable timer, never a sleep — for up to `ALCHEMISER_LIQUIDATION_WAIT_S` until
cash is positive, and plan from the re-read account; still not positive by then fails the step.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, Awaitable, Callable
from decimal import Decimal

import structlog

from shared.eventstore import timers
from shared.eventstore.port import EventStoreReader
from shared.eventstore.store import UnitOfWork
from shared.service.runtime import Periodic, PeriodicContext, PeriodicOutcome

log = structlog.get_logger(__name__)

SERVICE = "portfolio"
KIND = "liquidation_check"
CHECK_INTERVAL_S = 2.0


def arm_check(
    workflow_id: str, signal_event_id: str, deadline: dt.datetime, cash_before: Decimal
) -> Callable[[UnitOfWork], Awaitable[None]]:
    """The first account check, armed in the transaction that records the close-all."""

    async def arm(uow: UnitOfWork) -> None:
        await timers.schedule(
            uow,
            service=SERVICE,
            workflow_id=workflow_id,
            chain="",
            kind=KIND,
            due_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=CHECK_INTERVAL_S),
            payload={
                "signal_event_id": signal_event_id,
                "deadline": deadline.isoformat(),
                "cash_before": str(cash_before),
            },
        )

    return arm


Check = Callable[[timers.Timer, EventStoreReader], Awaitable[PeriodicOutcome]]
"""One account check: what it records commits with the removal of its timer."""


def due_checks(check: Check, poll_s: float) -> Periodic:
    async def fire_due(context: PeriodicContext) -> AsyncGenerator[PeriodicOutcome, None]:
        for timer in await context.claim_due_timers():
            try:
                outcome = await check(timer, context.store)
            except Exception as error:  # the broker is away; the lease brings the check back
                log.warning(
                    "liquidation check failed; will retry",
                    workflow_id=timer.workflow_id,
                    error=str(error),
                )
                continue
            yield outcome

    return Periodic("liquidation-checks", poll_s, fire_due)
