from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from shared.eventstore import SqlEventStore, upgrade
from tests.integration.eventstore.contract import EventStoreContract
from tests.unit.events.examples import order_filled


class TestSqliteEventStore(EventStoreContract):
    @pytest.fixture
    def database_url(self, tmp_path: Path) -> str:
        return f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"


async def test_plain_sqlite_urls_are_accepted(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    await upgrade(url)
    store = SqlEventStore(url)
    try:
        async with store.unit_of_work() as uow:
            await uow.append("s", 0, [order_filled()])
        assert len(await store.read_all()) == 1
    finally:
        await store.close()


async def test_concurrent_sqlite_writers_queue_instead_of_failing(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'busy.db'}"
    await upgrade(url)
    stores = [SqlEventStore(url, pool_size=2) for _ in range(2)]

    async def write(store: SqlEventStore, stream: str) -> None:
        for _ in range(25):
            async with store.unit_of_work() as uow:
                await uow.append(stream, None, [order_filled()])

    try:
        await asyncio.gather(*(write(store, f"s{index}") for index, store in enumerate(stores)))
        positions = [record.position for record in await stores[0].read_all(limit=100)]
        assert positions == list(range(1, 51))
    finally:
        for store in stores:
            await store.close()


async def test_a_new_sqlite_database_is_in_wal_mode_before_any_service_connects(tmp_path: Path):
    """Two engines opening a new file at once both tried to switch it to WAL, and the loser
    failed with "database is locked" (the switch does not wait on the busy timeout)."""
    path = tmp_path / "new.db"
    await upgrade(f"sqlite+aiosqlite:///{path}")
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
