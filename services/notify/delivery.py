"""Delivery with retries (docs/trading-rules.md, Delivery retries): three attempts with backoff,
then a verdict that is recorded in `NotificationSent` — a failure is reported, never lost, and never
fails the workflow."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import structlog

from services.notify.channels.port import ChannelName, DeliveryError, Notifier
from services.notify.rendering import RenderedReport

log = structlog.get_logger(__name__)

DELIVERY_ATTEMPTS = 3
BACKOFF_S = 1.0
"""Wait before the second attempt; doubled before each later one (1 s, 2 s)."""

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Delivery:
    channel: ChannelName
    target: str | None
    status: Literal["sent", "failed"]
    attempts: int
    error: str | None = None


async def deliver(
    notifier: Notifier,
    report: RenderedReport,
    *,
    attempts: int = DELIVERY_ATTEMPTS,
    backoff_s: float = BACKOFF_S,
    sleep: Sleep = asyncio.sleep,
) -> Delivery:
    error: str | None = None
    for attempt in range(1, attempts + 1):
        try:
            await notifier.send(report)
        except DeliveryError as failure:
            error = str(failure)
        except Exception as failure:
            # An adapter bug must not take the notify service down with the report unsent and
            # unrecorded; it is recorded like any other delivery failure.
            log.exception(
                "notifier raised unexpectedly", channel=notifier.channel, target=notifier.target
            )
            error = f"{type(failure).__name__}: {failure}"
        else:
            log.info(
                "report delivered",
                channel=notifier.channel,
                target=notifier.target,
                attempts=attempt,
            )
            return Delivery(notifier.channel, notifier.target, "sent", attempt)
        log.warning(
            "report delivery failed",
            channel=notifier.channel,
            target=notifier.target,
            attempt=attempt,
            error=error,
        )
        if attempt < attempts:
            await sleep(backoff_s * 2 ** (attempt - 1))
    return Delivery(notifier.channel, notifier.target, "failed", attempts, error)
