"""The consumer loop and the outbox relay over the real stores and buses: each event's effects
happen once, whatever the bus delivers twice, and a poison message never stalls a consumer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.bus.memory import InMemoryBus
from shared.bus.port import Bus, Message
from shared.bus.rabbitmq import RabbitMqBus
from shared.events import Event, encode
from shared.events.notifications import NotificationSent
from shared.events.workflow import WorkflowFailed, WorkflowStarted
from shared.eventstore import service_state
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore, UnitOfWork
from shared.messaging.consumer import (
    Consumer,
    HandlerContext,
    HandlerOutcome,
    StreamClaim,
    stream_of,
)
from shared.messaging.relay import OutboxRelay
from tests.eventually import eventually
from tests.integration.eventstore.position_lock import holds_position_lock
from tests.servers import (
    RABBITMQ_URL,
    create_postgres_database,
    delete_bus_namespace,
    drop_postgres_database,
    require_server,
    unique_bus_namespace,
)


def started_event(workflow_id: str | None = None) -> WorkflowStarted:
    return WorkflowStarted(
        correlation_id=workflow_id or str(uuid.uuid4()),
        account_id="default",
        occurred_at=datetime.now(UTC),
        source="test",
        requested_by="test",
        configuration={"live_trading": False},
        trading_date=datetime.now(UTC).date(),
        force=True,
        idempotency_key=f"paper:default:{uuid.uuid4()}",
    )


class Recorder:
    """A handler that counts its calls and emits one follow-up event per input."""

    def __init__(self, fail_times: int = 0) -> None:
        self.calls = 0
        self.fail_times = fail_times

    async def __call__(self, event: Event, context: HandlerContext) -> Sequence[Event]:
        self.calls += 1
        if self.calls <= self.fail_times:
            raise RuntimeError(f"failing on purpose, call {self.calls}")
        return [
            context.follow_up(event, NotificationSent, channel="email", status="sent", attempts=1)
        ]


async def effects(store: SqlEventStore, workflow_id: str, service: str) -> list[Event]:
    return [recorded.event for recorded in await store.read_stream(stream_of(service, workflow_id))]


async def inbox_count(store: SqlEventStore, service: str, event_id: uuid.UUID) -> int:
    return len(await store.seen_among(service, [event_id]))


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlEventStore]:
    on_postgres = request.param == "postgresql"
    if on_postgres:
        url = await create_postgres_database()
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    await upgrade(url)
    event_store = SqlEventStore(url)
    try:
        yield event_store
    finally:
        await event_store.close()
        if on_postgres:
            await drop_postgres_database(url)


@pytest.fixture
def namespace() -> str:
    return unique_bus_namespace()


@pytest.fixture(params=["memory", "rabbitmq"])
async def bus(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[Bus]:
    if request.param == "memory":
        the_bus: Bus = InMemoryBus(max_deliveries=3)
    else:
        require_server("RabbitMQ", RABBITMQ_URL)
        the_bus = RabbitMqBus(RABBITMQ_URL, exchange=f"{namespace}.events", max_deliveries=3)
    await the_bus.connect()
    try:
        yield the_bus
    finally:
        await the_bus.close()
        if request.param == "rabbitmq":
            await delete_bus_namespace(namespace)


def consumer_for(
    store: SqlEventStore,
    bus: Bus,
    handler: Recorder,
    relay: OutboxRelay,
    namespace: str,
    service: str = "portfolio",
) -> Consumer:
    return Consumer(
        service,
        store,
        bus,
        handler,
        ["WorkflowStarted"],
        on_commit=relay.wake,
        queue=f"{namespace}.{service}",
    )


async def test_an_appended_event_is_relayed_consumed_and_its_effects_recorded_once(
    store: SqlEventStore, bus: Bus, namespace: str
) -> None:
    relay = OutboxRelay(store, bus)
    handler = Recorder()
    consumer = consumer_for(store, bus, handler, relay, namespace)
    await consumer.start()
    published: list[Message] = []

    async def notify_sink(message: Message) -> None:  # binds everything, as an observer would
        published.append(message)

    await bus.subscribe(f"{namespace}.notify", ["#"], notify_sink)
    started = started_event()
    async with store.unit_of_work() as uow:
        await uow.append(f"daily/{started.idempotency_key}", 0, [started])
    assert await relay.publish_pending() >= 1

    await eventually(lambda: handler.calls == 1, message="the consumer handled the event")
    emitted = await eventually(lambda: effects(store, started.correlation_id, consumer.service))
    assert [event.event_type for event in emitted] == ["NotificationSent"]
    assert emitted[0].causation_id == str(started.event_id)
    assert await inbox_count(store, consumer.service, started.event_id) == 1
    # The consumer's own commit put the follow-up into the outbox; the relay sends it.
    await relay.publish_pending()
    assert await store.outbox_lag() == 0
    await eventually(lambda: len(published) == 2)
    assert sorted(message.routing_key for message in published) == [
        "NotificationSent",
        "WorkflowStarted",
    ]


async def test_the_same_event_delivered_twice_has_its_effects_once(
    store: SqlEventStore, bus: Bus, namespace: str
) -> None:
    relay = OutboxRelay(store, bus)
    handler = Recorder()
    consumer = consumer_for(store, bus, handler, relay, namespace)
    await consumer.start()
    started = started_event()
    body = encode(started)
    for _ in range(2):  # a duplicate publish, as after a relay crash before mark_sent
        await bus.publish("WorkflowStarted", body, message_id=str(started.event_id))

    async def both_settled() -> bool:
        return await inbox_count(store, consumer.service, started.event_id) == 1

    await eventually(both_settled)
    emitted = await effects(store, started.correlation_id, consumer.service)
    assert len(emitted) == 1
    assert handler.calls == 1


async def test_a_redelivery_after_a_failed_attempt_is_handled_once(
    store: SqlEventStore, bus: Bus, namespace: str
) -> None:
    relay = OutboxRelay(store, bus)
    handler = Recorder(fail_times=1)  # the first attempt fails before any commit
    consumer = consumer_for(store, bus, handler, relay, namespace)
    await consumer.start()
    started = started_event()
    await bus.publish("WorkflowStarted", encode(started), message_id=str(started.event_id))

    emitted = await eventually(lambda: effects(store, started.correlation_id, consumer.service))
    assert len(emitted) == 1
    assert handler.calls == 2


async def test_a_commit_whose_ack_is_lost_is_skipped_on_redelivery(
    store: SqlEventStore, bus: Bus, namespace: str
) -> None:
    relay = OutboxRelay(store, bus)
    handler = Recorder()
    consumer = consumer_for(store, bus, handler, relay, namespace)
    lost_acks = 0
    original = consumer.handle_message

    async def commit_then_lose_the_ack(message: Message) -> None:
        nonlocal lost_acks
        await original(message)
        if lost_acks == 0:
            lost_acks += 1
            raise ConnectionError("connection dropped before the ack")  # -> nack, redelivered

    await bus.subscribe(consumer.queue, ["WorkflowStarted"], commit_then_lose_the_ack)
    started = started_event()
    await bus.publish("WorkflowStarted", encode(started), message_id=str(started.event_id))

    await eventually(lambda: lost_acks == 1)
    emitted = await eventually(lambda: effects(store, started.correlation_id, consumer.service))
    await eventually(lambda: handler.calls >= 1)
    assert handler.calls == 1  # the redelivery was skipped by the inbox before the handler
    assert len(await effects(store, started.correlation_id, consumer.service)) == len(emitted) == 1


@pytest.mark.parametrize(
    ("body", "routing_key", "fails_workflow"),
    [
        (b"{not json", "WorkflowStarted", False),
        (
            b'{"event_type": "NoSuchEvent", "schema_version": 1, "event_id": "'
            + str(uuid.uuid4()).encode()
            + b'", "correlation_id": "wf-poison", "account_id": "default"}',
            "WorkflowStarted",
            True,
        ),
    ],
    ids=["invalid-json", "unknown-type"],
)
async def test_a_poison_message_is_dead_lettered_with_its_reason_and_the_consumer_goes_on(
    store: SqlEventStore,
    bus: Bus,
    namespace: str,
    body: bytes,
    routing_key: str,
    fails_workflow: bool,
) -> None:
    relay = OutboxRelay(store, bus)
    handler = Recorder()
    consumer = consumer_for(store, bus, handler, relay, namespace, service="strategy")
    await consumer.start()
    await bus.publish(routing_key, body, message_id=str(uuid.uuid4()))
    healthy = started_event()
    await bus.publish("WorkflowStarted", encode(healthy), message_id=str(healthy.event_id))

    await eventually(lambda: handler.calls == 1, message="the next message was handled")
    dead = await eventually(lambda: bus.dead_letters(consumer.queue), timeout_s=15)
    assert len(dead) == 1
    assert dead[0].body == body
    assert dead[0].headers["x-alchemiser-error"]
    failures = [
        recorded.event
        for recorded in await store.read_correlation("wf-poison")
        if isinstance(recorded.event, WorkflowFailed)
    ]
    assert len(failures) == (1 if fails_workflow else 0)
    if fails_workflow:
        assert failures[0].failure_step == "signal_generation"
        assert "dead-letter" in failures[0].failure_reason


async def test_a_handlers_own_writes_commit_or_roll_back_with_its_events(
    store: SqlEventStore, bus: Bus, namespace: str
) -> None:
    relay = OutboxRelay(store, bus)
    writes: list[str] = []

    async def handler(event: Event, context: HandlerContext) -> HandlerOutcome:
        async def write_state(uow: UnitOfWork) -> None:
            writes.append("attempt")
            if len(writes) == 1:
                raise RuntimeError("the state write fails on the first attempt")

        follow_up = context.follow_up(
            event, NotificationSent, channel="email", status="sent", attempts=1
        )
        return HandlerOutcome(events=[follow_up], in_transaction=write_state)

    consumer = Consumer(
        "portfolio",
        store,
        bus,
        handler,
        ["WorkflowStarted"],
        on_commit=relay.wake,
        queue=f"{namespace}.portfolio",
    )
    await consumer.start()
    started = started_event()
    await bus.publish("WorkflowStarted", encode(started), message_id=str(started.event_id))

    emitted = await eventually(lambda: effects(store, started.correlation_id, "portfolio"))
    assert len(writes) == 2  # the failed attempt rolled back its events and inbox row
    assert len(emitted) == 1
    assert await inbox_count(store, "portfolio", started.event_id) == 1


async def test_a_handler_that_emits_nothing_still_consumes_each_event_once(
    store: SqlEventStore, bus: Bus, namespace: str
) -> None:
    calls = 0

    async def handler(event: Event, context: HandlerContext) -> Sequence[Event]:
        nonlocal calls
        calls += 1
        return ()

    consumer = Consumer(
        "notify", store, bus, handler, ["WorkflowStarted"], queue=f"{namespace}.notify"
    )
    await consumer.start()
    started = started_event()
    for _ in range(3):
        await bus.publish("WorkflowStarted", encode(started), message_id=str(started.event_id))

    await eventually(lambda: inbox_count(store, "notify", started.event_id))
    await eventually(lambda: calls >= 1)
    assert calls == 1


async def test_a_delivery_is_held_while_the_database_is_unreachable_not_dead_lettered(
    store: SqlEventStore, bus: Bus, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.messaging import consumer as consumer_module

    monkeypatch.setattr(consumer_module, "DATABASE_RETRY_PAUSES_S", (0.01,) * 10)
    outage_left = 6  # more failures than the bus allows deliveries (3)
    calls = 0

    async def handler(event: Event, context: HandlerContext) -> Sequence[Event]:
        nonlocal outage_left, calls
        calls += 1
        if outage_left:
            outage_left -= 1
            raise ConnectionRefusedError("the database is restarting")
        return ()

    consumer = Consumer(
        "portfolio", store, bus, handler, ["WorkflowStarted"], queue=f"{namespace}.portfolio"
    )
    deliveries: list[int] = []
    handle = consumer.handle_message

    async def counting(message: Message) -> None:
        deliveries.append(message.delivery_count)
        await handle(message)

    await bus.subscribe(consumer.queue, ["WorkflowStarted"], counting)
    started = started_event()
    await bus.publish("WorkflowStarted", encode(started), message_id=str(started.event_id))

    await eventually(lambda: inbox_count(store, "portfolio", started.event_id))
    assert deliveries == [1]  # held and retried in place: no redelivery, nothing dead-lettered
    assert calls == 7
    assert await bus.dead_letters(consumer.queue) == []


async def test_two_deliveries_handled_side_by_side_commit_once_and_the_other_is_a_duplicate(
    store: SqlEventStore,
) -> None:
    """Both deliveries pass the inbox check before either commits (a relay that published twice,
    a redelivery during the first attempt); the handler writes state of its own at version 0.
    The second must be refused as a duplicate — acknowledged, no error — not fail on the state
    write and burn a delivery attempt."""
    both_handling = asyncio.Barrier(2)

    async def handler(event: Event, context: HandlerContext) -> HandlerOutcome:
        await both_handling.wait()

        async def create_state(uow: UnitOfWork) -> None:
            await service_state.save(uow, "portfolio", event.correlation_id, {"step": 1}, 0)

        follow_up = context.follow_up(
            event, NotificationSent, channel="email", status="sent", attempts=1
        )
        return HandlerOutcome(events=[follow_up], in_transaction=create_state)

    consumer = Consumer("portfolio", store, InMemoryBus(), handler, ["WorkflowStarted"])
    started = started_event()
    message = Message("WorkflowStarted", encode(started), str(started.event_id), {}, 1)
    await asyncio.gather(consumer.handle_message(message), consumer.handle_message(message))

    assert len(await effects(store, started.correlation_id, "portfolio")) == 1
    assert await inbox_count(store, "portfolio", started.event_id) == 1


async def test_of_two_handlers_claiming_one_stream_one_records_and_the_other_runs_again(
    store: SqlEventStore,
) -> None:
    """Two workflows' handlers both find the claimed stream empty and both claim it; exactly one
    commits its claim, and the other's whole handling rolls back and runs again, now finding
    the winner's event to use instead of recording a second
    (docs/trading-rules.md, Shared signals)."""
    claimed = "claim/one-per-key"
    both_handling = asyncio.Barrier(2)
    calls: list[str] = []

    def sent(event: Event, context: HandlerContext, target: str | None) -> NotificationSent:
        return context.follow_up(
            event, NotificationSent, channel="email", status="sent", attempts=1, target=target
        )

    async def handler(event: Event, context: HandlerContext) -> HandlerOutcome:
        calls.append(event.correlation_id)
        recorded = await context.store.read_stream(claimed)
        if recorded:
            return HandlerOutcome([sent(event, context, str(recorded[0].event.event_id))])
        await both_handling.wait()
        mine = sent(event, context, None)
        own = sent(event, context, str(mine.event_id))
        return HandlerOutcome([own], claims=[StreamClaim(claimed, mine)])

    consumer = Consumer("portfolio", store, InMemoryBus(), handler, ["WorkflowStarted"])
    starts = [started_event(), started_event()]
    await asyncio.gather(
        *(
            consumer.handle_message(
                Message("WorkflowStarted", encode(start), str(start.event_id), {}, 1)
            )
            for start in starts
        )
    )

    [winner] = [recorded.event for recorded in await store.read_stream(claimed)]
    assert len(calls) == 3
    for start in starts:
        [effect] = await effects(store, start.correlation_id, "portfolio")
        assert isinstance(effect, NotificationSent)
        assert effect.target == str(winner.event_id)
        assert await inbox_count(store, "portfolio", start.event_id) == 1


async def test_a_handlers_own_writes_run_before_its_appends_take_the_position_lock(
    store: SqlEventStore,
) -> None:
    """The consumer's unit of work writes the inbox row and the handler's own tables first and
    appends last, so the global position lock is held only for the appends and the commit
    (docs/operations.md, Capacity model)."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: there is no position lock to take late")
    locked_during_writes: list[bool] = []

    async def handler(event: Event, context: HandlerContext) -> HandlerOutcome:
        async def write_state(uow: UnitOfWork) -> None:
            await service_state.save(uow, "portfolio", event.correlation_id, {"step": 1}, 0)
            locked_during_writes.append(await holds_position_lock(uow))

        def sent() -> NotificationSent:
            return context.follow_up(
                event, NotificationSent, channel="email", status="sent", attempts=1
            )

        return HandlerOutcome(
            events=[sent()],
            in_transaction=write_state,
            claims=[StreamClaim(f"claim/{event.correlation_id}", sent())],
        )

    consumer = Consumer("portfolio", store, InMemoryBus(), handler, ["WorkflowStarted"])
    started = started_event()
    await consumer.handle_message(
        Message("WorkflowStarted", encode(started), str(started.event_id), {}, 1)
    )

    assert locked_during_writes == [False]
    assert len(await effects(store, started.correlation_id, "portfolio")) == 1
    assert len(await store.read_stream(f"claim/{started.correlation_id}")) == 1
    assert await inbox_count(store, "portfolio", started.event_id) == 1
