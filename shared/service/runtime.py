"""One service's moving parts — store, bus, consumer, relay, background loops — started and
stopped together, whether the service runs alone under uvicorn or beside the others in the
embedded process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from shared.bus.port import Bus
from shared.eventstore.store import SqlEventStore
from shared.messaging.consumer import Consumer, EventHandler
from shared.messaging.relay import OutboxRelay
from shared.service.metrics import ServiceMetrics
from shared.settings import Settings
from shared.workflow import ANSWERED_EVENT_TYPES

if TYPE_CHECKING:
    from fastapi import APIRouter

log = structlog.get_logger(__name__)

READINESS_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class ServiceDefinition:
    """What makes one service different from another; everything else is shared runtime."""

    name: str
    event_types: tuple[str, ...]
    handler: EventHandler
    routers: Callable[[ServiceRuntime], Sequence[APIRouter]] = lambda runtime: ()
    background: Sequence[Callable[[ServiceRuntime], Awaitable[None]]] = field(default=())
    on_stop: Sequence[Callable[[], Awaitable[None]]] = field(default=())
    """Releases what the service's steps hold (broker connections), after its loops stopped."""


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str | None = None


class ServiceRuntime:
    def __init__(
        self,
        definition: ServiceDefinition,
        settings: Settings,
        store: SqlEventStore,
        bus: Bus,
        metrics: ServiceMetrics | None = None,
        *,
        connect_retry_s: float = 1.0,
        shared_relay: OutboxRelay | None = None,
    ) -> None:
        """`shared_relay`: in the embedded process the services share one store, one bus and
        one relay that the composition runs and closes; each runtime then only wakes it."""
        self.definition = definition
        self.settings = settings
        self.store = store
        self.bus = bus
        self.metrics = metrics or ServiceMetrics()
        self._owns_transports = shared_relay is None
        self.relay = shared_relay or OutboxRelay(
            store, bus, self.metrics, routed=ANSWERED_EVENT_TYPES
        )
        self.consumer = Consumer(
            definition.name,
            store,
            bus,
            definition.handler,
            definition.event_types,
            metrics=self.metrics,
            on_commit=self.relay.wake,
            queue=settings.bus_queue(definition.name),
        )
        self._connect_retry_s = connect_retry_s
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def name(self) -> str:
        return self.definition.name

    async def start(self) -> None:
        """Return at once; the bus is attached in the background so a broker outage at start-up
        leaves the process alive and reporting 503 on /readyz instead of crash-looping."""
        self._spawn(self._attach_bus(), "attach-bus")
        if self._owns_transports:
            self._spawn(self.relay.run(), "outbox-relay")
        for loop in self.definition.background:
            self._spawn(loop(self), getattr(loop, "__name__", "background"))

    async def _attach_bus(self) -> None:
        while True:
            try:
                await self.bus.connect()
                await self.consumer.start()
                log.info("consumer attached", service=self.name, queue=self.consumer.queue)
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("bus not reachable yet; retrying", service=self.name, error=str(error))
                await asyncio.sleep(self._connect_retry_s)

    def _spawn(self, work: Awaitable[None], name: str) -> None:
        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("service task stopped with an error", service=self.name, task=name)

        self._tasks.append(asyncio.create_task(guarded(), name=f"{self.name}:{name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for release in self.definition.on_stop:
            await release()
        if self._owns_transports:
            await self.bus.close()
            await self.store.close()

    async def readiness(self) -> Readiness:
        try:
            await asyncio.wait_for(self.store.ping(), READINESS_TIMEOUT_S)
        except Exception as error:
            return Readiness(False, f"database unreachable: {type(error).__name__}: {error}")
        health = self.bus.health()
        if not health.connected:
            return Readiness(False, f"message bus not connected: {health.reason or 'connecting'}")
        if health.consumers_attached < health.consumers_expected or health.consumers_expected == 0:
            return Readiness(
                False,
                f"consumers attached {health.consumers_attached} of "
                f"{max(health.consumers_expected, 1)}",
            )
        return Readiness(True)
