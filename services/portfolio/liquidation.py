"""Non-positive cash with `ALCHEMISER_LIQUIDATE_ON_NON_POSITIVE_CASH=true` (trading spec §2.3):
close every position (open orders cancelled first, one broker call), then check the account
every 2 s — a durable timer, never a sleep — for up to `ALCHEMISER_LIQUIDATION_WAIT_S` until
cash is positive, and plan from the re-read account; still not positive by then fails the step.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import structlog

from shared.eventstore import timers
from shared.eventstore.store import UnitOfWork
from shared.service.runtime import ServiceRuntime

log = structlog.get_logger(__name__)

SERVICE = "portfolio"
KIND = "liquidation_check"
CHECK_INTERVAL_S = 2.0
LEASE_S = 10.0


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


CheckHandler = Callable[[timers.Timer, dict[str, Any]], Awaitable[None]]


async def check_loop(runtime: ServiceRuntime, fire: CheckHandler) -> None:
    """Fire due liquidation checks; each check commits its outcome and deletes its timer."""
    while True:
        try:
            for timer in await timers.claim_due(
                runtime.store, SERVICE, dt.datetime.now(dt.UTC), LEASE_S
            ):
                await fire(timer, timer.payload)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the database or broker is away; the lease brings it back
            log.warning("liquidation check failed; will retry", error=str(error))
        await asyncio.sleep(runtime.settings.timer_poll_s)
