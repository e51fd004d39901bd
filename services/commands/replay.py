"""`alchemiser replay --workflow ID [--from EVENT_ID] [--strategies DIR] [--live]`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from services.commands.serve import settings_or_exit


def replay(
    workflow: Annotated[str, typer.Option(help="The recorded workflow to replay.")],
    from_event: Annotated[
        str | None,
        typer.Option("--from", help="Re-derive from this event on (default: the start)."),
    ] = None,
    strategies: Annotated[
        Path | None,
        typer.Option(help="Shadow mode: a folder with allocation.json and strategy files."),
    ] = None,
    live: Annotated[
        bool, typer.Option(help="Read asset metadata from the configured live broker.")
    ] = False,
) -> None:
    """Re-derive a recorded workflow's signal, plan and orders from its recorded inputs and
    show what differs; exits 1 on any difference (none is expected without --strategies)."""
    import asyncio

    from services.replay import ReplayError, ReplayResult, replay_workflow
    from services.strategy.signals import SignalGenerationError
    from shared.broker.factory import broker_for
    from shared.eventstore.store import SqlEventStore
    from shared.settings import BrokerKind

    settings = settings_or_exit()
    if not live and settings.broker is not BrokerKind.SIMULATED:
        settings = settings.model_copy(update={"broker": BrokerKind.SIMULATED})

    async def run() -> ReplayResult:
        store = SqlEventStore(settings.resolved_database_url)
        try:
            events = [item.event for item in await store.read_correlation(workflow)]
            account = events[0].account_id if events else "default"
            broker = broker_for(settings, account)
            return await replay_workflow(
                events, settings, broker, from_event=from_event, strategies_dir=strategies
            )
        finally:
            await store.close()

    try:
        result = asyncio.run(run())
    except (ReplayError, SignalGenerationError) as error:
        typer.echo(f"alchemiser replay: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"replayed workflow {result.workflow_id} from {result.started_from}")
    typer.echo(
        "plan:   " + ", ".join(f"{d.action} {d.symbol} ${d.amount:,.2f}" for d in result.plan)
    )
    typer.echo("orders: " + ", ".join(f"{d.action} {d.amount} {d.symbol}" for d in result.orders))
    if result.differences:
        typer.echo("differs from the recording:")
        for line in result.differences:
            typer.echo(f"  {line}")
        raise typer.Exit(1)
    typer.echo("identical to the recording: same plan and same orders")
