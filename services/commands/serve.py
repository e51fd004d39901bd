"""`alchemiser serve strategy|portfolio|execution|notify` and `alchemiser db upgrade`."""

from __future__ import annotations

import asyncio
import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from shared.service.runtime import ServiceDefinition
    from shared.settings import Settings


class ServiceName(StrEnum):
    STRATEGY = "strategy"
    PORTFOLIO = "portfolio"
    EXECUTION = "execution"
    NOTIFY = "notify"


db_app = typer.Typer(help="The event store's schema.", no_args_is_help=True)


def settings_or_exit() -> Settings:
    """Settings, or one line naming the bad variable and exit code 2."""
    from shared.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as error:
        typer.echo(f"alchemiser: {error}", err=True)
        raise typer.Exit(2) from None


def service_definition(name: ServiceName, settings: Settings) -> ServiceDefinition:
    from importlib import import_module

    module = import_module(f"services.{name.value}.service")
    definition: ServiceDefinition = module.definition(settings)
    return definition


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


def serve(
    service: Annotated[ServiceName, typer.Argument(help="Which service this process runs.")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port; default 8001-8004 by service.")] = None,
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
    try:
        asyncio.run(ensure_migrated(database_url))
        definition = service_definition(service, settings)
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
        port=port or definition.default_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


def secret_values(settings: Settings) -> list[str]:
    """Every secret in force, for the log masker."""
    from shared.service.auth import token_file

    values = [
        secret.get_secret_value()
        for secret in (
            settings.api_token,
            settings.alpaca_key_id,
            settings.alpaca_secret_key,
            settings.smtp_password,
        )
        if secret is not None
    ]
    path = token_file(settings)
    if path.exists():
        values.append(path.read_text(encoding="utf-8").strip())
    return values


def run_module(service: ServiceName) -> None:
    """`python -m services.<name>`: the same as `alchemiser serve <name>` with its options."""
    sys.argv = ["alchemiser", "serve", service.value, *sys.argv[1:]]
    from services.cli import main

    main()
