"""The RabbitMQ bus against the bus contract on the real server, plus what only a broker shows:
quorum queue arguments, redelivery after a lost connection, readiness against a dead port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

import aio_pika
import aiormq
import pytest
from yarl import URL

from shared.bus import Bus, BusConnectionError, BusTopologyError, Message, RabbitMqBus
from tests.eventually import eventually
from tests.integration.bus.tcp_proxy import TcpProxy
from tests.unit.bus.contract import BusContract, BusFactory, Names, Recorder

pytestmark = pytest.mark.integration


async def delete_topology(url: str, names: Names) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for queue in names.queues:
            await channel.queue_delete(queue)
            await channel.queue_delete(f"{queue}.dlq")
        await channel.exchange_delete(names.exchange)
        await channel.exchange_delete(f"{names.exchange}.dlx")
    finally:
        await connection.close()


@pytest.fixture
async def rabbit_bus_factory(rabbitmq_url: str, names: Names) -> AsyncIterator[BusFactory]:
    buses: list[RabbitMqBus] = []

    async def make(*, max_deliveries: int = 5, url: str = rabbitmq_url) -> Bus:
        bus = RabbitMqBus(
            url,
            exchange=names.exchange,
            max_deliveries=max_deliveries,
            reconnect_interval_s=0.2,
            supervise_interval_s=0.2,
        )
        buses.append(bus)
        await bus.connect(timeout_s=10)
        return bus

    yield make
    for bus in buses:
        await bus.close()
    await delete_topology(rabbitmq_url, names)


@pytest.fixture
def names() -> Names:
    return Names()


class TestRabbitMqBus(BusContract):
    @pytest.fixture
    async def make_bus(self, rabbit_bus_factory: BusFactory) -> BusFactory:
        async def make(*, max_deliveries: int = 5) -> Bus:
            return await rabbit_bus_factory(max_deliveries=max_deliveries)

        return make


@pytest.fixture
async def proxy(rabbitmq_url: str) -> AsyncIterator[TcpProxy]:
    upstream = URL(rabbitmq_url)
    proxy = TcpProxy(upstream.host or "127.0.0.1", upstream.port or 5672)
    await proxy.start()
    yield proxy
    await proxy.stop()


def through(proxy: TcpProxy, url: str) -> str:
    return str(URL(url).with_port(proxy.port))


async def test_queue_is_quorum_with_an_explicit_delivery_limit_above_max_deliveries(
    rabbit_bus_factory: BusFactory, rabbitmq_url: str, names: Names
) -> None:
    bus = await rabbit_bus_factory(max_deliveries=5)
    assert isinstance(bus, RabbitMqBus)
    queue = names.queue("portfolio")
    await bus.subscribe(queue, ["SignalGenerated"], Recorder())
    arguments = bus.queue_arguments(queue)
    assert arguments["x-queue-type"] == "quorum"
    assert arguments["x-delivery-limit"] == 10
    assert arguments["x-dead-letter-exchange"] == f"{names.exchange}.dlx"

    connection = await aio_pika.connect(rabbitmq_url)
    try:
        # The broker accepts a redeclaration only with equivalent arguments, so this proves the
        # queue on the server is a quorum queue with exactly this delivery limit.
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True, arguments=arguments)
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="x-delivery-limit"):
            await channel.declare_queue(
                queue, durable=True, arguments={**arguments, "x-delivery-limit": 11}
            )
        channel = await connection.channel()
        declared = await channel.declare_queue(f"{queue}.dlq", passive=True)
        assert declared.declaration_result.message_count == 0
    finally:
        await connection.close()


async def test_message_is_redelivered_when_the_consumer_connection_drops_before_ack(
    rabbit_bus_factory: BusFactory, rabbitmq_url: str, names: Names, proxy: TcpProxy
) -> None:
    consumer = await rabbit_bus_factory(url=through(proxy, rabbitmq_url))
    publisher = await rabbit_bus_factory()
    queue = names.queue("execution")
    deliveries: list[Message] = []
    release = asyncio.Event()

    async def handler(message: Message) -> None:
        deliveries.append(message)
        if len(deliveries) == 1:
            await release.wait()

    await consumer.subscribe(queue, ["RebalancePlanned"], handler)
    await publisher.publish("RebalancePlanned", b"{}", message_id="plan-1")
    await eventually(lambda: len(deliveries) == 1)

    proxy.drop()
    release.set()

    await eventually(lambda: len(deliveries) == 2)
    assert [m.message_id for m in deliveries] == ["plan-1", "plan-1"]
    assert [m.delivery_count for m in deliveries] == [1, 2]
    await eventually(lambda: consumer.health().ready)
    assert await consumer.dead_letters(queue) == []


async def test_consumers_are_attached_again_after_the_broker_comes_back(
    rabbit_bus_factory: BusFactory, rabbitmq_url: str, names: Names, proxy: TcpProxy
) -> None:
    consumer = await rabbit_bus_factory(url=through(proxy, rabbitmq_url))
    publisher = await rabbit_bus_factory()
    recorder = Recorder()
    await consumer.subscribe(names.queue("notify"), ["#"], recorder)
    await eventually(lambda: consumer.health().ready)

    await proxy.stop()
    await eventually(lambda: not consumer.health().connected)
    lost = consumer.health()
    assert lost.consumers_attached == 0
    assert lost.reason
    with pytest.raises(BusConnectionError, match="OrderFilled fill-0"):
        await consumer.publish("OrderFilled", b"{}", message_id="fill-0")
    await proxy.start()

    await eventually(lambda: consumer.health().ready)
    back = consumer.health()
    assert back.consumers_attached == back.consumers_expected == 1
    await publisher.publish("OrderFilled", b"{}", message_id="fill-1")
    await eventually(lambda: recorder.handled_ids() == ["fill-1"])


async def test_connect_to_a_closed_port_gives_up_with_the_reason_and_health_says_so() -> None:
    bus = RabbitMqBus("amqp://guest:secret@127.0.0.1:1/", reconnect_interval_s=0.2)
    try:
        with pytest.raises(BusConnectionError, match=r"127\.0\.0\.1:1") as raised:
            await bus.connect(timeout_s=0.5)
        await bus.subscribe("portfolio", ["SignalGenerated"], Recorder())

        health = bus.health()
        assert not health.connected
        assert (health.consumers_expected, health.consumers_attached) == (1, 0)
        assert health.reason is not None and "127.0.0.1:1" in health.reason
        assert "secret" not in health.reason
        assert "secret" not in str(raised.value)
    finally:
        await bus.close()


async def test_bus_started_before_the_broker_turns_ready_once_it_answers(
    rabbitmq_url: str, names: Names, proxy: TcpProxy
) -> None:
    await proxy.stop()
    bus = RabbitMqBus(
        through(proxy, rabbitmq_url),
        exchange=names.exchange,
        reconnect_interval_s=0.2,
        supervise_interval_s=0.2,
    )
    recorder = Recorder()
    try:
        with pytest.raises(BusConnectionError):
            await bus.connect(timeout_s=0.3)
        await bus.subscribe(names.queue("portfolio"), ["SignalGenerated"], recorder)
        assert not bus.health().ready

        await proxy.start()

        await eventually(lambda: bus.health().ready)
        await bus.publish("SignalGenerated", b"{}", message_id="signal-1")
        await eventually(lambda: recorder.handled_ids() == ["signal-1"])
    finally:
        await bus.close()
        await delete_topology(rabbitmq_url, names)


async def test_queue_existing_with_other_settings_is_a_topology_error_naming_it(
    rabbit_bus_factory: BusFactory, rabbitmq_url: str, names: Names
) -> None:
    bus = await rabbit_bus_factory()
    queue = names.queue("legacy")
    connection = await aio_pika.connect(rabbitmq_url)
    try:
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True)
    finally:
        await connection.close()
    healthy = Recorder()
    await bus.subscribe(names.queue("portfolio"), ["SignalGenerated"], healthy)

    with pytest.raises(BusTopologyError, match=queue):
        await bus.subscribe(queue, ["SignalGenerated"], Recorder())

    assert bus.health().ready
    await bus.publish("SignalGenerated", b"{}", message_id="signal-1")
    await eventually(lambda: healthy.handled_ids() == ["signal-1"])


async def test_consumer_lost_without_the_client_library_noticing_is_attached_again(
    rabbit_bus_factory: BusFactory, names: Names
) -> None:
    bus = await rabbit_bus_factory()
    assert isinstance(bus, RabbitMqBus)
    recorder = Recorder()
    await bus.subscribe(names.queue("notify"), ["#"], recorder)
    await eventually(lambda: bus.health().ready)

    # What aio-pika's reconnect has been seen to leave behind: a channel with no consumer on it
    # while the library believes it has one. Cancel it on the wire, under the library.
    channel = bus._consume_channel
    assert channel is not None
    underlay = cast(aiormq.Channel, await channel.get_underlay_channel())
    [tag] = list(underlay.consumers)
    await underlay.basic_cancel(tag)

    await eventually(lambda: len(underlay.consumers) == 1)
    assert list(underlay.consumers) != [tag]
    await eventually(lambda: bus.health().ready)
    await bus.publish("OrderFilled", b"{}", message_id="fill-1")
    await eventually(lambda: recorder.handled_ids() == ["fill-1"])


async def test_broker_dead_letters_a_message_whose_consumer_keeps_dying_past_the_delivery_limit(
    rabbit_bus_factory: BusFactory, rabbitmq_url: str, names: Names, proxy: TcpProxy
) -> None:
    consumer = await rabbit_bus_factory(max_deliveries=1, url=through(proxy, rabbitmq_url))
    publisher = await rabbit_bus_factory()
    queue = names.queue("execution")
    deliveries: list[Message] = []
    release = asyncio.Event()

    async def dies_holding_the_message(message: Message) -> None:
        deliveries.append(message)
        await release.wait()

    await consumer.subscribe(queue, ["RebalancePlanned"], dies_holding_the_message)
    await publisher.publish("RebalancePlanned", b"{}", message_id="plan-1")
    for delivered in (1, 2, 3):
        await eventually(lambda n=delivered: len(deliveries) == n)
        proxy.drop()
        release.set()
        release.clear()

    [dead] = await eventually(lambda: publisher.dead_letters(queue))
    assert dead.message_id == "plan-1"
    assert dead.routing_key == "RebalancePlanned"
    assert [m.delivery_count for m in deliveries] == [1, 2, 3]


async def test_close_returns_while_the_broker_is_unreachable(
    rabbitmq_url: str, names: Names, proxy: TcpProxy
) -> None:
    bus = RabbitMqBus(
        through(proxy, rabbitmq_url),
        exchange=names.exchange,
        reconnect_interval_s=0.2,
        supervise_interval_s=0.2,
    )
    try:
        await bus.connect(timeout_s=10)
        await bus.subscribe(names.queue("notify"), ["#"], Recorder())
        await proxy.stop()
        await eventually(lambda: not bus.health().connected)

        # A guard against hanging, not a timing: close must not wait for the broker.
        await asyncio.wait_for(bus.close(), timeout=30)

        assert bus.health().reason == "closed"
    finally:
        await bus.close()
        await delete_topology(rabbitmq_url, names)
