"""Each service's real FastAPI app, in process: a migrated SQLite store, the in-memory bus and the
simulated broker, built as `alchemiser serve` builds it (minus uvicorn and RabbitMQ)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI

from services.registry import SERVICES
from shared.bus.memory import InMemoryBus
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.service.app import create_app
from shared.service.runtime import ServiceDefinition, ServiceRuntime
from shared.settings import Settings

TOKEN = "security-test-token-0123456789"
IN_WINDOW = "2024-11-26T15:50:00"
"""New York time inside a normal session's close window, so an unforced trigger may start."""

DEFINITIONS: dict[str, Callable[[Settings], ServiceDefinition]] = {
    name.value: registered.definition for name, registered in SERVICES.items()
}


async def service_app(service: str, data_dir: Path) -> tuple[FastAPI, SqlEventStore]:
    """The app and its store; the caller closes the store (or lets the app's lifespan do it)."""
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    url = f"sqlite+aiosqlite:///{data_dir / 'events.db'}"
    await upgrade(url)
    settings = Settings(data_dir=data_dir, api_token=TOKEN, sim_now=IN_WINDOW)
    store = SqlEventStore(url)
    runtime = ServiceRuntime(DEFINITIONS[service](settings), settings, store, InMemoryBus())
    return create_app(runtime), store
