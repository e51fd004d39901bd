"""The real servers integration tests use: reachable, or skipped with the reason (CI: failed)."""

from __future__ import annotations

import os
import socket
import uuid
from urllib.parse import urlsplit

import pytest

from services import registry

POSTGRES_ADMIN_URL = os.environ.get(
    "ALCHEMISER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
RABBITMQ_URL = os.environ.get("ALCHEMISER_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_server(name: str, url: str) -> None:
    """Skip (laptop) or fail (CI=true) when the server behind `url` does not accept connections."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as error:
        reason = f"{name} is not reachable at {host}:{port} ({error})"
        if in_ci():
            pytest.fail(f"{reason}; CI needs it (.ci/run starts it)", pytrace=False)
        pytest.skip(reason)


async def create_database(admin_url: str, name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def create_postgres_database(admin_url: str = POSTGRES_ADMIN_URL) -> str:
    """A new, empty database on the real server (or the one of `admin_url`); returns its
    asyncpg SQLAlchemy URL."""
    require_server("PostgreSQL", admin_url)
    name = f"alc_test_{uuid.uuid4().hex[:12]}"
    await create_database(admin_url, name)
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}"


async def drop_postgres_database(url: str) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1]
    connection = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


SERVICES = tuple(name.value for name in registry.SERVICES)


def unique_bus_namespace() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


async def delete_bus_namespace(
    namespace: str, services: tuple[str, ...] = SERVICES, rabbitmq_url: str = RABBITMQ_URL
) -> None:
    """Remove what services of a test namespace declared on the real RabbitMQ."""
    import aio_pika

    connection = await aio_pika.connect(rabbitmq_url)
    try:
        channel = await connection.channel()
        for service in services:
            await channel.queue_delete(f"{namespace}.{service}")
            await channel.queue_delete(f"{namespace}.{service}.dlq")
        await channel.exchange_delete(f"{namespace}.events")
        await channel.exchange_delete(f"{namespace}.events.dlx")
    finally:
        await connection.close()
