"""The relay publishes only the events something consumes: the rest are facts for the store,
marked sent without a publish, so they never hold up the rows behind them."""

from __future__ import annotations

from pathlib import Path

from shared.bus.memory import InMemoryBus
from shared.bus.port import Message
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.messaging.relay import OutboxRelay
from shared.workflow import ANSWERED_EVENT_TYPES
from tests.eventually import eventually
from tests.unit.events.examples import notification_sent, order_events, workflow_completed


async def test_events_no_step_answers_are_marked_sent_and_the_ending_is_published(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    await upgrade(url)
    store = SqlEventStore(url)
    bus = InMemoryBus()
    await bus.connect()
    received: list[Message] = []

    async def notify(message: Message) -> None:
        received.append(message)

    await bus.subscribe("notify", ["WorkflowCompleted", "WorkflowFailed"], notify)
    try:
        async with store.unit_of_work() as uow:
            await uow.append("workflow/execution", None, [*order_events(), workflow_completed()])
            await uow.append("workflow/notify", None, [notification_sent()])
        relay = OutboxRelay(store, bus, routed=ANSWERED_EVENT_TYPES)

        assert await relay.publish_pending() == len(order_events()) + 2
        assert await store.outbox_lag() == 0
        await eventually(lambda: len(received) == 1, message="the ending was delivered")
        assert [message.routing_key for message in received] == ["WorkflowCompleted"]
    finally:
        await bus.close()
        await store.close()
