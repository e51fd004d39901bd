"""Publishes the transactional outbox to the bus with confirms, then marks the rows sent.

A crash between commit and publish leaves the rows unsent, and the next relay (this process after
a restart, or another replica) publishes them; a crash between publish and marking them sent
publishes them again, which the consumers' inboxes absorb. Delivery is at least once; effects
exactly once. On PostgreSQL a relay holds the rows it publishes locked until they are marked sent,
so the relays of other processes skip them rather than publish them a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection

import structlog

from shared.bus.port import Bus, OutgoingMessage
from shared.eventstore.records import OutboxMessage
from shared.eventstore.store import SqlEventStore
from shared.service.metrics import ServiceMetrics

log = structlog.get_logger(__name__)


class OutboxRelay:
    def __init__(
        self,
        store: SqlEventStore,
        bus: Bus,
        metrics: ServiceMetrics | None = None,
        *,
        poll_interval_s: float = 0.25,
        batch_size: int = 500,
        retry_delay_s: float = 1.0,
        routed: Collection[str] | None = None,
    ) -> None:
        """`routed`: the event types a consumer answers, when known. Rows of other types are
        marked sent without being published: no queue is bound to them, and publishing them
        (as mandatory) would hold every row behind them."""
        self._store = store
        self._bus = bus
        self._metrics = metrics
        self._poll_interval_s = poll_interval_s
        self._batch_size = batch_size
        self._retry_delay_s = retry_delay_s
        self._routed = None if routed is None else frozenset(routed)
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """Called after a local commit so new rows go out without waiting for the next poll."""
        self._wakeup.set()

    async def publish_pending(self) -> int:
        """Publish one batch of unsent rows; returns how many were settled (published, or
        marked sent because nothing consumes their type)."""
        return await self._store.relay_outbox(self._publish, self._batch_size)

    async def _publish(self, rows: list[OutboxMessage]) -> None:
        published = [row for row in rows if self._routed is None or row.routing_key in self._routed]
        await self._bus.publish_batch(
            [
                OutgoingMessage(
                    routing_key=row.routing_key, body=row.body, message_id=str(row.event_id)
                )
                for row in published
            ]
        )
        if self._metrics is not None:
            for row in published:
                self._metrics.events_published.labels(event_type=row.routing_key).inc()

    async def run(self) -> None:
        """Drain the outbox forever: wake on local commits, poll for other writers' rows."""
        while True:
            # Cleared before the round, so a commit made while it runs wakes the next one.
            self._wakeup.clear()
            try:
                # The lag gauge is read when /metrics is scraped, not here: a count per round
                # was a statement per commit of every service for a figure nobody had asked for.
                settled = await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the bus or the database is away; keep the rows, retry
                log.warning("outbox relay could not publish; will retry", error=str(error))
                await asyncio.sleep(self._retry_delay_s)
                continue
            if settled == self._batch_size:
                continue  # a full batch: more may be waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._poll_interval_s)
