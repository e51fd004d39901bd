"""The consumer loop: decode, skip what the inbox has seen, handle, then append what the handler
emits together with the inbox row in ONE transaction, and only then acknowledge.

The handler runs before the transaction opens, so no database transaction is ever held across
a broker call or any other I/O a handler makes. Should two deliveries of one event race (a
redelivery while the first is still being handled), the inbox's primary key lets exactly one
transaction commit; the other's emitted events roll back with it. The inbox read, and the
commit of a delivery that emitted nothing, are group-committed with the other deliveries in
flight (`shared.messaging.inbox_batch`); a delivery that emitted events commits alone, as one
statement (`SqlEventStore.append`) or, when the handler writes tables of its own, one unit of
work.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from shared.bus.port import Bus, Message
from shared.events import Event, decode
from shared.events.workflow import WorkflowFailed
from shared.eventstore.errors import (
    ConcurrencyError,
    DuplicateInboxError,
    EventStoreUnavailableError,
)
from shared.eventstore.port import EventStoreReader
from shared.eventstore.records import InboxEntry
from shared.eventstore.store import SqlEventStore, UnitOfWork
from shared.messaging.inbox_batch import InboxBatch
from shared.service.metrics import ServiceMetrics
from shared.workflow import WorkflowKind, answering_service, failure_step_of

log = structlog.get_logger(__name__)

E = TypeVar("E", bound=Event)

_APPEND_ATTEMPTS = 5
_CLAIM_ATTEMPTS = 3
DATABASE_RETRY_PAUSES_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


async def while_database_unavailable(operation: Callable[[], Awaitable[None]], what: str) -> None:
    """Run `operation`, retrying it with backoff while the database is unreachable; any other
    error, or an outage longer than the pauses, propagates."""
    for pause_s in (*DATABASE_RETRY_PAUSES_S, None):
        try:
            await operation()
            return
        except Exception as error:
            if pause_s is None or not is_database_unavailable(error):
                raise
            log.warning(
                "database unavailable; held and retried",
                event_type=what,
                retry_in_s=pause_s,
                error=str(error),
            )
            await asyncio.sleep(pause_s)


def is_database_unavailable(error: BaseException) -> bool:
    """A lost or refused database connection — worth waiting for — as opposed to an error of
    the message or the handler."""
    if isinstance(error, EventStoreUnavailableError | ConnectionError | TimeoutError):
        return True
    if isinstance(error, OperationalError | InterfaceError):
        return True
    if not isinstance(error, DBAPIError):
        return False
    return bool(error.connection_invalidated) or _server_unavailable(
        getattr(error.orig, "sqlstate", None)
    )


def _server_unavailable(sqlstate: str | None) -> bool:
    """SQLSTATE class 08 (connection exception) and 57P01–57P03 (the server shutting down,
    restarting after a crash, or not accepting connections yet): what a restart of PostgreSQL
    answers, which the driver reports as an error of its own rather than a lost connection."""
    return sqlstate is not None and (
        sqlstate.startswith("08") or sqlstate in ("57P01", "57P02", "57P03")
    )


@dataclass(frozen=True)
class HandlerContext:
    """What a handler may use: the service's identity and read access to the store. A handler
    writes nothing itself; what it returns is committed for it, with the inbox row."""

    service: str
    store: EventStoreReader

    def follow_up(self, cause: Event, event_class: type[E], **payload: Any) -> E:
        """A new event of the cause's workflow, caused by it and sourced from this service."""
        return event_class(
            **cause.caused(source=self.service, occurred_at=datetime.now(UTC)), **payload
        )

    def failure(self, cause: Event, step: str, reason: str) -> WorkflowFailed:
        """The workflow's failure at `step` (signal_generation, portfolio_analysis,
        trade_execution), caused by `cause`, with the real cause in words."""
        return self.follow_up(
            cause,
            WorkflowFailed,
            failure_step=step,
            failure_reason=reason,
            error_details={
                "original_event_type": cause.event_type,
                "original_event_id": str(cause.event_id),
            },
        )


