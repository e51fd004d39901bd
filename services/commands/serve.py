"""`alchemiser serve strategy|portfolio|execution|notify|web`."""

from __future__ import annotations

import asyncio
import socket
from typing import Annotated

import typer

from services.commands.failures import OptionError, run_command
from services.commands.settings import secret_values, settings_or_exit
from services.registry import SERVABLE, ServiceName

Host = Annotated[str, typer.Option(help="Interface to listen on.")]
Port = Annotated[int | None, typer.Option(help="Port; default 8001-8005 by service.")]


def serve_main(service: ServiceName) -> None:
    """`python -m services.<name>`: `alchemiser serve <name>` with the same options. It imports
    only this module, so a service package's entry point depends on no other service."""

    def serve_this(host: Host = "127.0.0.1", port: Port = None) -> None:
        serve(service, host, port)

    run_command(lambda: typer.run(serve_this))


def serve(
    service: Annotated[ServiceName, typer.Argument(help="Which service this process runs.")],
    host: Host = "127.0.0.1",
    port: Port = None,
) -> None:
    """Run one service under uvicorn until SIGTERM."""
    serve_process(service, host, port)


def serve_process(
    service: ServiceName, host: str, port: int | None, *, embedded: bool = False
) -> None:
    """`serve`; `embedded`: the dashboard of `alchemiser web`, beside no running services."""
    import uvicorn

    from shared.bus.memory import InMemoryBus
    from shared.bus.rabbitmq import RabbitMqBus
    from shared.eventstore.migrations import ensure_migrated
    from shared.eventstore.store import SqlEventStore
    from shared.logs import configure_logging
    from shared.service.app import create_app
    from shared.service.runtime import ServiceRuntime

    settings = settings_or_exit()
    configure_logging(settings.log_level, secrets=secret_values(settings), service=service.value)
    database_url = settings.resolved_database_url
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    registered = SERVABLE[service]
    # Listening comes first: a busy port found only after the runtime started would leave its
    # RabbitMQ reconnect loop holding the process open.
    listener = _listen(host, port or registered.default_port)
    asyncio.run(ensure_migrated(database_url))
    definition = (
        registered.definition(settings, embedded=True)
        if embedded
        else registered.definition(settings)
    )
    # A read-only service (the web dashboard) consumes nothing: its bus is never connected.
    bus = (
        InMemoryBus()
        if definition.handler is None
        else RabbitMqBus(
            settings.rabbitmq_url,
            exchange=settings.bus_exchange,
            handlers_per_queue=settings.bus_handlers_per_queue,
            prefetch=max(32, 2 * settings.bus_handlers_per_queue),
        )
    )
    runtime = ServiceRuntime(definition, settings, SqlEventStore(database_url), bus)
    config = uvicorn.Config(
        create_app(runtime),
        host=host,
        port=port or registered.default_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run(sockets=[listener])


def _listen(host: str, port: int) -> socket.socket:
    """The bound server socket, or an `OptionError` naming the address when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise OptionError(
            f"--port {port}: cannot listen on {host}:{port} ({error.strerror}); stop the "
            "process that holds it or choose another port with --port"
        ) from None
    return listener
