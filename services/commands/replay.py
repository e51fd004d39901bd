"""`alchemiser replay --workflow ID [--from EVENT_ID] [--strategies DIR]`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from services.commands.settings import settings_or_exit

if TYPE_CHECKING:
    from services.replay import Decision, Redrive, ReplayResult


def replay(
    workflow: Annotated[str, typer.Option(help="The recorded workflow to replay.")],
    from_event: Annotated[
        str | None,
        typer.Option("--from", help="Re-derive from this event on (default: the start)."),
    ] = None,
    strategies: Annotated[
        Path | None,
        typer.Option(
            help="Shadow mode: a folder with strategy files and their allocation config "
            "(allocation.json, else allocation.prod.json)."
        ),
    ] = None,
    save: Annotated[
        bool,
        typer.Option(
            help="Keep the comparison under ALCHEMISER_DATA_DIR/replays/ for the dashboard's "
            "Replay page."
        ),
    ] = False,
) -> None:
    """Re-derive a recorded workflow's signal, plan and orders from its recorded inputs, then
    play it again under a new workflow id on a simulated account opened with the recorded
    account snapshot; show what differs from the recording and exit 1 on any difference.
    With --strategies (shadow mode) only the re-derivation runs, with the other files."""
    import asyncio

    from services.embedded import ServiceTaskDiedError
    from services.replay import (
        ReplayError,
        redrive,
        replay_workflow,
    )
    from services.replay import differences as compare
    from services.strategy.signals import SignalGenerationError
    from shared.broker.factory import broker_for
    from shared.broker.request_budget import BudgetShare
    from shared.eventstore.store import SqlEventStore
    from shared.logs import configure_logging
    from shared.settings import BrokerKind

    settings = settings_or_exit()
    configure_logging("WARNING")
    settings = settings.model_copy(update={"broker": BrokerKind.SIMULATED})

    async def run() -> tuple[ReplayResult, Redrive | None]:
        store = SqlEventStore(settings.resolved_database_url)
        try:
            events = [item.event for item in await store.read_correlation(workflow)]
        finally:
            await store.close()
        account = events[0].account_id if events else "default"
        broker = broker_for(settings, account, share=BudgetShare.STRATEGY)
        result = await replay_workflow(
            events, settings, broker, from_event=from_event, strategies_dir=strategies
        )
        if strategies is not None:
            return result, None
        return result, await redrive(events, result, settings)

    try:
        result, played = asyncio.run(run())
    except (ReplayError, SignalGenerationError, ServiceTaskDiedError) as error:
        typer.echo(f"alchemiser replay: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"re-derived workflow {result.workflow_id} from {result.started_from}")
    for note in result.notes:
        typer.echo(f"note:   {note}")
    typer.echo("plan:   " + _plan_text(result.plan))
    typer.echo("orders: " + _order_text(result.orders))
    found = list(result.differences)
    if played is not None:
        typer.echo(
            f"re-driven as workflow {played.workflow_id} on simulated account "
            f"{played.account_id}: {played.status}"
        )
        typer.echo("plan:   " + _plan_text(played.plan))
        typer.echo("orders: " + _order_text(played.orders))
        if played.status != "completed":
            found.append(f"the re-driven workflow ended {played.status}")
        found += [
            f"re-driven {line}"
            for line in compare("plan", played.plan, result.recorded_plan)
            + compare("orders", played.orders, result.recorded_orders)
        ]
    if save:
        kept = _save(settings.data_dir, result, played, found, shadow=strategies)
        typer.echo(f"saved: {kept}")
    if found:
        typer.echo("differs from the recording:")
        for line in found:
            typer.echo(f"  {line}")
        raise typer.Exit(1)
    typer.echo("identical to the recording: same plan and same orders")


REPLAYS_FOLDER = "replays"


def _save(
    data_dir: Path,
    result: ReplayResult,
    played: Redrive | None,
    found: list[str],
    *,
    shadow: Path | None,
) -> Path:
    """The comparison as JSON, what the dashboard's Replay page shows (docs/web.md, Pages)."""
    import datetime as dt
    import json

    def lines(decisions: tuple[Decision, ...]) -> list[dict[str, str]]:
        return [
            {"symbol": d.symbol, "action": d.action, "amount": str(d.amount)} for d in decisions
        ]

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    document = {
        "workflow_id": result.workflow_id,
        "saved_at": stamp,
        "started_from": result.started_from,
        "shadow": None if shadow is None else str(shadow),
        "notes": list(result.notes),
        "plan": {"recorded": lines(result.recorded_plan), "replayed": lines(result.plan)},
        "orders": {"recorded": lines(result.recorded_orders), "replayed": lines(result.orders)},
        "redrive": None
        if played is None
        else {
            "workflow_id": played.workflow_id,
            "status": played.status,
            "plan": lines(played.plan),
            "orders": lines(played.orders),
        },
        "differences": found,
    }
    folder = data_dir / REPLAYS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"replay-{stamp}-{result.workflow_id}.json"
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return path


def _plan_text(lines: tuple[Decision, ...]) -> str:
    return ", ".join(f"{d.action} {d.symbol} ${d.amount:,.2f}" for d in lines)


def _order_text(lines: tuple[Decision, ...]) -> str:
    return ", ".join(f"{d.action} {d.amount} {d.symbol}" for d in lines)
