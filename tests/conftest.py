from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest
import structlog

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


@pytest.fixture(autouse=True)
def logging_as_before() -> Iterator[None]:
    """A test that configures logging (as `alchemiser serve` does) binds it to the stream its
    capture opened; after the test that stream is closed, and every later log line would fail
    with "I/O operation on closed file". Each test leaves logging as it found it."""
    structlog_config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**structlog_config)
    root.handlers[:] = handlers
    root.setLevel(level)
