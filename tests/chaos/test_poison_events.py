"""Poison and malformed events on the real bus of a running cluster (issue "Reliability and
security", item 4): four service processes on RabbitMQ and PostgreSQL, an SMTP sink.

Bad messages are published straight onto the cluster's exchange with routing keys the step
services consume: on `SignalGenerated` (portfolio) one not JSON, one of an unknown event type,
one of an unknown schema version and one failing validation; an invalid `WorkflowStarted`
(strategy) and `RebalancePlanned` (execution); and an invalid `WorkflowFailed`, which only notify
consumes (it is bound to the two endings). Each must land in every consuming service's DLQ with
the reason in `x-alchemiser-error`; each that names its workflow and account must fail that
workflow exactly once, as the step of the service that consumed it, and the owner must get the
failure email; notify dead-letters what it cannot read without failing anything; and normal
workflows triggered while the poison messages are retried and afterwards must still complete —
no consumer crashed or stalled.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest

from shared.bus.dead_letter import ATTEMPTS_HEADER, ERROR_HEADER, QUEUE_HEADER
from shared.bus.port import Message
from shared.bus.rabbitmq import RabbitMqBus
from shared.events import WorkflowFailed
from tests.chaos.invariants import bindings, consumers_of
from tests.e2e.cluster import Cluster, sample_bars, smtp_settings
from tests.eventually import eventually
from tests.integration.notify.sinks import smtp_server
from tests.servers import RABBITMQ_URL

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="session")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_bars(tmp_path_factory.mktemp("sample-bars"))


def envelope(event_type: str, workflow_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": 1,
        "correlation_id": workflow_id,
        "causation_id": None,
        "account_id": "default",
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "strategy",
        **fields,
    }


def valid_signal_payload() -> dict[str, Any]:
    return {
        "strategies": [],
        "consolidated_portfolio": {
            "target_allocations": {"SPY": "1"},
            "correlation_id": "x",
            "timestamp": datetime.now(UTC).isoformat(),
            "strategy_count": 1,
            "source_strategies": ["x"],
        },
    }


CONSUMER = {
    "WorkflowStarted": ("strategy", "signal_generation", "Signal generation"),
    "SignalGenerated": ("portfolio", "portfolio_analysis", "Portfolio analysis"),
    "RebalancePlanned": ("execution", "trade_execution", "Trade execution"),
}
"""Routing key -> the step service consuming it, its failure step and how the email names it."""


class Poison:
    """One bad message: what is published, and what the consumers must say about it."""

    def __init__(
        self, name: str, routing_key: str, body: bytes, error: str, workflow_id: str | None
    ) -> None:
        self.name = name
        self.routing_key = routing_key
        self.body = body
        self.error = error
        self.workflow_id = workflow_id
        self.message_id = f"poison-{name}-{uuid.uuid4().hex[:8]}"


def poisons() -> list[Poison]:
    unknown_type, old_version, invalid, notify_only, start, plan = (
        f"wf-{uuid.uuid4()}" for _ in range(6)
    )
    return [
        Poison(
            "not-json",
            "SignalGenerated",
            b'{"event_type": "SignalGenerated", "correlation_id": "wf-cut-off',
            "MalformedEventError",
            None,
        ),
        Poison(
            "unknown-type",
            "SignalGenerated",
            json.dumps(envelope("SignalGeneratedV9", unknown_type)).encode(),
            "UnknownEventError",
            unknown_type,
        ),
        Poison(
            "unknown-version",
            "SignalGenerated",
            json.dumps(
                envelope("SignalGenerated", old_version, schema_version=99) | valid_signal_payload()
            ).encode(),
            "UnknownEventError",
            old_version,
        ),
        Poison(
            "invalid-payload",
            "SignalGenerated",
            json.dumps(
                envelope("SignalGenerated", invalid, strategies="not a list", as_of=42)
            ).encode(),
            "InvalidEventError",
            invalid,
        ),
        Poison(
            "invalid-start",
            "WorkflowStarted",
            json.dumps(envelope("WorkflowStarted", start, trading_date="yesterday")).encode(),
            "InvalidEventError",
            start,
        ),
        Poison(
            "invalid-plan",
            "RebalancePlanned",
            json.dumps(envelope("RebalancePlanned", plan, source="portfolio")).encode(),
            "InvalidEventError",
            plan,
        ),
        Poison(
            "notify-only",
            "WorkflowFailed",
            json.dumps(envelope("WorkflowFailed", notify_only)).encode(),
            "InvalidEventError",
            None,
        ),
    ]


async def publish_raw(exchange_name: str, poison: Poison) -> None:
    connection = await aio_pika.connect(RABBITMQ_URL)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(exchange_name, ensure=False)
        await exchange.publish(
            aio_pika.Message(
                poison.body,
                message_id=poison.message_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=poison.routing_key,
        )
    finally:
        await connection.close()


class DeadLetters:
    """What a queue's DLQ has held so far (reading it acknowledges, so reads accumulate)."""

    def __init__(self, bus: RabbitMqBus, queue: str) -> None:
        self._bus = bus
        self.queue = queue
        self.messages: dict[str, Message] = {}

    async def holds(self, message_ids: set[str]) -> bool:
        for message in await self._bus.dead_letters(self.queue):
            self.messages[message.message_id] = message
        return message_ids <= self.messages.keys()


