"""`alchemiser run`: one forced workflow through the four services in this process."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from services.commands.settings import secret_values, settings_or_exit
from services.registry import READ_SIDE


def run(
    account: Annotated[str, typer.Option(help="The account to run for.")] = "default",
    out: Annotated[Path, typer.Option(help="Where the rendered email is written.")] = Path("out"),
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Signal, plan and preview the orders without sending any (not today's run).",
        ),
    ] = False,
    email: Annotated[
        bool,
        typer.Option("--email", help="Report the dry run on the configured channels too."),
    ] = False,
    web: Annotated[
        bool, typer.Option(help="After the run, serve the dashboard on 127.0.0.1 (as `web`).")
    ] = False,
    port: Annotated[
        int, typer.Option(help="The dashboard's port with --web.")
    ] = READ_SIDE.default_port,
) -> None:
    """Run the whole system embedded — in-memory bus, the configured store (SQLite under
    ALCHEMISER_DATA_DIR by default), the simulated broker on the simulated clock unless
    ALCHEMISER_BROKER=alpaca — show progress, print the summary, write the email to OUT.
    Exits 1 when the workflow fails; with --web, serves the dashboard until stopped."""
    import asyncio

    from services.commands.failures import OptionError
    from services.embedded import (
        RunResult,
        ServiceTaskDiedError,
        prepare_data,
        print_summary,
        run_once,
    )
    from services.strategy.trigger import TradingHaltedError, TriggerRefused
    from shared.logs import configure_logging

    if email and not dry_run:
        raise OptionError(
            "--email: only a dry run is reported on request; a run is always reported on every "
            "configured channel (drop --email, or add --dry-run)"
        )
    settings = settings_or_exit()
    # Progress lines are for a person; JSON logs only when asked for with ALCHEMISER_LOG_LEVEL.
    level = settings.log_level if "ALCHEMISER_LOG_LEVEL" in os.environ else "WARNING"
    configure_logging(level, secrets=secret_values(settings))

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    async def prepared_run() -> RunResult:
        await prepare_data(settings, progress)
        return await run_once(
            settings,
            account_id=account,
            out_dir=out,
            progress=progress,
            dry_run=dry_run,
            email=email,
        )

    try:
        result = asyncio.run(prepared_run())
    except ServiceTaskDiedError as error:
        typer.echo(f"alchemiser run: {error}", err=True)
        raise typer.Exit(1) from None
    except (TriggerRefused, TradingHaltedError) as error:
        typer.echo(f"alchemiser run: refused: {error}", err=True)
        raise typer.Exit(3) from None
    print_summary(result)
    if web:
        from services.commands.web import web as serve_dashboard

        print(f"dashboard: http://127.0.0.1:{port}/ (Ctrl-C stops it)", file=sys.stderr, flush=True)
        serve_dashboard(port)
    if result.view.status != "completed":
        raise typer.Exit(1)
