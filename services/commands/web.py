"""`alchemiser web [--port P]`: the dashboard over the embedded store (the one `alchemiser run`
writes), on 127.0.0.1 only (docs/web.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from services.commands.serve import serve_process
from services.commands.settings import settings_or_exit
from services.registry import READ_SIDE, ServiceName


def web(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = READ_SIDE.default_port,
) -> None:
    """Serve the web dashboard on 127.0.0.1 over ALCHEMISER_DATABASE_URL (by default the
    embedded SQLite store under ALCHEMISER_DATA_DIR), migrating it first as `alchemiser run`
    does."""
    import asyncio

    from shared.eventstore.migrations import upgrade

    settings = settings_or_exit()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(upgrade(settings.resolved_database_url))
    serve_process(ServiceName.WEB, "127.0.0.1", port, embedded=True)
