"""Every service's HTTP surface: /healthz alive whatever the dependencies, /readyz 503 with the
reason while the bus is unreachable, or once a task of the runtime died, and 200 once the
consumers are attached, /metrics; and the process stopping when a task dies."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from pathlib import Path

import httpx
import pytest

from shared.bus.rabbitmq import RabbitMqBus
from shared.events import Event
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.messaging.consumer import HandlerContext
from shared.service.app import create_app
from shared.service.runtime import (
    Periodic,
    PeriodicContext,
    PeriodicOutcome,
    ServiceDefinition,
    ServiceRuntime,
)
from shared.settings import Settings
from tests.eventually import eventually
from tests.servers import delete_bus_namespace, unique_bus_namespace

pytestmark = pytest.mark.integration


async def consume_only(event: Event, context: HandlerContext) -> Sequence[Event]:
    return ()


@pytest.fixture
async def store(tmp_path: Path) -> SqlEventStore:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    await upgrade(url)
    return SqlEventStore(url)


@pytest.fixture
def namespace() -> str:
    return unique_bus_namespace()


def service(*periodic: Periodic) -> ServiceDefinition:
    return ServiceDefinition(
        name="portfolio",
        event_types=("SignalGenerated",),
        handler=consume_only,
        periodic=periodic,
    )


def runtime_of(
    bus_url: str, store: SqlEventStore, namespace: str, tmp_path: Path, *periodic: Periodic
) -> ServiceRuntime:
    settings = Settings(data_dir=tmp_path, bus_namespace=namespace)
    bus = RabbitMqBus(bus_url, exchange=settings.bus_exchange, reconnect_interval_s=0.2)
    return ServiceRuntime(service(*periodic), settings, store, bus)


async def running(
    bus_url: str, store: SqlEventStore, namespace: str, tmp_path: Path, *periodic: Periodic
) -> AsyncIterator[httpx.AsyncClient]:
    runtime = runtime_of(bus_url, store, namespace, tmp_path, *periodic)
    app = create_app(runtime)
    await runtime.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client
    finally:
        await runtime.stop()


async def test_readyz_is_503_with_the_reason_while_rabbitmq_is_unreachable(
    store: SqlEventStore, namespace: str, tmp_path: Path
) -> None:
    async for client in running(CLOSED_AMQP_PORT, store, namespace, tmp_path):
        alive = await client.get("/healthz")
        assert alive.status_code == 200
        assert alive.json()["status"] == "alive"
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert "bus" in ready.json()["reason"]


async def test_readyz_is_200_once_the_consumer_is_attached(
    rabbitmq_url: str, store: SqlEventStore, namespace: str, tmp_path: Path
) -> None:
    try:
        async for client in running(rabbitmq_url, store, namespace, tmp_path):

            async def ready(client: httpx.AsyncClient = client) -> bool:
                return (await client.get("/readyz")).status_code == 200

            await eventually(ready, message="/readyz became 200")
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200
            assert "alchemiser_outbox_lag" in metrics.text
    finally:
        await delete_bus_namespace(namespace)


CLOSED_AMQP_PORT = "amqp://guest:guest@127.0.0.1:1/"


async def test_readyz_is_503_when_the_database_is_unreachable(
    namespace: str, tmp_path: Path
) -> None:
    unreachable = SqlEventStore("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    async for client in running(CLOSED_AMQP_PORT, unreachable, namespace, tmp_path):
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert "database" in ready.json()["reason"]
        assert (await client.get("/healthz")).status_code == 200


async def failing_check(context: PeriodicContext) -> AsyncGenerator[PeriodicOutcome, None]:
    raise RuntimeError("the check has a bug")
    yield  # an async generator, as every periodic check is


async def idle_check(context: PeriodicContext) -> AsyncGenerator[PeriodicOutcome, None]:
    return
    yield


async def readiness_reason(client: httpx.AsyncClient) -> str | None:
    ready = await client.get("/readyz")
    return ready.json()["reason"] if ready.status_code == 503 else None


async def test_readyz_is_503_naming_a_periodic_check_that_died_of_an_error(
    store: SqlEventStore, namespace: str, tmp_path: Path
) -> None:
    doomed = Periodic("doomed-check", 0.01, failing_check)
    async for client in running(CLOSED_AMQP_PORT, store, namespace, tmp_path, doomed):

        async def died(client: httpx.AsyncClient = client) -> str | None:
            reason = await readiness_reason(client)
            return reason if reason and "doomed-check" in reason else None

        reason = await eventually(died, message="/readyz named the dead check")
        assert "portfolio:doomed-check" in reason
        assert "RuntimeError: the check has a bug" in reason
        assert (await client.get("/healthz")).status_code == 200


async def test_readyz_is_503_naming_a_periodic_check_cancelled_from_outside(
    store: SqlEventStore, namespace: str, tmp_path: Path
) -> None:
    idle = Periodic("idle-check", 0.01, idle_check)
    async for client in running(CLOSED_AMQP_PORT, store, namespace, tmp_path, idle):
        [task] = [t for t in asyncio.all_tasks() if t.get_name() == "portfolio:idle-check"]
        task.cancel()

        async def died(client: httpx.AsyncClient = client) -> str | None:
            reason = await readiness_reason(client)
            return reason if reason and "idle-check" in reason else None

        reason = await eventually(died, message="/readyz named the cancelled check")
        assert "portfolio:idle-check" in reason and "cancelled" in reason


async def test_a_dead_task_stops_the_process_as_sigterm_does(
    store: SqlEventStore, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raised: list[int] = []
    monkeypatch.setattr(signal, "raise_signal", raised.append)
    doomed = Periodic("doomed-check", 0.01, failing_check)
    app = create_app(runtime_of(CLOSED_AMQP_PORT, store, namespace, tmp_path, doomed))
    async with app.router.lifespan_context(app):
        await eventually(lambda: raised, message="the process was told to stop")
    assert raised == [signal.SIGTERM]


async def test_a_service_stopped_normally_reports_no_dead_task(
    store: SqlEventStore, namespace: str, tmp_path: Path
) -> None:
    idle = Periodic("idle-check", 0.01, idle_check)
    runtime = runtime_of(CLOSED_AMQP_PORT, store, namespace, tmp_path, idle)
    await runtime.start()

    async def connecting() -> bool:
        return "message bus" in ((await runtime.readiness()).reason or "")

    await eventually(connecting, message="the runtime tried the bus")
    await runtime.stop()
    assert runtime.failure is None
