"""One service's moving parts — store, bus, consumer, relay, periodic work — started, supervised
and stopped together, whether the service runs alone under uvicorn or beside the others in the
embedded process.

The runtime owns every loop a service runs between events: a service declares its periodic
work (`Periodic`: the deadline watchdog, the firing of durable timers) and the runtime runs it,
commits what it yields and wakes the relay, the same way the consumer commits what a handler
returns. A task of the runtime that dies — an error that is not a database outage, or a
cancellation that did not come from `stop` — makes the service not ready, naming the task and
the reason; the process then stops (`shared.service.app`) so that its supervisor starts a fresh
one, which picks the work up from the store (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client.registry import Collector

from shared.bus.port import Bus
from shared.events import Event
from shared.eventstore import timers
from shared.eventstore.errors import ConcurrencyError
from shared.eventstore.port import EventStoreReader
from shared.eventstore.store import SqlEventStore, UnitOfWork
from shared.messaging.consumer import Consumer, EventHandler, is_database_unavailable
from shared.messaging.relay import OutboxRelay
from shared.service.metrics import ServiceMetrics
from shared.settings import Settings
from shared.workflow import ANSWERED_EVENT_TYPES

if TYPE_CHECKING:
    from fastapi import APIRouter

log = structlog.get_logger(__name__)

READINESS_TIMEOUT_S = 2.0
TIMER_LEASE_S = 10.0
"""How long a claimed timer is hidden from other replicas; a step takes far less. A replica
that dies holding a lease delays that timer by at most this much."""
OUTAGE_PAUSES_S = (0.5, 1.0, 2.0, 5.0)
"""Pauses between rounds of periodic work while the database is unreachable (the last one
repeats); never shorter than the work's own interval."""


@dataclass(frozen=True)
class PeriodicOutcome:
    """What one piece of periodic work records, committed by the runtime in ONE transaction:
    its events (on `stream_id`, after `expected_version`; None: at the stream's end), writes of
    its own (`in_transaction`: service state, the next timers) and the deletion of the timers it
    fired. When another writer got there first (a ConcurrencyError: the stream or the state
    document moved on), nothing is recorded and the fired timers are given back, to run again on
    what that writer recorded."""

    stream_id: str
    events: Sequence[Event] = ()
    expected_version: int | None = None
    in_transaction: Callable[[UnitOfWork], Awaitable[None]] | None = None
    fired: Sequence[timers.Timer] = ()


class PeriodicContext:
    """What periodic work may use: read access to the store, its service's due timers, and
    `record` for work that commits outcomes side by side."""

    def __init__(
        self,
        service: str,
        store: SqlEventStore,
        record: Callable[[PeriodicOutcome], Awaitable[bool]],
    ) -> None:
        self.service = service
        self.store: EventStoreReader = store
        self._store = store
        self._record = record
        self.recorded = 0
        """Outcomes committed through `record` in this round."""

    async def record(self, outcome: PeriodicOutcome) -> bool:
        """Commit one outcome now, as the runtime commits a yielded one; False when another
        writer got there first (the outcome's timers are given back). For work that keeps
        several outcomes in flight (the timer loop), so one commit does not wait for another."""
        recorded = await self._record(outcome)
        self.recorded += recorded
        return recorded

    async def claim_due_timers(
        self, limit: int = 100, *, skip_workflows: Collection[str] = ()
    ) -> list[timers.Timer]:
        """Lease up to `limit` of the service's timers due now (oldest first), none of
        `skip_workflows`, so replicas share them without firing one twice at once; yield each
        in the outcome that records what it did. An expired lease makes a timer claimable
        again."""
        return await timers.claim_due(
            self._store,
            self.service,
            datetime.now(UTC),
            TIMER_LEASE_S,
            limit,
            skip_workflows=skip_workflows,
        )

    async def extend_leases(self, held: Sequence[timers.Timer]) -> list[timers.Timer]:
        """Renew the leases of claimed timers still being worked on (work that may outlast
        TIMER_LEASE_S renews every third of it); returns those renewed."""
        return await timers.extend_lease(self._store, held, datetime.now(UTC), TIMER_LEASE_S)


