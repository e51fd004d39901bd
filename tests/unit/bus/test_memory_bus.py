"""The in-memory bus against the bus contract, plus what only it promises."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.bus import Bus, BusConnectionError, InMemoryBus
from tests.unit.bus.contract import BusContract, BusFactory, Names


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
