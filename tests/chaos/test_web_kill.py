"""The web service SIGKILLed while its read models catch up (docs/web.md, Read models): two real
workflows (`alchemiser run`, embedded, on a fresh PostgreSQL database) and 1,500 recorded ones
written in bulk after them, so that catching up from zero takes a while; `alchemiser serve web`
is started, killed with SIGKILL once its checkpoint is a third of the way (short of the end),
started again and left to catch up. The documents it maintained equal the ones
`alchemiser projections rebuild` folds from the first event, and its JSON twin serves them.

Bounded: about a minute under load (the two runs most of it)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.web.read_models import CHECKPOINT_KEY, SERVICE, read_models
from shared.eventstore.store import SqlEventStore
from tests.e2e.cluster import free_port
from tests.integration.web.history import write_fixture

pytestmark = pytest.mark.chaos

REPO = Path(__file__).resolve().parents[2]
TOKEN = "web-kill-test-token-0123456789abcdef"
RECORDED = 1500


def environment(database_url: str, data_dir: Path) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("ALCHEMISER_")}
    return {
        **inherited,
        "PYTHONPATH": str(REPO),
        "ALCHEMISER_DATABASE_URL": database_url,
        "ALCHEMISER_DATA_DIR": str(data_dir),
        "ALCHEMISER_API_TOKEN": TOKEN,
    }


def alchemiser(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"alchemiser {' '.join(args)}: {done.stderr[-3000:]}"


def serve_web(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", "web", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


async def checkpoint(store: SqlEventStore) -> int:
    stored = await store.load_state(SERVICE, CHECKPOINT_KEY)
    return 0 if stored is None else int(stored.document["last_position"])


async def documents(store: SqlEventStore) -> list[tuple[Any, ...]]:
    async with store.engine.connect() as connection:
        rows = await connection.execute(
            select(read_models).order_by(read_models.c.projection, read_models.c.key)
        )
        return [tuple(row) for row in rows]


async def test_a_web_service_killed_mid_catch_up_ends_with_the_rebuilt_read_models(
    tmp_path: Path, postgres_url: str, bars: Path
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(bars, data_dir)
    env = environment(postgres_url.replace("+asyncpg", ""), data_dir)
    for account in ("web-kill-a", "web-kill-b"):
        alchemiser(env, "run", "--account", account)
    store = SqlEventStore(postgres_url)
    port, log = free_port(), tmp_path / "web.log"
    try:
        last = await write_fixture(store, RECORDED, seed=7)

        web = serve_web(env, port, log)
        deadline = time.monotonic() + 60
        while (reached := await checkpoint(store)) < last // 3:
            assert web.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the web service never folded a page"
            await asyncio.sleep(0.02)
        web.send_signal(signal.SIGKILL)
        web.wait(timeout=30)
        killed_at = await checkpoint(store)
        print(f"\nSIGKILLed at position {killed_at} of {last} (first seen {reached})")
        assert 0 < killed_at < last, "the kill did not land mid-catch-up"

        web = serve_web(env, port, log)
        try:
            deadline = time.monotonic() + 120
            while await checkpoint(store) < last:
                assert web.poll() is None, log.read_text(errors="replace")[-3000:]
                assert time.monotonic() < deadline, "the restarted web service did not catch up"
                await asyncio.sleep(0.2)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                listed = await client.get(
                    "/api/workflows?account=web-kill-a",
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
            assert listed.status_code == 200 and listed.json()[0]["status"] == "completed"
        finally:
            web.send_signal(signal.SIGTERM)
            web.wait(timeout=30)

        maintained = await documents(store)
        alchemiser(env, "projections", "rebuild")
        rebuilt = await documents(store)
        assert await checkpoint(store) == last
        assert maintained == rebuilt
        async with store.engine.connect() as connection:
            workflows = await connection.scalar(
                select(func.count()).where(read_models.c.projection == "workflow")
            )
        assert workflows == RECORDED + 2
    finally:
        await store.close()
