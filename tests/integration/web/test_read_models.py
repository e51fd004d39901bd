"""The dashboard's read models maintained incrementally — caught up at arbitrary points of a
sequence of runs, as a web service polling the store does — equal the ones rebuilt from the
first event, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from services.web import read_models
from services.web.read_models import catch_up, checkpoint, rebuild
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from tests.integration.web.history import events_of, record, runs
from tests.servers import create_postgres_database, drop_postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlEventStore]:
    postgres = request.param == "postgresql"
    url = await create_postgres_database() if postgres else f"sqlite:///{tmp_path / 'store.db'}"
    await upgrade(url)
    store = SqlEventStore(url)
    try:
        yield store
    finally:
        await store.close()
        if postgres:
            await drop_postgres_database(url)


async def documents(store: SqlEventStore) -> list[tuple[Any, ...]]:
    table = read_models.read_models
    async with store.engine.connect() as connection:
        rows = await connection.execute(select(table).order_by(table.c.projection, table.c.key))
        return [tuple(row) for row in rows]


async def test_caught_up_piecemeal_equals_rebuilt(store: SqlEventStore) -> None:
    made = runs()
    for count, event in enumerate(events_of(made), start=1):
        await record(store, event)
        if count % 3 == 0:  # mid-workflow, at varying steps
            await catch_up(store)
    await catch_up(store)
    maintained = await documents(store)
    last = await checkpoint(store)

    assert await rebuild(store) == last
    assert await documents(store) == maintained

    by_kind: dict[str, int] = {}
    for row in maintained:
        by_kind[row[0]] = by_kind.get(row[0], 0) + 1
    assert by_kind["workflow"] == len(made)
    assert by_kind["notification"] == len(made)  # the halt's announcement is no workflow's
    assert by_kind["halt"] == 1 and by_kind["pnl"] == 1
    assert by_kind["order"] == 4  # the rejected one and the stalled run's three
    statuses = {row[1]: row[5] for row in maintained if row[0] == "workflow"}
    assert sorted(statuses.values()) == ["completed"] * 2 + ["failed"] * 4


async def test_catching_up_twice_changes_nothing(store: SqlEventStore) -> None:
    for event in events_of(runs()):
        await record(store, event)
    await catch_up(store)
    once = await documents(store)
    await catch_up(store)
    assert await documents(store) == once
