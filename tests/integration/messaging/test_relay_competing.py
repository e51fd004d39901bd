"""The relays of several processes read one outbox: on PostgreSQL each row is published by one
of them, where each used to publish every row it found unsent
(docs/performance.md, Statements per workflow)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from shared.bus.memory import InMemoryBus
from shared.bus.port import Message, OutgoingMessage
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.messaging.relay import OutboxRelay
from tests.eventually import eventually
from tests.unit.events.examples import order_filled

pytestmark = pytest.mark.integration

ROWS = 20


class SlowBus(InMemoryBus):
    """Publishes after a pause, so that two relays' rounds overlap."""

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> None:
        await asyncio.sleep(0.2)
        await super().publish_batch(messages)


async def test_the_relays_of_two_processes_publish_each_row_once(postgres_url: str) -> None:
    await upgrade(postgres_url)
    stores = [SqlEventStore(postgres_url), SqlEventStore(postgres_url)]
    bus = SlowBus()
    await bus.connect()
    received: list[Message] = []

    async def portfolio(message: Message) -> None:
        received.append(message)

    await bus.subscribe("portfolio", ["OrderFilled"], portfolio)
    try:
        async with stores[0].unit_of_work() as uow:
            await uow.append("workflow/execution", 0, [order_filled() for _ in range(ROWS)])

        settled = await asyncio.gather(
            *(OutboxRelay(store, bus).publish_pending() for store in stores)
        )

        # Which relay locks which rows first is a race; that no row goes out twice is not.
        assert sum(settled) == ROWS
        await eventually(lambda: len(received) == ROWS, message="every row was delivered")
        await asyncio.sleep(0.3)
        assert len({message.message_id for message in received}) == len(received) == ROWS
        assert await stores[1].outbox_lag() == 0
    finally:
        await bus.close()
        for store in stores:
            await store.close()
