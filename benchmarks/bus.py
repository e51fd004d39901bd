"""End-to-end throughput of the message bus: publish with confirms -> broker -> consume and ack.

Each path is one async function `(url, messages, batch) -> PathResult` in `PATHS`; the table at
the end compares every path with raw aio-pika. Later sections (outbox -> RabbitMQ -> consumer
inbox) add their own function to `PATHS`. Prints figures only; never fails on a timing.

    .venv/bin/python benchmarks/bus.py --messages 20000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

import aio_pika

from shared.bus import InMemoryBus, Message, OutgoingMessage, RabbitMqBus
from shared.settings import Settings

DEFAULT_URL = os.environ.get("ALCHEMISER_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
PREFETCH = 32
HANDLERS_PER_QUEUE = Settings.model_fields["bus_handlers_per_queue"].default
"""What a service runs with by default (ALCHEMISER_BUS_HANDLERS_PER_QUEUE)."""
# About the size of a serialised OrderFilled event.
BODY = (
    b'{"event_type": "OrderFilled", "schema_version": 1, "symbol": "SPY", "side": "BUY", '
    b'"quantity": "12.000000", "price": "512.3400", "client_order_id": "alc:0000000000", '
    b'"correlation_id": "00000000-0000-0000-0000-000000000000", "source": "execution"}'
)


@dataclass(frozen=True)
class PathResult:
    path: str
    messages: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds if self.seconds else float("inf")


BenchmarkPath = Callable[[str, int, int], Awaitable[PathResult]]


def _names() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return f"bench-events-{suffix}", f"bench-queue-{suffix}"


def _chunks(count: int, size: int) -> list[range]:
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


async def raw_aio_pika(url: str, messages: int, batch: int) -> PathResult:
    """What a well-written raw client does: confirms pipelined per batch, a quorum queue,
    prefetch, manual ack in the consumer callback."""
    exchange_name, queue_name = _names()
    connection = await aio_pika.connect(url)
    try:
        publish_channel = await connection.channel(publisher_confirms=True)
        consume_channel = await connection.channel(publisher_confirms=False)
        await consume_channel.set_qos(prefetch_count=PREFETCH)
        exchange = await publish_channel.declare_exchange(
            exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await consume_channel.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(exchange_name, routing_key="#")
        received = 0
        done = asyncio.Event()

        async def on_message(incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal received
            await incoming.ack()
            received += 1
            if received == messages:
                done.set()

        consumer_tag = await queue.consume(on_message, no_ack=False)
        started = time.perf_counter()
        for chunk in _chunks(messages, batch):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            BODY,
                            message_id=f"m-{n}",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        "OrderFilled",
                    )
                    for n in chunk
                )
            )
        await done.wait()
        elapsed = time.perf_counter() - started
        await queue.cancel(consumer_tag)
        await queue.delete(if_unused=False, if_empty=False)
        await exchange.delete()
    finally:
        await connection.close()
    return PathResult("raw aio-pika (confirms + consume)", messages, elapsed)


async def _through_bus(
    bus: InMemoryBus | RabbitMqBus, queue: str, messages: int, batch: int
) -> float:
    received = 0
    done = asyncio.Event()

    async def handler(message: Message) -> None:
        nonlocal received
        received += 1
        if received == messages:
            done.set()

    await bus.subscribe(queue, ["#"], handler)
    started = time.perf_counter()
    for chunk in _chunks(messages, batch):
        await bus.publish_batch([OutgoingMessage("OrderFilled", BODY, f"m-{n}") for n in chunk])
    await done.wait()
    return time.perf_counter() - started


async def bus_rabbitmq(url: str, messages: int, batch: int) -> PathResult:
    """Our RabbitMQ bus: publish_batch with confirms, one handler per queue, ack after it."""
    exchange_name, queue_name = _names()
    bus = RabbitMqBus(url, exchange=exchange_name, prefetch=PREFETCH)
    await bus.connect()
    try:
        elapsed = await _through_bus(bus, queue_name, messages, batch)
    finally:
        await bus.close()
        await _delete_topology(url, exchange_name, queue_name)
    return PathResult("Bus: RabbitMqBus publish_batch + subscribe", messages, elapsed)


async def bus_in_memory(url: str, messages: int, batch: int) -> PathResult:
    """The embedded mode's bus, for scale: no broker, no I/O."""
    bus = InMemoryBus()
    await bus.connect()
    try:
        elapsed = await _through_bus(bus, "bench", messages, batch)
    finally:
        await bus.close()
    return PathResult("Bus: InMemoryBus publish_batch + subscribe", messages, elapsed)


async def _delete_topology(url: str, exchange: str, queue: str) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.queue_delete(queue)
        await channel.queue_delete(f"{queue}.dlq")
        await channel.exchange_delete(exchange)
        await channel.exchange_delete(f"{exchange}.dlx")
    finally:
        await connection.close()


