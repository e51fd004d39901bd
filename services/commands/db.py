"""`alchemiser db upgrade`."""

from __future__ import annotations

import asyncio

import typer

from services.commands.settings import settings_or_exit

db_app = typer.Typer(help="The event store's schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the event store's migrations to ALCHEMISER_DATABASE_URL (compose and Kubernetes run
    this as a one-shot step before the services start)."""
    from shared.eventstore.migrations import upgrade
    from shared.logs import configure_logging

    settings = settings_or_exit()
    configure_logging(settings.log_level)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(upgrade(settings.resolved_database_url))
    typer.echo("event store schema is up to date", err=True)
