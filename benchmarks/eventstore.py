"""Event store throughput on PostgreSQL and SQLite; prints figures, asserts nothing about speed.

    .venv/bin/python benchmarks/eventstore.py [--events 100000] [--backend postgres|sqlite|both]

Per backend: single-writer appends, one event (and its outbox row) per transaction, with
`SqlEventStore.append` as a service commits what it handled, and the same through an explicit
unit of work (for services that commit more with their events); the same loop with the raw
driver inserting the event row, one per transaction, into a table with the events table's
columns and indexes — the baseline, in a transaction block (BEGIN, INSERT, COMMIT), and for
reference as a bare INSERT (autocommit: one round trip, as `store.append`); appends in batches
of 100 events per transaction; and replay (`SqlEventStore.replay` pages decoded into event
objects). Every loop gets its events built before its stopwatch starts: the figures are the
store's, not the event constructors'.
On PostgreSQL the single and batched appends and the replay run twice, side by side: with the
adapter's asyncpg statement path, and with the same statements sent through SQLAlchemy instead
(`PostgresThroughSqlalchemy` below) — what the adapter would be without that path
(docs/decisions.md, "The asyncpg statement path stays, inside the PostgreSQL adapter only").
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
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg
from aiosqlite import connect as sqlite_connect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.events import OrderFilled, client_order_id
from shared.eventstore import SqlEventStore, upgrade
from shared.eventstore.engine import SQLITE_BUSY_TIMEOUT_MS
from shared.eventstore.postgres import PostgresEventStore

POSTGRES_ADMIN_URL = os.environ.get(
    "ALCHEMISER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BATCH = 100
PAGE = 1000
WORKFLOWS = 100
ROUNDS = 10
TARGETS = ("target ≥ 70 %; ", "  (target ≥ 10×)", "  (target ≥ 50,000 /s)")
"""The issue's targets, printed beside the single, batched and replay figures on PostgreSQL."""

BASELINE_DDL = """
CREATE TABLE {table} (
    position BIGINT PRIMARY KEY, stream_id VARCHAR(200) NOT NULL, stream_version INTEGER NOT NULL,
    event_id UUID NOT NULL UNIQUE, event_type VARCHAR(100) NOT NULL,
    schema_version INTEGER NOT NULL, correlation_id VARCHAR(200) NOT NULL,
    causation_id VARCHAR(200), account_id VARCHAR(100) NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL, source VARCHAR(50) NOT NULL, payload {json} NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL, UNIQUE (stream_id, stream_version));
CREATE INDEX ix_{table}_correlation_id ON {table} (correlation_id, position)
"""
BLOCK, BARE = "baseline_block", "baseline_bare"
"""The baseline's tables: inserts in a transaction block, and bare (autocommit) inserts."""


class SqlalchemyStatements:
    """Stands in for the adapter's asyncpg `StatementPool`: each statement, the same SQL, on an
    AUTOCOMMIT connection from SQLAlchemy's pool (one round trip, as on asyncpg)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[DriverThroughSqlalchemy]:
        async with self._engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            yield DriverThroughSqlalchemy(autocommit)

    async def close(self) -> None:
        return None


class DriverThroughSqlalchemy:
    """The calls the adapter makes on an asyncpg connection, through SQLAlchemy."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def fetch(self, query: str, *arguments: Any) -> Sequence[Any]:
        return (await self._connection.exec_driver_sql(query, arguments)).all()

    async def fetchrow(self, query: str, *arguments: Any) -> Any:
        return (await self._connection.exec_driver_sql(query, arguments)).first()

    def is_in_transaction(self) -> bool:
        return False


class PostgresThroughSqlalchemy(PostgresEventStore):
    """The PostgreSQL adapter without its asyncpg statement path: appends and inbox statements
    through SQLAlchemy connections, event reads through the common base's SQLAlchemy Core
    queries (as on SQLite). For this comparison only."""

    read_stream = SqlEventStore.read_stream
    read_all = SqlEventStore.read_all
    read_correlation = SqlEventStore.read_correlation
    replay = SqlEventStore.replay
    seen_among = SqlEventStore.seen_among

    @property
    def statements(self) -> Any:
        return SqlalchemyStatements(self.engine)


