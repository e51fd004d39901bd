"""The in-memory bus against the bus contract, plus what only it promises."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from shared.bus import Bus, BusConnectionError, InMemoryBus, Message
from tests.eventually import eventually
from tests.unit.bus.contract import BusContract, BusFactory, Names, Recorder


class TestInMemoryBus(BusContract):
    @pytest.fixture
    async def make_bus(self, names: Names) -> AsyncIterator[BusFactory]:
        buses: list[InMemoryBus] = []

        async def make(*, max_deliveries: int = 5) -> Bus:
            bus = InMemoryBus(exchange=names.exchange, max_deliveries=max_deliveries)
            await bus.connect()
            buses.append(bus)
            return bus

        yield make
        for bus in buses:
            await bus.close()


async def test_publish_before_connect_is_refused() -> None:
    bus = InMemoryBus()

    with pytest.raises(BusConnectionError, match="OrderFilled evt-1"):
        await bus.publish("OrderFilled", b"{}", message_id="evt-1")


def test_max_deliveries_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_deliveries"):
        InMemoryBus(max_deliveries=0)


async def test_message_held_past_the_drain_timeout_returns_to_the_queue_head() -> None:
    bus = InMemoryBus(drain_timeout_s=0.01)
    await bus.connect()
    stuck: list[Message] = []

    async def never_finishes(message: Message) -> None:
        stuck.append(message)
        await asyncio.Event().wait()

    await bus.subscribe("execution", ["RebalancePlanned"], never_finishes)
    await bus.publish("RebalancePlanned", b"{}", message_id="plan-1")
    await bus.publish("RebalancePlanned", b"{}", message_id="plan-2")
    await eventually(lambda: len(stuck) == 1)
    await bus.close()

    await bus.connect()
    recorder = Recorder()
    await bus.subscribe("execution", ["RebalancePlanned"], recorder)
    await eventually(lambda: len(recorder.handled) == 2)
    assert recorder.handled_ids() == ["plan-1", "plan-2"]
    assert [m.delivery_count for m in recorder.handled] == [2, 1]
    await bus.close()


async def test_health_before_connect_says_why_it_is_not_ready() -> None:
    bus = InMemoryBus()
    await bus.subscribe("notify", ["#"], Recorder())

    health = bus.health()

    assert (health.connected, health.consumers_expected, health.consumers_attached) == (
        False,
        1,
        0,
    )
    assert health.reason is not None and "connect()" in health.reason