async def outbox_to_inbox(url: str, messages: int, batch: int) -> PathResult:
    """The path every service event takes: events committed with their outbox rows on
    PostgreSQL, the relay publishing them with confirms, a consumer recording each in its inbox
    (group-committed with the other deliveries in flight) before the ack, with a service's
    default handlers per queue. Appending is done before the clock starts."""
    from shared.eventstore.store import SqlEventStore

    return await _outbox_to_inbox(
        url, messages, batch, SqlEventStore, "outbox (PostgreSQL) -> RabbitMQ -> inbox"
    )


async def outbox_to_inbox_through_sqlalchemy(url: str, messages: int, batch: int) -> PathResult:
    """The same, with the PostgreSQL adapter's single statements (inbox reads and inserts)
    sent through SQLAlchemy instead of its asyncpg statement path (benchmarks/eventstore.py)."""
    from benchmarks.eventstore import PostgresThroughSqlalchemy

    return await _outbox_to_inbox(
        url, messages, batch, PostgresThroughSqlalchemy, "the same, statements via SQLAlchemy"
    )


async def _outbox_to_inbox(
    url: str, messages: int, batch: int, store_type: Callable[[str], Any], path: str
) -> PathResult:
    from shared.events.notifications import NotificationSent
    from shared.eventstore.migrations import upgrade
    from shared.messaging.consumer import Consumer, HandlerContext
    from shared.messaging.relay import OutboxRelay
    from tests.servers import create_postgres_database, drop_postgres_database

    database_url = await create_postgres_database()
    exchange_name, queue_name = _names()
    store = store_type(database_url)
    bus = RabbitMqBus(
        url, exchange=exchange_name, prefetch=PREFETCH, handlers_per_queue=HANDLERS_PER_QUEUE
    )
    try:
        await upgrade(database_url)
        now = datetime.now(UTC)
        for chunk in _chunks(messages, batch):
            async with store.unit_of_work() as uow:
                await uow.append(
                    f"bench/{chunk.start}",
                    0,
                    [
                        NotificationSent(
                            correlation_id=f"wf-{n}",
                            account_id="default",
                            occurred_at=now,
                            source="notify",
                            channel="email",
                            status="sent",
                            attempts=1,
                        )
                        for n in chunk
                    ],
                )
        await bus.connect()
        received = 0
        done = asyncio.Event()

        async def handler(event: object, context: HandlerContext) -> list[object]:
            nonlocal received
            received += 1
            if received == messages:
                done.set()
            return []

        consumer = Consumer("bench", store, bus, handler, ["#"], queue=queue_name)  # type: ignore[arg-type]
        await consumer.start()
        relay = OutboxRelay(store, bus, batch_size=batch)
        started = time.perf_counter()
        while await relay.publish_pending():
            pass
        await done.wait()
        elapsed = time.perf_counter() - started
    finally:
        await bus.close()
        await store.close()
        await _delete_topology(url, exchange_name, queue_name)
        await drop_postgres_database(database_url)
    return PathResult(path, messages, elapsed)


PATHS: list[BenchmarkPath] = [
    raw_aio_pika,
    bus_rabbitmq,
    outbox_to_inbox,
    outbox_to_inbox_through_sqlalchemy,
    bus_in_memory,
]


async def _broker_version(url: str) -> str:
    connection = await aio_pika.connect(url)
    try:
        transport = connection.transport
        assert transport is not None
        raw = transport.connection.server_properties.get("version", b"?")
        return raw.decode() if isinstance(raw, bytes) else str(raw)
    finally:
        await connection.close()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


async def main(url: str, messages: int, batch: int) -> None:
    print("Bus benchmark: publish with confirms -> broker -> consume + ack, end to end")
    print(f"  machine : {platform.platform()}, {os.cpu_count()} CPUs, {_cpu_model()}")
    print(f"  python  : {platform.python_version()}, aio-pika {version('aio-pika')}")
    print(
        f"  broker  : RabbitMQ {await _broker_version(url)} (quorum queue, prefetch {PREFETCH}; "
        f"the full path with {HANDLERS_PER_QUEUE} handlers per queue)"
    )
    print(f"  workload: {messages} messages of {len(BODY)} bytes, published in batches of {batch}")
    results = []
    for path in PATHS:
        result = await path(url, messages, batch)
        print(f"  done    : {result.path}: {result.seconds:.2f} s")
        results.append(result)
    baseline = results[0].per_second
    print()
    print(f"  {'path':<46} {'messages':>9} {'seconds':>8} {'msg/s':>9} {'vs raw':>7}")
    for result in results:
        print(
            f"  {result.path:<46} {result.messages:>9} {result.seconds:>8.2f} "
            f"{result.per_second:>9.0f} {result.per_second / baseline:>6.2f}x"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000, help="messages per path")
    parser.add_argument("--batch", type=int, default=1_000, help="messages per publish batch")
    parser.add_argument("--url", default=DEFAULT_URL, help="RabbitMQ URL")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.url, arguments.messages, arguments.batch))
