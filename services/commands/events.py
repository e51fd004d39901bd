"""`alchemiser events --workflow ID [--format json]`: a workflow's recorded events in causal
order, from the store of `ALCHEMISER_DATABASE_URL` — the audit trail of one run."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

from services.commands.settings import settings_or_exit


class EventsFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


def events(
    workflow: Annotated[str, typer.Option(help="The workflow (correlation) id.")],
    format: Annotated[EventsFormat, typer.Option(help="text or json.")] = EventsFormat.TEXT,
) -> None:
    """Print the workflow's events: JSON is an array of {event_id, event_type, causation_id,
    occurred_at, payload}."""
    import asyncio

    from shared.eventstore.migrations import ensure_migrated
    from shared.eventstore.records import RecordedEvent
    from shared.eventstore.store import SqlEventStore

    settings = settings_or_exit()
    url = settings.resolved_database_url

    async def read() -> list[RecordedEvent]:
        await ensure_migrated(url)
        store = SqlEventStore(url)
        try:
            return await store.read_correlation(workflow)
        finally:
            await store.close()

    recorded = asyncio.run(read())
    if not recorded:
        typer.echo(f"alchemiser events: no events for workflow {workflow}", err=True)
        raise typer.Exit(1)
    rows = [
        {
            "event_id": str(item.event.event_id),
            "event_type": item.event.event_type,
            "causation_id": item.event.causation_id,
            "occurred_at": item.event.occurred_at.isoformat(),
            "source": item.event.source,
            "payload": item.event.payload(),
        }
        for item in recorded
    ]
    if format is EventsFormat.JSON:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        typer.echo(
            f"{row['occurred_at']}  {row['event_type']:<18} {row['source']:<10} "
            f"{row['event_id']}  caused by {row['causation_id'] or '-'}"
        )