def order_filled(index: int) -> OrderFilled:
    workflow_id = f"wf-{index % WORKFLOWS}"
    return OrderFilled(
        correlation_id=workflow_id,
        causation_id=str(uuid.uuid4()),
        account_id="default",
        occurred_at=datetime.now(UTC),
        source="execution",
        client_order_id=client_order_id(workflow_id, "SPY", "BUY", 1),
        symbol="SPY",
        side="BUY",
        phase="BUY",
        attempt=1,
        broker_order_id=f"b-{index}",
        filled_qty=Decimal("7.982"),
        avg_fill_price=Decimal("501.13"),
        complete=True,
    )


def baseline_row(index: int, event: OrderFilled) -> tuple[object, ...]:
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

    async def run(self, count: int, body: Awaitable[None]) -> None:
        started, cpu_started = time.perf_counter(), time.process_time()
        await body
        self.elapsed_s += time.perf_counter() - started
        self.cpu_s += time.process_time() - cpu_started
        self.count += count

    @property
    def rate(self) -> float:
        return self.count / self.elapsed_s

    def print(self) -> None:
        print(
            f"  {self.label:<58} {self.count:>8} in {self.elapsed_s:8.2f} s"
            f"  {self.rate:>10,.0f} /s  {self.cpu_s / self.count * 1e6:7.0f} µs client CPU each",
            flush=True,
        )


Baseline = Callable[[str, list[tuple[object, ...]]], Awaitable[None]]
"""Inserts the rows into the table, one transaction each (a block for BLOCK, autocommit for
BARE), with the raw driver."""


