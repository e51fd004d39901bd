"""The business series notify keeps (docs/operations.md, Metrics), through the real consumer over
a SQLite store: a workflow counts once, on its first ending and after its handling commits,
whatever arrives twice, and with no channel configured too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.notify.notify_step import NotifyStep
from services.notify.run_metrics import RunMetrics
from shared.bus.memory import InMemoryBus
from shared.bus.port import Message
from shared.events import Event, encode
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.messaging.consumer import Consumer
from shared.settings import Settings
from shared.workflow import NOTIFICATION
from tests.unit.notify import workflows
from tests.unit.notify.fakes import RecordingNotifier, RecordingSleep


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlEventStore]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    await upgrade(url)
    store = SqlEventStore(url)
    yield store
    await store.close()


class Notify:
    """Notify's consumer with its metrics on a registry of their own."""

    def __init__(self, store: SqlEventStore, *notifiers: RecordingNotifier) -> None:
        self.registry = CollectorRegistry()
        metrics = RunMetrics()
        for collector in metrics.collectors:
            self.registry.register(collector)
        step = NotifyStep(Settings(), notifiers, sleep=RecordingSleep(), metrics=metrics)
        self.consumer = Consumer("notify", store, InMemoryBus(), step.handle, NOTIFICATION.follows)

    async def deliver(self, event: Event, count: int = 1) -> None:
        await self.consumer.handle_message(
            Message(
                routing_key=event.event_type,
                body=encode(event),
                message_id=str(event.event_id),
                headers={},
                delivery_count=count,
            )
        )

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


async def record(store: SqlEventStore, events: Sequence[Event]) -> None:
    async with store.unit_of_work() as uow:
        await uow.append(f"{events[0].correlation_id}/test", None, list(events))


async def test_a_completion_redelivered_and_a_late_failure_count_one_completed_run(
    store: SqlEventStore,
) -> None:
    workflow = workflows.success()
    late = workflow.failed("trade_execution", "deadline passed after completion").events[-1]
    await record(store, workflow.events)
    completion = workflow.events[-2]
    notify = Notify(store, RecordingNotifier())

    await notify.deliver(completion)
    await notify.deliver(completion, count=2)
    await notify.deliver(late)

    assert notify.value("alchemiser_workflows_total", account="default", status="completed") == 1
    assert notify.value("alchemiser_workflows_total", account="default", status="failed") is None
    assert (
        notify.value("alchemiser_orders_total", account="default", side="BUY", outcome="filled")
        == 1
    )
    assert (
        notify.value("alchemiser_last_successful_run_timestamp_seconds", account="default")
        == completion.occurred_at.timestamp()
    )


async def test_a_failed_run_counts_its_orders_and_leaves_the_last_success_alone(
    store: SqlEventStore,
) -> None:
    workflow = workflows.partial_failure()
    await record(store, workflow.events)
    notify = Notify(store)  # no channel configured: the run is counted all the same

    await notify.deliver(workflow.events[-1])

    assert notify.value("alchemiser_workflows_total", account="default", status="failed") == 1
    assert (
        notify.value("alchemiser_orders_total", account="default", side="BUY", outcome="rejected")
        == 1
    )
    assert (
        notify.value("alchemiser_orders_total", account="default", side="BUY", outcome="skipped")
        == 1
    )
    assert (
        notify.value("alchemiser_traded_value_dollars_total", account="default", side="SELL")
        == 20_010.0
    )
    assert (
        notify.value("alchemiser_traded_value_dollars_total", account="default", side="BUY") is None
    )
    assert (
        notify.value("alchemiser_last_successful_run_timestamp_seconds", account="default") is None
    )
    # The email's total after: $100,000 before, 200 TLT valued at the plan's $100 sold for
    # $20,010 (one valuation per run, docs/trading-rules.md).
    assert notify.value("alchemiser_portfolio_value_dollars", account="default") == 100_010.0


async def test_a_dry_run_moves_no_business_metric(store: SqlEventStore) -> None:
    """(docs/trading-rules.md, Dry runs)"""
    dry = workflows.dry_run(email=True)
    await record(store, dry.events)
    notify = Notify(store, RecordingNotifier())

    await notify.deliver(dry.events[-1])

    assert notify.value("alchemiser_workflows_total", account="default", status="completed") is None
    stamp = notify.value("alchemiser_last_successful_run_timestamp_seconds", account="default")
    assert stamp is None