def failures_of(events: list[Any]) -> list[WorkflowFailed]:
    return [event for event in events if isinstance(event, WorkflowFailed)]


def plain_text(message: Any) -> str:
    return str(message.get_body(preferencelist=("plain",)).get_content())


async def test_poison_messages_are_dead_lettered_fail_their_workflow_once_and_nothing_stalls(
    tmp_path: Path, bars: Path
) -> None:
    bad = poisons()
    failing = [p for p in bad if p.workflow_id is not None]
    # every queue bound to a poison's routing key dead-letters its copy (portfolio's too, bound
    # to WorkflowStarted for liquidations); only the step's service fails the workflow (CONSUMER)
    bound = bindings()
    expected_dead = {
        service: [p for p in bad if service in consumers_of(p.routing_key, bound)]
        for service in bound
    }
    async with (
        smtp_server() as (port, mailbox),
        Cluster(tmp_path, bars, smtp_settings(port)) as cluster,
    ):
        await cluster.start_all()
        for poison in bad:
            await publish_raw(f"{cluster.namespace}.events", poison)
        during = await cluster.trigger()  # runs while the poison messages are being retried
        assert during.status_code == 202, during.text

        bus = RabbitMqBus(RABBITMQ_URL, exchange=f"{cluster.namespace}.events")
        await bus.connect()
        dlqs = {
            service: DeadLetters(bus, f"{cluster.namespace}.{service}") for service in expected_dead
        }
        try:
            for service, dlq in dlqs.items():
                await eventually(
                    lambda dlq=dlq, service=service: dlq.holds(
                        {p.message_id for p in expected_dead[service]}
                    ),
                    timeout_s=60,
                    message=f"{service} DLQ holds every poison message routed to it",
                )
        finally:
            await bus.close()

        for service, dlq in dlqs.items():
            assert len(dlq.messages) == len(expected_dead[service]), dlq.messages.keys()
            for poison in expected_dead[service]:
                dead = dlq.messages[poison.message_id]
                assert dead.body == poison.body
                assert dead.routing_key == poison.routing_key
                assert dead.headers[ERROR_HEADER].startswith(poison.error), (
                    poison.name,
                    dead.headers[ERROR_HEADER],
                )
                assert dead.headers[QUEUE_HEADER] == dlq.queue
                assert int(dead.headers[ATTEMPTS_HEADER]) >= 1

        for poison in failing:
            assert poison.workflow_id is not None
            failure = (
                await eventually(
                    lambda p=poison: _failures(cluster, p.workflow_id),
                    timeout_s=30,
                    message=f"WorkflowFailed for the {poison.name} message",
                )
            )[0]
            service, step, _ = CONSUMER[poison.routing_key]
            assert failure.failure_step == step
            assert failure.source == service
            assert failure.account_id == "default"
            assert failure.causation_id == poison.message_id
            assert failure.error_details is not None
            assert failure.error_details.original_event_type == poison.routing_key
            assert failure.error_details.original_event_id == poison.message_id
            assert poison.error in failure.failure_reason

        view = await cluster.finished(during.json()["id"])
        assert view["status"] == "completed", view["failure_reason"]
        await eventually(lambda: len(mailbox.messages) == len(failing) + 1, timeout_s=30)
        subjects = Counter(message["Subject"].split("]")[0] + "]" for message in mailbox.messages)
        assert subjects == {"[FAILURE]": len(failing), "[SUCCESS]": 1}, subjects
        reported: dict[str, str] = {}
        for message in mailbox.messages:
            if not message["Subject"].startswith("[FAILURE]"):
                continue
            text = plain_text(message)
            assert "dead-letter queue" in text, text
            for poison in failing:
                if poison.message_id in text:
                    assert CONSUMER[poison.routing_key][2] in text, text
                    reported[poison.name] = text
        assert sorted(reported) == sorted(p.name for p in failing)

        after = await cluster.trigger(body={"force": True})
        assert after.status_code == 202, after.text
        view = await cluster.finished(after.json()["id"])
        assert view["status"] == "completed", view["failure_reason"]
        await eventually(lambda: len(mailbox.messages) == len(failing) + 2, timeout_s=30)
        assert mailbox.messages[-1]["Subject"].startswith("[SUCCESS]")

        for poison in failing:
            assert poison.workflow_id is not None
            assert len(failures_of(await cluster.events(poison.workflow_id))) == 1
        notify_only = next(p for p in bad if p.name == "notify-only")
        assert notify_only.workflow_id is None
        assert await cluster.events(_named_workflow(notify_only)) == []
        for service, process in cluster.processes.items():
            assert process.poll() is None, f"{service} exited"
        dead_lettered = await _dead_lettered_counts(cluster)
        assert dead_lettered == {s: len(expected) for s, expected in expected_dead.items()}


