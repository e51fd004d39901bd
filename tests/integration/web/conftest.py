"""The web service's real app in process over a SQLite store holding several runs (history.py),
signed in by none yet, with the read models caught up: what every page test starts from."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.web.service import definition
from shared.bus.memory import InMemoryBus
from shared.eventstore.store import SqlEventStore
from shared.service.app import create_app
from shared.service.runtime import ServiceRuntime
from shared.settings import Settings
from tests.integration.web.test_pages import BEARER, TOKEN, recorded_store


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[TestClient, list[str], list[str]]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    ids = asyncio.run(recorded_store(url))
    settings = Settings(data_dir=tmp_path, api_token=TOKEN)
    asked: list[str] = []

    async def trigger(account: str) -> tuple[int, str]:
        asked.append(account)
        return 409, "outside the close window; the next window opens later"

    runtime = ServiceRuntime(
        definition(settings, trigger), settings, SqlEventStore(url), InMemoryBus()
    )
    with TestClient(create_app(runtime), base_url="http://127.0.0.1") as client:
        deadline = time.monotonic() + 30
        while len(client.get("/api/workflows", headers=BEARER).json()) < len(ids):
            assert time.monotonic() < deadline, "the read models did not catch up"
            time.sleep(0.1)
        yield client, ids, asked
