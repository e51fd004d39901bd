"""A poison message without an AMQP `message_id` (a hand-published or foreign message) that names
its workflow and account must still fail that workflow. Today the consumer's dead-letter hook
builds `WorkflowFailed(causation_id="")`, which the envelope refuses, so the bus logs
`bus.dead_letter_hook_failed` and the workflow waits for the deadline instead.

Requested fix, in `shared/messaging/consumer.py` `Consumer.dead_lettered` (not this test's
owner's file): `causation_id=message.message_id or None` and
`original_event_id=message.message_id or None`. The test is a strict xfail until then, so it
fails the build the day the fix lands and the marker must go."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from pydantic import ValidationError

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


@pytest.mark.xfail(
    strict=True,
    raises=ValidationError,
    reason="Consumer.dead_lettered sets causation_id to the empty message id, which "
    "WorkflowFailed refuses; fix requested in shared/messaging/consumer.py",
)
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
