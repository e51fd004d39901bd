"""`alchemiser serve strategy|portfolio|execution|notify`."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from services.commands.settings import secret_values, settings_or_exit
from services.registry import SERVICES, ServiceName

Host = Annotated[str, typer.Option(help="Interface to listen on.")]
Port = Annotated[int | None, typer.Option(help="Port; default 8001-8004 by service.")]


def serve_main(service: ServiceName) -> None:
    """`python -m services.<name>`: `alchemiser serve <name>` with the same options. It imports
    only this module, so a service package's entry point depends on no other service."""

    def serve_this(host: Host = "127.0.0.1", port: Port = None) -> None:
        serve(service, host, port)

    typer.run(serve_this)


def serve(
    service: Annotated[ServiceName, typer.Argument(help="Which service this process runs.")],
    host: Host = "127.0.0.1",
    port: Port = None,
) -> None:
    """Run one service under uvicorn until SIGTERM."""
    import uvicorn

    from shared.bus.rabbitmq import RabbitMqBus
    from shared.eventstore.errors import DatabaseNotMigratedError, EventStoreUnavailableError
    from shared.eventstore.migrations import ensure_migrated
    from shared.eventstore.store import SqlEventStore
    from shared.logs import configure_logging
    from shared.service.app import create_app
    from shared.service.auth import MissingApiTokenError
    from shared.service.runtime import ServiceRuntime

    settings = settings_or_exit()
    configure_logging(settings.log_level, secrets=secret_values(settings), service=service.value)
    database_url = settings.resolved_database_url
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    registered = SERVICES[service]
    try:
        asyncio.run(ensure_migrated(database_url))
        definition = registered.definition(settings)
    except (DatabaseNotMigratedError, EventStoreUnavailableError, MissingApiTokenError) as error:
        typer.echo(f"alchemiser serve {service.value}: {error}", err=True)
        raise typer.Exit(1) from None
    bus = RabbitMqBus(
        settings.rabbitmq_url,
        exchange=settings.bus_exchange,
        handlers_per_queue=settings.bus_handlers_per_queue,
        prefetch=max(32, 2 * settings.bus_handlers_per_queue),
    )
    runtime = ServiceRuntime(definition, settings, SqlEventStore(database_url), bus)
    uvicorn.run(
        create_app(runtime),
        host=host,
        port=port or registered.default_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
