"""Workflow status as the API shows it: a projection of the store built on the one workflow
fold, so status is always what the events say and rebuilds from scratch at any time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.events import Event
from shared.events.workflow import WorkflowFailed
from shared.workflow import Status, workflow_state


@dataclass(frozen=True)
class WorkflowView:
    id: str
    account_id: str
    status: Status
    started_at: datetime | None
    finished_at: datetime | None
    failure_reason: str | None
    last_event_at: datetime
    events: tuple[Event, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "account_id": self.account_id,
            "status": self.status,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "failure_reason": self.failure_reason,
            "events": [
                {
                    "event_id": str(event.event_id),
                    "event_type": event.event_type,
                    "causation_id": event.causation_id,
                    "occurred_at": _iso(event.occurred_at),
                    "source": event.source,
                }
                for event in self.events
            ],
        }


def project_workflow(events: Sequence[Event]) -> WorkflowView | None:
    """One workflow's events (in store order, which is causal order) as the status the API
    shows."""
    state = workflow_state(events)
    if state is None:
        return None
    ending = state.ending
    return WorkflowView(
        id=state.workflow_id,
        account_id=state.account_id,
        status=state.status,
        started_at=state.started.occurred_at if state.started is not None else None,
        finished_at=ending.occurred_at if ending is not None else None,
        failure_reason=ending.failure_reason if isinstance(ending, WorkflowFailed) else None,
        last_event_at=state.last_event_at,
        events=tuple(events),
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
