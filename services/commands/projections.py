"""`alchemiser projections rebuild`: drop the web dashboard's read models and fold them again
from the first event (docs/web.md, Read models)."""

from __future__ import annotations

import asyncio

import typer

from services.commands.settings import settings_or_exit

projections_app = typer.Typer(
    help="The read models folded from the event store.", no_args_is_help=True
)


@projections_app.command("rebuild")
def projections_rebuild() -> None:
    """Rebuild the read models from ALCHEMISER_DATABASE_URL's events; a running web service
    keeps serving and carries on from the rebuilt checkpoint."""
    from services.web.read_models import rebuild
    from shared.eventstore.migrations import ensure_migrated
    from shared.eventstore.store import SqlEventStore
    from shared.logs import configure_logging

    settings = settings_or_exit()
    configure_logging(settings.log_level)

    async def rebuilt() -> int:
        await ensure_migrated(settings.resolved_database_url)
        store = SqlEventStore(settings.resolved_database_url)
        try:
            return await rebuild(store)
        finally:
            await store.close()

    typer.echo(f"read models rebuilt up to event position {asyncio.run(rebuilt())}", err=True)
