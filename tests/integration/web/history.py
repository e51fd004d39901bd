"""A store holding several hand-built workflows (tests/unit/notify/workflows.py), each event
appended to its source service's stream as the services do, with a notification after each
ending."""

from __future__ import annotations

from collections.abc import Iterator

from shared.events import Event, NotificationSent, WorkflowCompleted, WorkflowFailed
from shared.eventstore.store import SqlEventStore
from tests.unit.notify import workflows


def runs() -> list[workflows.Workflow]:
    return [
        notified(made)
        for made in (
            workflows.success(),
            workflows.partial_failure(),
            workflows.execution_stalled(),
            workflows.strategy_failure(),
            workflows.no_trade(),
        )
    ]


def notified(workflow: workflows.Workflow) -> workflows.Workflow:
    """The workflow with the email notify sends after its ending."""
    ending = next(e for e in workflow.events if isinstance(e, WorkflowCompleted | WorkflowFailed))
    workflow.add(
        NotificationSent(
            correlation_id=workflow.id,
            causation_id=str(ending.event_id),
            account_id=ending.account_id,
            occurred_at=ending.occurred_at,
            source="notify",
            channel="email",
            status="sent",
            attempts=1,
        )
    )
    return workflow


def events_of(made: list[workflows.Workflow]) -> Iterator[Event]:
    for workflow in made:
        yield from workflow.events


async def record(store: SqlEventStore, event: Event) -> None:
    await store.append(f"{event.correlation_id}/{event.source}", None, [event])
