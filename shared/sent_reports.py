"""The report of a workflow as notify sent it, kept for the dashboard: notify saves the rendered
subject, text and HTML as its service-state document `report/<workflow id>`, in the transaction
of the `NotificationSent` events of that delivery, and the web service reads it there: the
two services share this document, not code (docs/decisions.md)."""

from __future__ import annotations

from typing import Any

from shared.eventstore import service_state
from shared.eventstore.port import EventStoreReader
from shared.eventstore.store import UnitOfWork

SERVICE = "notify"


def _key(workflow_id: str) -> str:
    return f"report/{workflow_id}"


async def save(uow: UnitOfWork, workflow_id: str, report: dict[str, Any]) -> None:
    """`report`: subject, text, html and fallback (the minimal report); the latest render wins."""
    stored = await service_state.load(uow, SERVICE, _key(workflow_id))
    await service_state.save(
        uow, SERVICE, _key(workflow_id), report, 0 if stored is None else stored.version
    )


async def load(store: EventStoreReader, workflow_id: str) -> dict[str, Any] | None:
    stored = await store.load_state(SERVICE, _key(workflow_id))
    return None if stored is None else stored.document