async def bench(url: str, events: int, baseline: Baseline, *, targets: bool) -> None:
    """Baseline and single appends alternate in rounds so that a load change on the machine
    hits both alike; then batched appends and replay. `targets`: print the issue's targets
    beside the ratios (they are set for PostgreSQL). On PostgreSQL the store's measurements
    run for the adapter with and without its asyncpg statement path, interleaved."""
    await upgrade(url)
    stores = {"": SqlEventStore(url)}
    if isinstance(stores[""], PostgresEventStore):
        stores[" [SQLAlchemy]"] = PostgresThroughSqlalchemy(url)
    baseline_watch = Stopwatch("baseline: raw driver, BEGIN + INSERT + COMMIT")
    bare_watch = Stopwatch("raw driver, bare INSERT (autocommit)")
    unit_watch = Stopwatch("unit of work, 1 event (+ outbox row)")
    single_watch = {tag: Stopwatch(f"store.append, 1 event (+ outbox row){tag}") for tag in stores}
    batch_watch = {
        tag: Stopwatch(f"store.append, {BATCH} events/transaction{tag}") for tag in stores
    }
    replay_watch = {tag: Stopwatch(f"replay: pages of {PAGE}, decoded{tag}") for tag in stores}
    try:
        round_size = max(1, events // ROUNDS)
        for start in range(0, events, round_size):
            indexes = range(start, min(start + round_size, events))
            rows = [baseline_row(index, order_filled(index)) for index in indexes]
            await baseline_watch.run(len(rows), baseline(BLOCK, rows))
            await bare_watch.run(len(rows), baseline(BARE, rows))
            for tag, store in stores.items():
                await single_watch[tag].run(len(indexes), single(store, indexes, tag))
            await unit_watch.run(len(indexes), unit(stores[""], indexes))
        for start in range(0, events, round_size):
            indexes = range(start, min(start + round_size, events))
            for tag, store in stores.items():
                await batch_watch[tag].run(len(indexes), batched(store, indexes, tag))
        stored = (2 * len(stores) + 1) * events
        for _ in range(2):
            for tag, store in stores.items():
                await replay_watch[tag].run(stored, replay(store, stored))
    finally:
        for store in stores.values():
            await store.close()
    for watch in (
        baseline_watch,
        bare_watch,
        unit_watch,
        *single_watch.values(),
        *batch_watch.values(),
        *replay_watch.values(),
    ):
        watch.print()
    target = TARGETS if targets else ("", "", "")
    for tag in stores:
        single_rate, batch_rate = single_watch[tag].rate, batch_watch[tag].rate
        print(f"  {tag.strip() or 'the store'}:")
        print(
            f"    single append / baseline: {single_rate / baseline_watch.rate:6.1%}"
            f"  ({target[0]}unit of work {unit_watch.rate / baseline_watch.rate:.1%};"
            f" single / bare INSERT {single_rate / bare_watch.rate:.1%})"
        )
        print(f"    batched / single:         {batch_rate / single_rate:6.1f}×{target[1]}")
        print(f"    replay:                   {replay_watch[tag].rate:8,.0f} /s{target[2]}")


async def replay(store: SqlEventStore, stored: int) -> None:
    total = 0
    async for page in store.replay(page_size=PAGE):
        total += len(page)
    assert total == stored, (total, stored)


def single(store: SqlEventStore, indexes: range, tag: str) -> Awaitable[None]:
    events = [(f"single{tag}-{index % WORKFLOWS}", order_filled(index)) for index in indexes]

    async def run() -> None:
        for stream_id, event in events:
            await store.append(stream_id, None, [event])

    return run()


def unit(store: SqlEventStore, indexes: range) -> Awaitable[None]:
    events = [(f"unit-{index % WORKFLOWS}", order_filled(index)) for index in indexes]

    async def run() -> None:
        for stream_id, event in events:
            async with store.unit_of_work() as uow:
                await uow.append(stream_id, None, [event])

    return run()


def batched(store: SqlEventStore, indexes: range, tag: str) -> Awaitable[None]:
    batches = [
        (f"batch{tag}-{start // BATCH}", [order_filled(index) for index in chunk])
        for start in indexes[::BATCH]
        if (chunk := range(start, min(start + BATCH, indexes.stop)))
    ]

    async def run() -> None:
        for stream_id, batch in batches:
            await store.append(stream_id, 0, batch)

    return run()


async def asyncpg_baseline(dsn: str) -> tuple[Baseline, Callable[[], Awaitable[None]]]:
    connection = await asyncpg.connect(dsn)
    for table in (BLOCK, BARE):
        await connection.execute(BASELINE_DDL.format(table=table, json="JSONB"))
    placeholders = ", ".join(f"${n}" for n in range(1, 14))

    async def run(table: str, rows: list[tuple[object, ...]]) -> None:
        insert = f"INSERT INTO {table} VALUES ({placeholders})"
        for row in rows:
            if table == BLOCK:
                async with connection.transaction():
                    await connection.execute(insert, *row)
            else:
                await connection.execute(insert, *row)

    return run, connection.close


async def aiosqlite_baseline(path: Path) -> tuple[Baseline, Callable[[], Awaitable[None]]]:
    connection = await sqlite_connect(path, isolation_level=None)
    for pragma in (
        "PRAGMA journal_mode=WAL",
        f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
        "PRAGMA synchronous=FULL",
    ):
        await connection.execute(pragma)
    for table in (BLOCK, BARE):
        ddl = BASELINE_DDL.format(table=table, json="TEXT").replace("UUID", "CHAR(32)")
        await connection.executescript(ddl.replace("TIMESTAMPTZ", "TEXT"))

    async def run(table: str, rows: list[tuple[object, ...]]) -> None:
        insert = f"INSERT INTO {table} VALUES ({', '.join('?' * 13)})"
        for row in rows:
            values = tuple(
                value.hex
                if isinstance(value, uuid.UUID)
                else value.isoformat()
                if isinstance(value, datetime)
                else value
                for value in row
            )
            if table == BLOCK:
                await connection.execute("BEGIN IMMEDIATE")
                await connection.execute(insert, values)
                await connection.execute("COMMIT")
            else:
                await connection.execute(insert, values)

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
            url = dsn.replace("postgresql://", "postgresql+asyncpg://")
            await bench(url, events, baseline, targets=True)
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
            url = f"sqlite+aiosqlite:///{Path(directory) / 'events.db'}"
            await bench(url, events, baseline, targets=False)
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
