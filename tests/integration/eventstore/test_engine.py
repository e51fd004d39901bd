"""The store's engine keeps the connections a peak opened: closing them on return made a busy
process open one per workflow (docs/performance.md, Statements per workflow)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, text

from shared.eventstore.engine import create_store_engine

pytestmark = pytest.mark.integration


async def test_connections_opened_at_a_peak_are_kept_for_the_next(postgres_url: str) -> None:
    engine = create_store_engine(postgres_url, pool_size=2)
    opened: list[Any] = []
    closed: list[Any] = []
    event.listen(engine.sync_engine.pool, "connect", lambda *arguments: opened.append(arguments))
    event.listen(engine.sync_engine.pool, "close", lambda *arguments: closed.append(arguments))
    release = asyncio.Event()

    async def hold() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            await release.wait()

    try:
        for _ in range(3):
            tasks = [asyncio.create_task(hold()) for _ in range(4)]
            await asyncio.sleep(0.2)
            release.set()
            await asyncio.gather(*tasks)
            release.clear()
    finally:
        await engine.dispose()

    assert len(opened) == 4
    assert len(closed) == 4  # by `dispose`, not one before
