"""Event store throughput on PostgreSQL and SQLite; prints figures, asserts nothing about speed.

    .venv/bin/python benchmarks/eventstore.py [--events 100000] [--backend postgres|sqlite|both]

Per backend: single-writer appends, one event (and its outbox row) per transaction, with
`SqlEventStore.append` as a service commits what it handled, and the same through an explicit
unit of work (for services that commit more with their events); the same loop with the raw
driver inserting one comparable row per transaction (the baseline); appends in batches of 100
events per transaction; and replay (`SqlEventStore.replay` pages decoded into event objects).
PostgreSQL runs on a fresh database created and dropped on ALCHEMISER_TEST_POSTGRES_URL's server
(default 127.0.0.1:5432); SQLite on a temporary file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from importlib.metadata import version
from pathlib import Path

import asyncpg
from aiosqlite import connect as sqlite_connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.events import OrderFilled, client_order_id
from shared.eventstore import SqlEventStore, upgrade
from shared.eventstore.engine import SQLITE_BUSY_TIMEOUT_MS

POSTGRES_ADMIN_URL = os.environ.get(
    "ALCHEMISER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BATCH = 100
PAGE = 1000
WORKFLOWS = 100
ROUNDS = 10

BASELINE_DDL = """
CREATE TABLE baseline_events (
    position BIGINT PRIMARY KEY, stream_id VARCHAR(200) NOT NULL, stream_version INTEGER NOT NULL,
    event_id UUID NOT NULL UNIQUE, event_type VARCHAR(100) NOT NULL,
    schema_version INTEGER NOT NULL, correlation_id VARCHAR(200) NOT NULL,
    causation_id VARCHAR(200), account_id VARCHAR(100) NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL, source VARCHAR(50) NOT NULL, payload {json} NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL, UNIQUE (stream_id, stream_version))
"""
BASELINE_INSERT = "INSERT INTO baseline_events VALUES ({})".format(
    ", ".join(f"${n}" for n in range(1, 14))
)


def order_filled(index: int) -> OrderFilled:
    workflow_id = f"wf-{index % WORKFLOWS}"
    return OrderFilled(
        correlation_id=workflow_id,
        causation_id=str(uuid.uuid4()),
        account_id="default",
        occurred_at=datetime.now(UTC),
        source="execution",
        client_order_id=client_order_id(workflow_id, "SPY", "BUY", "BUY", 1),
        symbol="SPY",
        side="BUY",
        phase="BUY",
        attempt=1,
        broker_order_id=f"b-{index}",
        filled_qty=Decimal("7.982"),
        avg_fill_price=Decimal("501.13"),
        complete=True,
    )


def baseline_row(index: int) -> tuple[object, ...]:
    event = order_filled(index)
    return (
        index + 1,
        f"stream-{index % WORKFLOWS}",
        index // WORKFLOWS + 1,
        event.event_id,
        event.event_type,
        event.schema_version,
        event.correlation_id,
        event.causation_id,
        event.account_id,
        event.occurred_at,
        event.source,
        json.dumps(event.payload()),
        datetime.now(UTC),
    )


class Stopwatch:
    """Accumulates the time of one measurement over several interleaved rounds."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.count = 0
        self.elapsed_s = 0.0
        self.cpu_s = 0.0

    async def run(self, count: int, body: Callable[[], Awaitable[None]]) -> None:
        started, cpu_started = time.perf_counter(), time.process_time()
        await body()
        self.elapsed_s += time.perf_counter() - started
        self.cpu_s += time.process_time() - cpu_started
        self.count += count

    @property
    def rate(self) -> float:
        return self.count / self.elapsed_s

    def print(self) -> None:
        print(
            f"  {self.label:<44} {self.count:>8} in {self.elapsed_s:8.2f} s"
            f"  {self.rate:>10,.0f} /s  {self.cpu_s / self.count * 1e6:7.0f} µs client CPU each",
            flush=True,
        )


Baseline = Callable[[int, int], Awaitable[None]]
"""Inserts rows [start, stop) one per transaction with the raw driver."""


