from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.servers import (
    RABBITMQ_URL,
    create_postgres_database,
    drop_postgres_database,
    require_server,
)


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh database on the real PostgreSQL for one test, dropped afterwards."""
    url = await create_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


@pytest.fixture
def rabbitmq_url() -> str:
    require_server("RabbitMQ", RABBITMQ_URL)
    return RABBITMQ_URL