@dataclass(frozen=True)
class StreamClaim:
    """An event for a stream that must still be empty: of handlers racing to record it, exactly
    one does. A handler that loses has all its handling rolled back and runs again, so it reads
    what the winner recorded instead of recording a second one
    (docs/trading-rules.md, Shared signals). It is appended at version 0, which the store checks
    before inserting: a lost race is a ConcurrencyError naming the stream even when the winner
    recorded the very same event."""

    stream_id: str
    event: Event


@dataclass(frozen=True)
class HandlerOutcome:
    """What a handler emits, plus writes of its own (service state, durable timers) that must
    commit in the same transaction as the emitted events and the inbox row."""

    events: Sequence[Event] = ()
    in_transaction: Callable[[UnitOfWork], Awaitable[None]] | None = None
    claims: Sequence[StreamClaim] = ()
    after_commit: Callable[[], None] | None = None
    """Runs once the handling is committed, never for a delivery that lost to another: what
    counts a fact (a metric) counts it exactly once per event, however often it was delivered."""


EventHandler = Callable[[Event, HandlerContext], Awaitable[Sequence[Event] | HandlerOutcome]]


def stream_of(service: str, correlation_id: str) -> str:
    """Each service appends a workflow's events to a stream of its own, so services never
    contend for one stream's versions."""
    return f"{correlation_id}/{service}"


