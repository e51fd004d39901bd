"""A migrated SQLite event store per test, for the runs of the production executor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from tests.unit.execution.machine_run import Machine


@pytest.fixture
async def machine(tmp_path: Path) -> AsyncIterator[Machine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'execution.db'}"
    await upgrade(url)
    store = SqlEventStore(url)
    try:
        yield Machine(store)
    finally:
        await store.close()
