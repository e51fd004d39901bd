"""Async engines with the per-backend settings the store relies on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Connection, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.dml import Insert

from shared.settings import normalise_database_url

SQLITE_BUSY_TIMEOUT_MS = 30_000
WRITE_OPTION = "alchemiser_write"
"""Execution option marking a connection that will write: on SQLite it begins IMMEDIATE."""


def create_store_engine(database_url: str, *, pool_size: int) -> AsyncEngine:
    """An engine that opens up to twice `pool_size` connections at a peak and keeps every one it
    opened: with an overflow the pool closed a connection returned beyond `pool_size`, and a
    process with hundreds of tasks peaks every few milliseconds, so at 10,000 accounts execution
    opened about one connection per workflow — a server process forked and an asyncpg
    handshake each, ≈ 10 ms of CPU (docs/performance.md, Statements per workflow)."""
    url = make_url(normalise_database_url(database_url))
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(database_url, pool_size)
    # No pool_pre_ping: it costs a round trip per transaction; a dead pooled connection fails
    # the unit of work, which the caller retries like any other transient database error.
    return create_async_engine(url, pool_size=2 * pool_size, max_overflow=0)


@asynccontextmanager
async def single_read(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for one read statement. On PostgreSQL it runs outside any transaction: one
    round trip instead of three (BEGIN, the read, ROLLBACK), and each round trip costs a system
    call on both ends (docs/performance.md, Statements per workflow). On SQLite it stays in a
    deferred transaction: autocommit there would hand the driver its implicit BEGIN back when
    the pool resets the connection, and a local read costs no round trip."""
    async with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            yield await connection.execution_options(**{WRITE_OPTION: False})
        else:
            yield await connection.execution_options(isolation_level="AUTOCOMMIT")


def insert_unless_present(connection: AsyncConnection, table: Table, *key: str) -> Insert:
    """An INSERT into `table` that writes nothing where a row with the same `key` columns exists
    (its result's rowcount is 0 then): one statement where a savepoint around a plain INSERT
    took three. A row another transaction inserted and has not committed yet is waited for."""
    dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    return dialect_insert(table).on_conflict_do_nothing(index_elements=list(key))


def _sqlite_engine(database_url: str, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(
        normalise_database_url(database_url),
        pool_size=pool_size,
        max_overflow=0,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine.sync_engine, "connect")
    def configure(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own implicit BEGIN is disabled so that `begin` below decides the mode.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # Switching to WAL needs a lock the busy timeout does not wait for, so a connection
        # opened while another one writes failed with "database is locked": switch only once.
        cursor.execute("PRAGMA journal_mode")
        if cursor.fetchone()[0] != "wal":
            cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives power loss in WAL mode too (NORMAL may lose the last ones).
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def begin(connection: Connection) -> None:
        # A writer takes the write lock up front, so concurrent writers queue on the busy
        # timeout instead of failing with SQLITE_BUSY when a read lock cannot be upgraded.
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