async def _failures(cluster: Cluster, workflow_id: str | None) -> list[WorkflowFailed]:
    assert workflow_id is not None
    return failures_of(await cluster.events(workflow_id))


def _named_workflow(poison: Poison) -> str:
    document: Mapping[str, Any] = json.loads(poison.body)
    return str(document["correlation_id"])


async def _dead_lettered_counts(cluster: Cluster) -> Counter[str]:
    counts: Counter[str] = Counter()
    async with httpx.AsyncClient(timeout=10) as client:
        for service in cluster.processes:
            metrics = (await client.get(f"{cluster.url(service)}/metrics")).text
            for line in metrics.splitlines():
                if line.startswith("alchemiser_events_dead_lettered_total{"):
                    counts[service] += int(float(line.rsplit(" ", 1)[1]))
    return counts


BURST = {"ci": 20, "full": 200}.get(os.environ.get("ALCHEMISER_CHAOS_SCALE", "ci"), 20)
MUTATIONS: tuple[tuple[str, Any, str], ...] = (
    ("schema_version", "1", "MalformedEventError"),
    ("event_type", None, "MalformedEventError"),
    ("event_id", "not-a-uuid", "InvalidEventError"),
    ("occurred_at", "yesterday", "InvalidEventError"),
    ("strategies", 42, "InvalidEventError"),
    ("consolidated_portfolio", None, "InvalidEventError"),
    ("schema_version", 0, "UnknownEventError"),
)


def burst(count: int) -> list[Poison]:
    """`count` SignalGenerated documents, each naming its own workflow, each broken one way."""
    poisons = []
    for number in range(count):
        field, value, error = MUTATIONS[number % len(MUTATIONS)]
        workflow_id = f"wf-burst-{number}-{uuid.uuid4().hex[:6]}"
        document = envelope("SignalGenerated", workflow_id) | valid_signal_payload()
        document[field] = value
        poisons.append(
            Poison(
                f"burst-{number}",
                "SignalGenerated",
                json.dumps(document).encode(),
                error,
                workflow_id,
            )
        )
    return poisons


async def test_a_burst_of_malformed_events_fails_each_workflow_once_while_a_run_completes(
    tmp_path: Path, bars: Path
) -> None:
    bad = burst(BURST)
    async with Cluster(tmp_path, bars) as cluster:
        await cluster.start_all()
        for poison in bad[: BURST // 2]:
            await publish_raw(f"{cluster.namespace}.events", poison)
        started = await cluster.trigger()
        assert started.status_code == 202, started.text
        for poison in bad[BURST // 2 :]:
            await publish_raw(f"{cluster.namespace}.events", poison)
        view = await cluster.finished(started.json()["id"])
        assert view["status"] == "completed", view["failure_reason"]

        bus = RabbitMqBus(RABBITMQ_URL, exchange=f"{cluster.namespace}.events")
        await bus.connect()
        try:
            dlq = DeadLetters(bus, f"{cluster.namespace}.portfolio")
            await eventually(
                lambda: dlq.holds({p.message_id for p in bad}),
                timeout_s=120,
                message="portfolio DLQ holds the whole burst",
            )
        finally:
            await bus.close()
        for poison in bad:
            assert dlq.messages[poison.message_id].headers[ERROR_HEADER].startswith(poison.error)

        async def each_failed_once() -> bool:
            counts = [len(await _failures(cluster, p.workflow_id)) for p in bad]
            assert all(count <= 1 for count in counts), counts
            return all(count == 1 for count in counts)

        await eventually(each_failed_once, timeout_s=60, interval_s=0.5)
        for service, process in cluster.processes.items():
            assert process.poll() is None, f"{service} exited"
