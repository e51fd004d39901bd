"""A poison message without an AMQP `message_id` (a hand-published or foreign message) that names
its workflow and account still fails that workflow, rather than leaving it to the deadline."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from shared.bus.memory import InMemoryBus
from shared.bus.port import Message
from shared.events import Event, WorkflowFailed
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.messaging.consumer import Consumer, HandlerContext


async def ignore(event: Event, context: HandlerContext) -> Sequence[Event]:
    return ()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlEventStore]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    await upgrade(url)
    the_store = SqlEventStore(url)
    yield the_store
    await the_store.close()


async def test_a_poison_message_without_a_message_id_still_fails_its_workflow(
    store: SqlEventStore,
) -> None:
    consumer = Consumer("portfolio", store, InMemoryBus(), ignore, ["SignalGenerated"])
    body = json.dumps(
        {"event_type": "SignalGeneratedV9", "correlation_id": "wf-no-id", "account_id": "default"}
    ).encode()
    poison = Message("SignalGenerated", body, message_id="", headers={}, delivery_count=5)

    await consumer.dead_lettered(poison, "UnknownEventError: unknown event type")

    [failure] = [
        recorded.event
        for recorded in await store.read_correlation("wf-no-id")
        if isinstance(recorded.event, WorkflowFailed)
    ]
    assert failure.failure_step == "portfolio_analysis"
    assert failure.causation_id is None
