"""Property test of the store on SQLite: whatever the sequence of appends and conflicting
appends, positions stay gap-free, streams stay dense, and events come back exactly."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.events import Event
from shared.eventstore import ConcurrencyError, SqlEventStore, upgrade
from tests.unit.events.examples import order_filled

amounts = st.decimals(
    min_value=Decimal("0.000001"), max_value=Decimal("1000000"), allow_nan=False, places=6
)
appends = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.lists(amounts, min_size=1, max_size=4),
        st.booleans(),
    ),
    min_size=1,
    max_size=8,
)


@pytest.fixture(scope="module")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    template = tmp_path_factory.mktemp("store-property") / "template.db"
    asyncio.run(upgrade(f"sqlite+aiosqlite:///{template}"))
    return template


@settings(max_examples=25, deadline=None)
@given(plan=appends)
def test_positions_are_gap_free_and_streams_dense_whatever_the_appends(
    migrated_template: Path, plan: list[tuple[str, list[Decimal], bool]]
):
    with tempfile.TemporaryDirectory() as directory:
        database = Path(directory) / "events.db"
        shutil.copy(migrated_template, database)
        asyncio.run(_check(f"sqlite+aiosqlite:///{database}", plan))


async def _check(url: str, plan: list[tuple[str, list[Decimal], bool]]) -> None:
    store = SqlEventStore(url)
    expected: dict[str, list[Event]] = {"a": [], "b": [], "c": []}
    appended: list[Event] = []
    try:
        for stream, quantities, conflicting in plan:
            batch = [order_filled(qty, qty) for qty in quantities]
            version = len(expected[stream])
            if conflicting:
                with pytest.raises(ConcurrencyError):
                    async with store.unit_of_work() as uow:
                        await uow.append(stream, version + 1, batch)
                continue
            async with store.unit_of_work() as uow:
                await uow.append(stream, version, batch)
            expected[stream].extend(batch)
            appended.extend(batch)
        everything = await store.read_all(limit=1000)
        assert [record.position for record in everything] == list(range(1, len(appended) + 1))
        assert [record.event for record in everything] == appended
        for stream, events in expected.items():
            records = await store.read_stream(stream)
            assert [record.event for record in records] == events
            assert [record.stream_version for record in records] == list(range(1, len(events) + 1))
        assert await store.outbox_lag() == len(appended)
    finally:
        await store.close()
