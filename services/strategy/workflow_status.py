"""Workflow status as the API shows it: a projection of the store built on the one workflow
fold, so status is always what the events say and rebuilds from scratch at any time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic_core import to_jsonable_python

from shared.decimal_places import view
from shared.events import ENVELOPE_FIELDS, Event
from shared.events.workflow import WorkflowFailed
from shared.workflow import Status, WorkflowKind, workflow_state


@dataclass(frozen=True)
class WorkflowView:
    id: str
    account_id: str
    kind: WorkflowKind
    status: Status
    started_at: datetime | None
    finished_at: datetime | None
    failure_reason: str | None
    last_event_at: datetime
    events: tuple[Event, ...]

    @property
    def dry_run(self) -> bool:
        return self.kind is WorkflowKind.DRY_RUN

    def as_json(self, *, payloads: bool = False) -> dict[str, object]:
        return {
            "id": self.id,
            "account_id": self.account_id,
            "kind": self.kind.value,
            "dry_run": self.dry_run,
            "status": self.status,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "failure_reason": self.failure_reason,
            "events": [event_json(event, payload=payloads) for event in self.events],
        }


def event_json(event: Event, *, payload: bool) -> dict[str, Any]:
    """One event as the API and `alchemiser events --format json` show it; with `payload`, its
    schema version and payload too, numbers as decimal strings shown to their places
    (docs/operations.md, The HTTP API)."""
    shown: dict[str, Any] = {
        "event_id": str(event.event_id),
        "event_type": event.event_type,
        "causation_id": event.causation_id,
        "occurred_at": _iso(event.occurred_at),
        "source": event.source,
    }
    if payload:
        shown["schema_version"] = event.schema_version
        shown["payload"] = to_jsonable_python(view(event.model_dump(exclude=set(ENVELOPE_FIELDS))))
    return shown


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
        kind=state.kind,
        status=state.status,
        started_at=state.started.occurred_at if state.started is not None else None,
        finished_at=ending.occurred_at if ending is not None else None,
        failure_reason=ending.failure_reason if isinstance(ending, WorkflowFailed) else None,
        last_event_at=state.last_event_at,
        events=tuple(events),
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