async def bench(url: str, events: int, baseline: Baseline) -> None:
    """Baseline and single appends alternate in rounds so that a load change on the machine
    hits both alike; then batched appends and replay."""
    await upgrade(url)
    store = SqlEventStore(url)
    baseline_watch = Stopwatch("baseline: raw driver, 1 row/transaction")
    single_watch = Stopwatch("store.append, 1 event (+ outbox row)")
    unit_watch = Stopwatch("unit of work, 1 event (+ outbox row)")
    batch_watch = Stopwatch(f"store.append, {BATCH} events/transaction")
    replay_watch = Stopwatch(f"replay: pages of {PAGE}, decoded")
    try:
        round_size = max(1, events // ROUNDS)
        for start in range(0, events, round_size):
            stop = min(start + round_size, events)
            await baseline_watch.run(stop - start, partial(baseline, start, stop))

            async def single(start: int = start, stop: int = stop) -> None:
                for index in range(start, stop):
                    await store.append(f"single-{index % WORKFLOWS}", None, [order_filled(index)])

            async def unit(start: int = start, stop: int = stop) -> None:
                for index in range(start, stop):
                    async with store.unit_of_work() as uow:
                        await uow.append(f"unit-{index % WORKFLOWS}", None, [order_filled(index)])

            await single_watch.run(stop - start, single)
            await unit_watch.run(stop - start, unit)

        async def batched() -> None:
            for start in range(0, events, BATCH):
                batch = [order_filled(index) for index in range(start, min(start + BATCH, events))]
                await store.append(f"batch-{start // BATCH}", 0, batch)

        async def replay() -> None:
            total = 0
            async for page in store.replay(page_size=PAGE):
                total += len(page)
            assert total == 3 * events, total

        await batch_watch.run(events, batched)
        await replay_watch.run(3 * events, replay)
    finally:
        await store.close()
    for watch in (baseline_watch, single_watch, unit_watch, batch_watch, replay_watch):
        watch.print()
    print(
        f"  single append / baseline: {single_watch.rate / baseline_watch.rate:6.1%}"
        f"  (target ≥ 70 %; unit of work {unit_watch.rate / baseline_watch.rate:.1%})"
    )
    print(
        f"  batched / single:         {batch_watch.rate / single_watch.rate:6.1f}×  (target ≥ 10×)"
    )
    print(f"  replay:                   {replay_watch.rate:8,.0f} /s  (target ≥ 50,000 /s)")


async def asyncpg_baseline(dsn: str) -> tuple[Baseline, Callable[[], Awaitable[None]]]:
    connection = await asyncpg.connect(dsn)
    await connection.execute(BASELINE_DDL.format(json="JSONB"))

    async def run(start: int, stop: int) -> None:
        for index in range(start, stop):
            row = baseline_row(index)
            async with connection.transaction():
                await connection.execute(BASELINE_INSERT, *row)

    return run, connection.close


async def aiosqlite_baseline(path: Path) -> tuple[Baseline, Callable[[], Awaitable[None]]]:
    connection = await sqlite_connect(path, isolation_level=None)
    for pragma in (
        "PRAGMA journal_mode=WAL",
        f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
        "PRAGMA synchronous=FULL",
    ):
        await connection.execute(pragma)
    ddl = BASELINE_DDL.format(json="TEXT").replace("UUID", "CHAR(32)")
    await connection.execute(ddl.replace("TIMESTAMPTZ", "TEXT"))
    insert = "INSERT INTO baseline_events VALUES ({})".format(", ".join("?" * 13))

    async def run(start: int, stop: int) -> None:
        for index in range(start, stop):
            values = tuple(
                value.hex
                if isinstance(value, uuid.UUID)
                else value.isoformat()
                if isinstance(value, datetime)
                else value
                for value in baseline_row(index)
            )
            await connection.execute("BEGIN IMMEDIATE")
            await connection.execute(insert, values)
            await connection.execute("COMMIT")

    return run, connection.close


async def postgres(events: int) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    name = f"alc_bench_{uuid.uuid4().hex[:12]}"
    try:
        server = await admin.fetchval("SHOW server_version")
        settings = {
            key: await admin.fetchval(f"SHOW {key}")
            for key in ("fsync", "synchronous_commit", "shared_buffers")
        }
        print(f"\nPostgreSQL {server} ({', '.join(f'{k}={v}' for k, v in settings.items())})")
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
        dsn = f"{base}/{name}"
        baseline, close = await asyncpg_baseline(dsn)
        try:
            await bench(dsn.replace("postgresql://", "postgresql+asyncpg://"), events, baseline)
        finally:
            await close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def sqlite(events: int) -> None:
    print(f"\nSQLite {sqlite3.sqlite_version} (WAL, synchronous=FULL, temporary file)")
    with tempfile.TemporaryDirectory() as directory:
        baseline, close = await aiosqlite_baseline(Path(directory) / "baseline.db")
        try:
            await bench(f"sqlite+aiosqlite:///{Path(directory) / 'events.db'}", events, baseline)
        finally:
            await close()


def machine() -> None:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    packages = ", ".join(
        f"{name} {version(name)}" for name in ("sqlalchemy", "asyncpg", "aiosqlite", "pydantic")
    )
    print(f"Machine: {cpu}, {os.cpu_count()} cores, {platform.platform()}")
    print(f"Python {platform.python_version()}; {packages}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--backend", choices=("postgres", "sqlite", "both"), default="both")
    arguments = parser.parse_args()
    machine()
    print(f"Events per measurement: {arguments.events:,}")
    if arguments.backend in ("postgres", "both"):
        asyncio.run(postgres(arguments.events))
    if arguments.backend in ("sqlite", "both"):
        asyncio.run(sqlite(arguments.events))


if __name__ == "__main__":
    main()