PeriodicWork = Callable[
    [PeriodicContext], AsyncGenerator[PeriodicOutcome, None] | Coroutine[Any, Any, None]
]


@dataclass(frozen=True)
class Periodic:
    """Work the runtime runs every `interval_s` — again at once after a round that recorded
    something. `run_once` reads, decides and yields what to record (an async generator), or
    hands each outcome to `context.record` (a coroutine: work that commits side by side); it
    writes nothing else itself."""

    name: str
    interval_s: float
    run_once: PeriodicWork


class PeriodicRunner:
    """Runs periodic work of one service and commits what it yields, each outcome as soon as it
    is yielded (or hands to `context.record`); `on_commit` (the relay's wake-up) follows every
    commit that appended events."""

    def __init__(
        self,
        service: str,
        store: SqlEventStore,
        *,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._service = service
        self._store = store
        self._on_commit = on_commit

    async def run(self, periodic: Periodic) -> None:
        """Round after round until cancelled. A database outage is waited out with growing
        pauses; any other error propagates, and the task running this dies of it."""
        outages = 0
        while True:
            try:
                recorded = await self.run_once(periodic)
            except Exception as error:
                if not is_database_unavailable(error):
                    raise
                pause_s = max(
                    periodic.interval_s, OUTAGE_PAUSES_S[min(outages, len(OUTAGE_PAUSES_S) - 1)]
                )
                outages += 1
                log.warning(
                    "periodic work could not reach the database; retrying",
                    service=self._service,
                    task=periodic.name,
                    retry_in_s=pause_s,
                    error=str(error),
                )
                await asyncio.sleep(pause_s)
                continue
            outages = 0
            if not recorded:
                await asyncio.sleep(periodic.interval_s)

    async def run_once(self, periodic: Periodic) -> int:
        """One round; returns how many of its outcomes were recorded."""
        recorded = 0
        context = PeriodicContext(self._service, self._store, self.record)
        work = periodic.run_once(context)
        if not isinstance(work, AsyncGenerator):
            await work
            return context.recorded
        async with contextlib.aclosing(work) as outcomes:
            async for outcome in outcomes:
                recorded += await self.record(outcome)
        return recorded

    async def record(self, outcome: PeriodicOutcome) -> bool:
        """Commit one outcome; False when another writer got there first."""
        fired = [timer.id for timer in outcome.fired]
        try:
            async with self._store.unit_of_work() as uow:
                # The appends last: the position lock they take is held only for them and the
                # commit, not through the writes before them (docs/operations.md, Capacity model).
                if outcome.in_transaction is not None:
                    await outcome.in_transaction(uow)
                if fired:
                    await timers.complete(uow, *fired)
                if outcome.events:
                    await uow.append(outcome.stream_id, outcome.expected_version, outcome.events)
        except ConcurrencyError as conflict:
            log.info(
                "another writer recorded first; nothing recorded, the timers run again",
                service=self._service,
                stream_id=outcome.stream_id,
                conflict=str(conflict),
            )
            if fired:
                await timers.release(self._store, *fired)
            return False
        if outcome.events and self._on_commit is not None:
            self._on_commit()
        return True


@dataclass(frozen=True)
class ServiceDefinition:
    """What makes one service different from another; everything else is shared runtime."""

    name: str
    event_types: tuple[str, ...]
    handler: EventHandler | None
    """None for a read-only service (the web dashboard): no event types, no consumer, no bus
    and no relay; it only reads the store (docs/decisions.md)."""
    routers: Callable[[ServiceRuntime], Sequence[APIRouter]] = lambda runtime: ()
    periodic: Sequence[Periodic] = field(default=())
    on_stop: Sequence[Callable[[], Awaitable[None]]] = field(default=())
    """Releases what the service's steps hold (broker connections), after its loops stopped."""
    collectors: Sequence[Collector] = field(default=())
    """Metrics of the service's own (notify's business series), served on its /metrics beside
    the runtime's."""


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
        for collector in definition.collectors:
            self.metrics.registry.register(collector)
        self._owns_transports = shared_relay is None
        self.relay = shared_relay or OutboxRelay(
            store, bus, self.metrics, routed=ANSWERED_EVENT_TYPES
        )
        self.consumer = (
            None
            if definition.handler is None
            else Consumer(
                definition.name,
                store,
                bus,
                definition.handler,
                definition.event_types,
                metrics=self.metrics,
                on_commit=self.relay.wake,
                queue=settings.bus_queue(definition.name),
            )
        )
        self._periodic = PeriodicRunner(definition.name, store, on_commit=self.relay.wake)
        self._connect_retry_s = connect_retry_s
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._failed = asyncio.Event()
        self.failure: str | None = None
        """Which task died and of what, once one has: the service is not ready from then on."""

    @property
    def name(self) -> str:
        return self.definition.name

    async def start(self) -> None:
        """Return at once; the bus is attached in the background so a broker outage at start-up
        leaves the process alive and reporting 503 on /readyz instead of crash-looping."""
        self._stopping = False
        if self.consumer is not None:
            self._spawn(self._attach_bus(self.consumer), "attach-bus", until_done=True)
            if self._owns_transports:
                self._spawn(self.relay.run(), "outbox-relay")
        for periodic in self.definition.periodic:
            self._spawn(self._periodic.run(periodic), periodic.name)

    async def wait_failed(self) -> str:
        """Wait until a task of the runtime dies; returns `failure`."""
        await self._failed.wait()
        assert self.failure is not None
        return self.failure

    async def _attach_bus(self, consumer: Consumer) -> None:
        while True:
            try:
                await self.bus.connect()
                await consumer.start()
                log.info("consumer attached", service=self.name, queue=consumer.queue)
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("bus not reachable yet; retrying", service=self.name, error=str(error))
                await asyncio.sleep(self._connect_retry_s)

    def _spawn(
        self, work: Coroutine[Any, Any, None], name: str, *, until_done: bool = False
    ) -> None:
        """`until_done`: the task ends by itself when its work is done; every other task runs
        until `stop`, and ending before it is a death."""
        task = asyncio.create_task(work, name=f"{self.name}:{name}")
        task.add_done_callback(lambda ended: self._supervise(ended, until_done))
        self._tasks.append(task)

    def _supervise(self, task: asyncio.Task[None], until_done: bool) -> None:
        if self._stopping:
            return
        error: BaseException | None = None
        if task.cancelled():
            reason = "cancelled by something other than the service's stop"
        elif (error := task.exception()) is not None:
            reason = f"{type(error).__name__}: {error}"
        elif until_done:
            return
        else:
            reason = "returned although it should run until the service stops"
        if self.failure is None:
            self.failure = f"background task {task.get_name()!r} died: {reason}"
        log.error(
            "service task died; the service is not ready and stops",
            service=self.name,
            task=task.get_name(),
            reason=reason,
            exc_info=error,
        )
        self._failed.set()

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)  # a dead one said why
        self._tasks.clear()
        for release in self.definition.on_stop:
            await release()
        if self._owns_transports:
            await self.bus.close()
            await self.store.close()

    async def readiness(self) -> Readiness:
        if self.failure is not None:
            return Readiness(False, self.failure)
        try:
            await asyncio.wait_for(self.store.ping(), READINESS_TIMEOUT_S)
        except Exception as error:
            return Readiness(False, f"database unreachable: {type(error).__name__}: {error}")
        if self.consumer is None:
            return Readiness(True)
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
