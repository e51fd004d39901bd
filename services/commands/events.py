"""`alchemiser events --workflow ID [--format json]`: a workflow's recorded events in causal
order, from the store of `ALCHEMISER_DATABASE_URL` — the audit trail of one run."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from services.commands.settings import settings_or_exit

if TYPE_CHECKING:
    from shared.events import Event


class EventsFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


def events(
    workflow: Annotated[str, typer.Option(help="The workflow (correlation) id.")],
    format: Annotated[EventsFormat, typer.Option(help="text or json.")] = EventsFormat.TEXT,
) -> None:
    """Print the workflow's events: JSON is an array of {event_id, event_type, causation_id,
    occurred_at, source, schema_version, payload}."""
    import asyncio

    from services.commands.failures import CommandFailedError
    from services.strategy.workflow_status import event_json
    from shared.eventstore.migrations import describe, ensure_migrated
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
        raise CommandFailedError(
            f"no events for workflow {workflow} in {describe(url)}; the workflow id is in the "
            "run's summary, email and `alchemiser trigger`'s answer"
        )
    rows = [event_json(item.event, payload=True) for item in recorded]
    if format is EventsFormat.JSON:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row, item in zip(rows, recorded, strict=True):
        typer.echo(
            f"{row['occurred_at']}  {row['event_type']:<18} {row['source']:<10} "
            f"{row['event_id']}  caused by {row['causation_id'] or '-'}{_order_text(item.event)}"
        )


def _order_text(event: Event) -> str:
    """What an order event is about, so a line of the audit trail says what was traded; a dry
    run says so on its start and lists the orders it previewed."""
    from shared.decimal_places import Places, shown
    from shared.events import OrdersPreviewed, WorkflowStarted
    from shared.events.orders import OrderEvent, OrderFilled, OrderRejected, OrderRequested

    if isinstance(event, WorkflowStarted) and event.workflow_type == "dry_run":
        return "  DRY RUN: nothing is sent to the broker"
    if isinstance(event, OrdersPreviewed):
        return "".join(
            f"\n    would {order.side.value} {order.symbol} {shown(order.qty, Places.QUANTITY)} "
            + (
                "market"
                if order.limit_price is None
                else f"limit {shown(order.limit_price, Places.PRICE)}"
            )
            for order in event.orders
        ) + "".join(
            f"\n    would skip {item.action.value} {item.symbol}: {item.reason}"
            for item in event.skipped
        )
    if not isinstance(event, OrderEvent):
        return ""
    text = f"  {event.side.value} {event.symbol}"
    if isinstance(event, OrderRequested):
        price = (
            "market"
            if event.limit_price is None
            else f"limit {shown(event.limit_price, Places.PRICE)}"
        )
        return f"{text} {shown(event.qty, Places.QUANTITY)} {price}"
    if isinstance(event, OrderFilled):
        return (
            f"{text} {shown(event.filled_qty, Places.QUANTITY)} at "
            f"{shown(event.avg_fill_price, Places.PRICE)}"
        )
    if isinstance(event, OrderRejected):
        return f"{text}: {event.reason}"
    return text
