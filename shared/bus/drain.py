"""Waiting for handlers to finish the message they hold before a bus closes: cancelling one
mid-transaction would only cost a redelivery, but letting it finish costs nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

log = structlog.get_logger(__name__)


async def wait_until_idle(idle_flags: Sequence[asyncio.Event], timeout_s: float) -> None:
    waits = [asyncio.create_task(flag.wait()) for flag in idle_flags]
    if not waits:
        return
    _, pending = await asyncio.wait(waits, timeout=timeout_s)
    for wait in pending:
        wait.cancel()
    if pending:
        log.warning("bus.drain_timed_out", handlers_still_running=len(pending), timeout_s=timeout_s)
