"""Workflow status as a projection of the store: a pure fold over a workflow's recorded events,
so status is always what the events say and rebuilds from scratch at any time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.events import Event
from shared.events.workflow import WorkflowCompleted, WorkflowFailed, WorkflowStarted

Status = Literal["running", "completed", "failed"]


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
    """Fold one workflow's events (in store order, which is causal order) into its status.
    The first terminal event decides; later ones cannot reopen or flip a finished workflow."""
    if not events:
        return None
    status: Status = "running"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    failure_reason: str | None = None
    for event in events:
        if isinstance(event, WorkflowStarted) and started_at is None:
            started_at = event.occurred_at
        elif status == "running" and isinstance(event, WorkflowCompleted):
            status, finished_at = "completed", event.occurred_at
        elif status == "running" and isinstance(event, WorkflowFailed):
            status, finished_at = "failed", event.occurred_at
            failure_reason = event.failure_reason
    return WorkflowView(
        id=events[0].correlation_id,
        account_id=events[0].account_id,
        status=status,
        started_at=started_at,
        finished_at=finished_at,
        failure_reason=failure_reason,
        last_event_at=max(event.occurred_at for event in events),
        events=tuple(events),
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