class Consumer:
    def __init__(
        self,
        service: str,
        store: SqlEventStore,
        bus: Bus,
        handler: EventHandler,
        event_types: Sequence[str],
        *,
        metrics: ServiceMetrics | None = None,
        on_commit: Callable[[], None] | None = None,
        queue: str | None = None,
    ) -> None:
        self.service = service
        self.queue = queue or f"alchemiser.{service}"
        self._store = store
        self._bus = bus
        self._handler = handler
        self._event_types = tuple(event_types)
        self._metrics = metrics
        self._on_commit = on_commit
        self._context = HandlerContext(service=service, store=store)
        self._inbox = InboxBatch(store, service)

    async def start(self) -> None:
        await self._bus.subscribe(
            self.queue, self._event_types, self.handle_message, on_dead_letter=self.dead_lettered
        )

    async def handle_message(self, message: Message) -> None:
        """Handle one delivery. While the database is unreachable the delivery is held and
        retried here with backoff (about a minute in all) instead of being failed at once: a
        restarting database must not burn a message's delivery attempts in milliseconds and
        dead-letter a healthy event."""
        event = decode(message.body)
        await while_database_unavailable(lambda: self._handle(event), event.event_type)

    async def _handle(self, event: Event) -> None:
        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(
            correlation_id=event.correlation_id, event_id=str(event.event_id)
        ):
            if await self._seen(event):
                log.info("duplicate delivery skipped", event_type=event.event_type)
                self._count(event.event_type, "duplicate")
                return
            outcome, committed = await self._handle_and_commit(event)
            if committed and outcome.after_commit is not None:
                outcome.after_commit()
            self._count(event.event_type, "handled" if committed else "duplicate")
            if self._metrics is not None:
                self._metrics.handler_latency.labels(
                    service=self.service, event_type=event.event_type
                ).observe(time.perf_counter() - started)

    async def _seen(self, event: Event) -> bool:
        return await self._inbox.seen(event.event_id)

    async def _handle_and_commit(self, event: Event) -> tuple[HandlerOutcome, bool]:
        """Run the handler and commit what it returned; when a stream it claimed was written
        first by another, run it again on what the store now holds."""
        for _ in range(_CLAIM_ATTEMPTS - 1):
            outcome = await self._outcome(event)
            try:
                return outcome, await self._commit(event, outcome)
            except ConcurrencyError as error:
                if error.stream_id not in {claim.stream_id for claim in outcome.claims}:
                    raise
                log.info(
                    "claimed stream recorded by another; handled again", stream=error.stream_id
                )
        outcome = await self._outcome(event)
        return outcome, await self._commit(event, outcome)

    async def _outcome(self, event: Event) -> HandlerOutcome:
        result = await self._handler(event, self._context)
        return result if isinstance(result, HandlerOutcome) else HandlerOutcome(result)

    async def _commit(self, cause: Event, outcome: HandlerOutcome) -> bool:
        """Append and record the inbox row atomically; False when another delivery won."""
        if not outcome.events and outcome.in_transaction is None and not outcome.claims:
            # Only the inbox row: nothing for the relay to publish, so it is not woken.
            return await self._inbox.record(cause.event_id)
        stream_id = stream_of(self.service, cause.correlation_id)
        handled = InboxEntry(self.service, cause.event_id)
        claimed = {claim.stream_id for claim in outcome.claims}
        for attempt in range(1, _APPEND_ATTEMPTS + 1):
            try:
                if outcome.in_transaction is None and not outcome.claims:
                    await self._store.append(stream_id, None, outcome.events, inbox=handled)
                else:
                    async with self._store.unit_of_work() as uow:
                        # The inbox row first: a second delivery handled side by side waits on
                        # it and is refused as a duplicate before the handler's own writes
                        # (service state, timers) can conflict with the first one's. The
                        # appends last, so the position lock they take is held only for them
                        # and the commit (docs/operations.md, Capacity model).
                        await uow.record_inbox(self.service, cause.event_id)
                        if outcome.in_transaction is not None:
                            await outcome.in_transaction(uow)
                        if outcome.events:
                            await uow.append(stream_id, None, outcome.events)
                        for claim in outcome.claims:
                            await uow.append(claim.stream_id, 0, [claim.event])
            except DuplicateInboxError:
                return False
            except ConcurrencyError as error:
                if attempt == _APPEND_ATTEMPTS or error.stream_id in claimed:
                    raise
                continue
            if self._on_commit is not None:
                self._on_commit()
            return True
        return False

    async def dead_lettered(self, message: Message, reason: str) -> None:
        """A poison message fails its workflow, where one is known, so nobody waits on it."""
        log.error(
            "message dead-lettered",
            routing_key=message.routing_key,
            message_id=message.message_id,
            reason=reason,
        )
        if self._metrics is not None:
            self._metrics.dead_lettered.labels(
                service=self.service, event_type=message.routing_key
            ).inc()
        envelope = _readable_envelope(message.body)
        if envelope is None or message.routing_key == "WorkflowFailed":
            return
        kind = envelope["kind"]
        step = failure_step_of(self.service, kind)
        if step is None or answering_service(message.routing_key, kind) != self.service:
            return
        failure = WorkflowFailed(
            correlation_id=envelope["correlation_id"],
            causation_id=message.message_id or None,
            account_id=envelope["account_id"],
            source=self.service,
            occurred_at=datetime.now(UTC),
            workflow_type="trading",
            failure_step=step,
            failure_reason=(
                f"{self.service} could not process {message.routing_key} "
                f"{message.message_id} and moved it to the dead-letter queue: {reason}"
            ),
            error_details={
                "original_event_type": message.routing_key,
                "original_event_id": message.message_id or None,
            },
        )

        async def record() -> None:
            await self._store.append(
                stream_of(self.service, failure.correlation_id), None, [failure]
            )

        await while_database_unavailable(record, "WorkflowFailed")
        if self._on_commit is not None:
            self._on_commit()

    def _count(self, event_type: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.events_consumed.labels(
                service=self.service, event_type=event_type, outcome=outcome
            ).inc()


def _readable_envelope(body: bytes) -> dict[str, Any] | None:
    """The workflow, account and kind of a message that failed to decode, when its JSON says
    the first two (the kind is a daily run unless it names another)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    correlation_id, account_id = data.get("correlation_id"), data.get("account_id")
    if not (isinstance(correlation_id, str) and correlation_id and isinstance(account_id, str)):
        return None
    named = data.get("workflow_type")
    kinds = {kind.value: kind for kind in WorkflowKind}
    kind = kinds.get(named, WorkflowKind.DAILY) if isinstance(named, str) else WorkflowKind.DAILY
    return {"correlation_id": correlation_id, "account_id": account_id, "kind": kind}
