"""Every service's HTTP surface: /healthz alive whatever the dependencies, /readyz 503 with the
reason while the bus is unreachable and 200 once the consumers are attached, /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
import pytest

from shared.bus.rabbitmq import RabbitMqBus
from shared.events import Event
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.messaging.consumer import HandlerContext
from shared.service.app import create_app
from shared.service.runtime import ServiceDefinition, ServiceRuntime
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


async def running(
    bus_url: str, store: SqlEventStore, namespace: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    definition = ServiceDefinition(
        name="portfolio", event_types=("SignalGenerated",), handler=consume_only
    )
    settings = Settings(data_dir=tmp_path, bus_namespace=namespace)
    bus = RabbitMqBus(bus_url, exchange=settings.bus_exchange, reconnect_interval_s=0.2)
    runtime = ServiceRuntime(definition, settings, store, bus)
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
