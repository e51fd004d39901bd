"""A relay process killed between commit and publish, or between publish and marking the rows
sent, loses nothing and doubles nothing downstream (real RabbitMQ, real PostgreSQL)."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest

from shared.bus.port import Message
from shared.bus.rabbitmq import RabbitMqBus
from shared.events import Event
from shared.events.notifications import NotificationSent
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.messaging.consumer import Consumer, HandlerContext, stream_of
from shared.messaging.relay import OutboxRelay
from tests.eventually import eventually
from tests.servers import delete_bus_namespace, unique_bus_namespace

pytestmark = pytest.mark.integration

# Runs in a child process: commit one WorkflowStarted, then die at the named point.
CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys, uuid
    from datetime import UTC, datetime
    from shared.bus.rabbitmq import RabbitMqBus
    from shared.events.workflow import WorkflowStarted
    from shared.eventstore.store import SqlEventStore
    from shared.messaging.relay import OutboxRelay

    database_url, rabbitmq_url, exchange, crash_at, workflow_id = sys.argv[1:6]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    async def main():
        store = SqlEventStore(database_url)
        started = WorkflowStarted(
            correlation_id=workflow_id, account_id="default", occurred_at=datetime.now(UTC),
            source="strategy", requested_by="test", configuration={"live_trading": False},
            trading_date=datetime.now(UTC).date(), force=True,
            idempotency_key=f"paper:default:{uuid.uuid4()}",
        )
        async with store.unit_of_work() as uow:
            await uow.append(f"daily/{started.idempotency_key}", 0, [started])
        if crash_at == "after_commit":
            die()
        bus = RabbitMqBus(rabbitmq_url, exchange=exchange)
        await bus.connect()
        publish = bus.publish_batch
        async def publish_then_die(messages):
            await publish(messages)
            die()
        bus.publish_batch = publish_then_die
        await OutboxRelay(store, bus).publish_pending()

    asyncio.run(main())
    """
)


class CountingHandler:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, event: Event, context: HandlerContext) -> Sequence[Event]:
        self.calls += 1
        return [
            context.follow_up(event, NotificationSent, channel="email", status="sent", attempts=1)
        ]


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[SqlEventStore]:
    await upgrade(postgres_url)
    event_store = SqlEventStore(postgres_url)
    yield event_store
    await event_store.close()


@pytest.mark.parametrize("crash_at", ["after_commit", "after_publish"])
async def test_a_relay_killed_mid_flight_loses_and_doubles_nothing(
    store: SqlEventStore, postgres_url: str, rabbitmq_url: str, crash_at: str
) -> None:
    namespace = unique_bus_namespace()
    bus = RabbitMqBus(rabbitmq_url, exchange=f"{namespace}.events")
    await bus.connect()
    try:
        handler = CountingHandler()
        consumer = Consumer(
            "portfolio", store, bus, handler, ["WorkflowStarted"], queue=f"{namespace}.portfolio"
        )
        deliveries: list[Message] = []
        handle = consumer.handle_message

        async def counting_delivery(message: Message) -> None:
            deliveries.append(message)
            await handle(message)

        await bus.subscribe(consumer.queue, ["WorkflowStarted"], counting_delivery)
        # The consumer's follow-up may be committed before the restarted relay runs, which then
        # publishes it too: give it a queue, or the publish is refused as unroutable.
        await bus.subscribe(f"{namespace}.downstream", ["NotificationSent"], ignore)
        workflow_id = str(uuid.uuid4())
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            postgres_url,
            rabbitmq_url,
            f"{namespace}.events",
            crash_at,
            workflow_id,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(child.communicate(), 60)
        assert child.returncode == -9, stderr.decode()  # SIGKILLed at the crash point
        # Committed, never marked sent (the consumer's own follow-up rows are not counted: no
        # relay of this test publishes them).
        assert await unsent(store, "WorkflowStarted") == 1

        # The service restarts: its relay publishes what the dead one left unsent.
        await OutboxRelay(store, bus).publish_pending()
        assert await unsent(store, "WorkflowStarted") == 0
        expected_deliveries = 1 if crash_at == "after_commit" else 2
        await eventually(lambda: len(deliveries) == expected_deliveries)
        emitted = await eventually(lambda: store.read_stream(stream_of("portfolio", workflow_id)))
        assert handler.calls == 1
        assert len(emitted) == 1
    finally:
        await bus.close()
        await delete_bus_namespace(namespace)


async def unsent(store: SqlEventStore, event_type: str) -> int:
    return sum(row.routing_key == event_type for row in await store.pending_outbox())


async def ignore(_message: Message) -> None:
    return None
