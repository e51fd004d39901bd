"""The dashboard's read models maintained incrementally — caught up at arbitrary points of a
sequence of runs, as a web service polling the store does — equal the ones rebuilt from the
first event, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from services.web import read_models
from services.web.read_models import catch_up, checkpoint, rebuild
from shared.eventstore import service_state
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.service.runtime import PeriodicRunner
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
    assert by_kind["halt"] == 1 and by_kind["account"] == 1
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


async def ledger_position(store: SqlEventStore) -> int:
    stored = await store.load_state(read_models.SERVICE, read_models.PNL_KEY)
    assert stored is not None
    return int(stored.document["trades"]["last_position"])


async def test_the_pnl_saved_every_few_pages_is_folded_on_after_a_restart(
    store: SqlEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The P&L projection stays in memory between pages and is saved every PNL_SAVE_PAGES
    pages: a service restarted in between (a fresh task) loads the saved copy and folds the
    pages since into it, and ends where a rebuild does."""
    monkeypatch.setattr(read_models, "PAGE_SIZE", 3)
    monkeypatch.setattr(read_models, "PNL_SAVE_PAGES", 4)
    for event in events_of(runs()):
        await record(store, event)
    runner = PeriodicRunner(read_models.SERVICE, store)
    first = read_models.catch_up_task()
    for _ in range(6):
        assert await runner.run_once(first) == 1
    assert await checkpoint(store) == 18
    assert await ledger_position(store) == 12  # saved after the fourth page, not since
    await catch_up(store)  # a restarted service
    maintained = await documents(store)
    last = await checkpoint(store)
    assert await ledger_position(store) == last  # saved at the end of the catch-up

    assert await rebuild(store) == last
    assert await documents(store) == maintained


async def test_documents_of_an_older_fold_are_made_again(store: SqlEventStore) -> None:
    for event in events_of(runs()):
        await record(store, event)
    await catch_up(store)
    current = await documents(store)
    async with store.unit_of_work() as uow:
        stored = await service_state.load(uow, read_models.SERVICE, read_models.CHECKPOINT_KEY)
        assert stored is not None
        await uow.connection.execute(
            delete(read_models.read_models).where(read_models.read_models.c.projection == "account")
        )
        await service_state.save(
            uow,
            read_models.SERVICE,
            read_models.CHECKPOINT_KEY,
            {"last_position": stored.document["last_position"]},  # as version 1 saved it
            stored.version,
        )
    await catch_up(store)
    assert await documents(store) == current


async def test_the_account_document_holds_its_newest_workflow_and_plan(
    store: SqlEventStore,
) -> None:
    for event in events_of(runs()):
        await record(store, event)
    await catch_up(store)
    rows = await documents(store)  # projection, key, account_id, workflow_id, at, status, document
    (account,) = [row for row in rows if row[0] == "account"]
    summary = account[6]
    newest = max((row for row in rows if row[0] == "workflow"), key=lambda row: (row[4], row[1]))
    assert summary["last_workflow"]["workflow_id"] == newest[1]
    assert summary["last_workflow"]["status"] == newest[5]
    plans = sorted((row for row in rows if row[0] == "account_run"), key=lambda row: row[4])
    assert [point[1] for point in summary["equity"]] == [plan[6]["equity"] for plan in plans]
    assert summary["latest"]["workflow_id"] == plans[-1][1]
    assert summary["latest"]["positions"] == plans[-1][6]["positions"]
    assert summary["pnl"] is not None and summary["pnl"]["as_of"]
