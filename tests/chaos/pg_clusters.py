"""PostgreSQL clusters of a test's or a benchmark's own on this machine, beside the system
cluster on 5432, which they never touch: Debian's `pg_createcluster` on free ports, every tool
run as the `postgres` user (PostgreSQL refuses to run as root), every cluster dropped on the way
out, whatever happened.

- `standby_pair`: a primary with a synchronous streaming standby, for a failover test. The
  standby is a `pg_basebackup -R` of the primary, named in the primary's
  `synchronous_standby_names`, so a commit returns only once the standby has flushed it
  (docs/operations.md, PostgreSQL high availability).
- `own_server`: one server with settings of the caller's, for the load benchmark, whose
  replicas open more connections than the system server's `max_connections` allows."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from tests.chaos.outages import POSTGRES_CLUSTERS, postgres_version, require_tool, run_tool
from tests.e2e.cluster import free_port
from tests.servers import create_database, in_ci

OWNER = "postgres"
SYNC_TIMEOUT_S = 60.0
PROMOTE_TIMEOUT_S = 60.0
PRIMARY_SETTINGS = {
    "wal_level": "replica",
    "max_wal_senders": "4",
    "synchronous_commit": "on",
}
"""Written to the primary's own `conf.d`, not with ALTER SYSTEM: `pg_basebackup` copies
`postgresql.auto.conf`, and a promoted standby that named itself its synchronous standby would
wait on every commit for a standby it does not have. `synchronous_standby_names` is added with
the standby's name."""
EITHER_SETTINGS = {"listen_addresses": "127.0.0.1", "ssl": "off"}


def _as_owner(*command: str) -> tuple[str, ...]:
    """`command` run as the clusters' owner: through `runuser` from root, as is otherwise."""
    if os.geteuid() == 0:
        return (require_tool("runuser"), "-u", OWNER, "--", *command)
    if pwd.getpwuid(os.geteuid()).pw_name != OWNER:
        reason = f"creating PostgreSQL clusters needs root or the {OWNER} user"
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return command


def _write_settings(path: Path, settings: dict[str, str]) -> None:
    path.write_text("".join(f"{name} = '{value}'\n" for name, value in settings.items()))
    if os.geteuid() == 0:
        shutil.chown(path, OWNER, OWNER)


@dataclass(frozen=True)
class StandbyPair:
    version: str
    primary: str
    standby: str
    ports: dict[str, int]
    data_root: Path

    def url(self, database: str) -> str:
        """The services' URL: both hosts, primary first; they use the one that takes writes."""
        hosts = ",".join(f"127.0.0.1:{self.ports[name]}" for name in (self.primary, self.standby))
        return f"postgresql://{OWNER}@{hosts}/{database}?target_session_attrs=read-write"

    def admin_url(self, cluster: str) -> str:
        return f"postgresql://{OWNER}@127.0.0.1:{self.ports[cluster]}/postgres"

    def kill_primary(self) -> int:
        """SIGKILL the primary's postmaster and then every process it started, as when its
        machine dies: no shutdown checkpoint, no goodbye to clients or the standby. Returns the
        number of processes killed."""
        postmaster = int((self.data_root / self.primary / "postmaster.pid").read_text().split()[0])
        children = [
            int(entry.name)
            for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and _parent_of(entry) == postmaster
        ]
        for pid in (postmaster, *children):
            with suppress(ProcessLookupError):  # exited meanwhile
                os.kill(pid, signal.SIGKILL)
        return 1 + len(children)

    async def promote_standby(self) -> float:
        """`pg_ctlcluster … promote`; seconds until the standby takes writes."""
        started = time.monotonic()
        await run_tool(*_as_owner(_pg_ctlcluster(), self.version, self.standby, "promote"))
        deadline = started + PROMOTE_TIMEOUT_S
        while True:
            connection = await asyncpg.connect(self.admin_url(self.standby))
            try:
                if not await connection.fetchval("SELECT pg_is_in_recovery()"):
                    return time.monotonic() - started
            finally:
                await connection.close()
            if time.monotonic() >= deadline:
                raise AssertionError(f"{self.standby} still in recovery {PROMOTE_TIMEOUT_S} s on")
            await asyncio.sleep(0.05)


def _parent_of(process: Path) -> int | None:
    try:
        # The command name in parentheses may hold spaces; the parent pid follows its state.
        return int((process / "stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, IndexError, ValueError):
        return None  # exited meanwhile


def _pg_ctlcluster() -> str:
    return require_tool("pg_ctlcluster")


@dataclass(frozen=True)
class _Created:
    version: str
    ports: dict[str, int]
    data_root: Path


@asynccontextmanager
async def _created(settings: dict[str, dict[str, str]]) -> AsyncIterator[_Created]:
    """A cluster per name of `settings`, each with those settings, on a free port, its data under
    one temporary directory; not started. Every one is dropped on the way out."""
    create = require_tool("pg_createcluster")
    drop = require_tool("pg_dropcluster")
    version = postgres_version()
    created = _Created(
        version,
        {name: free_port() for name in settings},
        Path(tempfile.mkdtemp(prefix="alch-pg-")),
    )
    if os.geteuid() == 0:
        shutil.chown(created.data_root, OWNER, OWNER)
    try:
        for name, own in settings.items():
            await run_tool(
                *_as_owner(
                    create,
                    *(version, name, "-p", str(created.ports[name])),
                    *("-d", str(created.data_root / name), "--start-conf=manual"),
                    *("--", "--auth=trust"),
                )
            )
            config = POSTGRES_CLUSTERS / version / name / "conf.d" / "alchemiser.conf"
            _write_settings(config, {**EITHER_SETTINGS, **own})
        yield created
    finally:
        failed: list[str] = []
        for name in reversed(settings):
            if (POSTGRES_CLUSTERS / version / name).exists():
                try:
                    await run_tool(*_as_owner(drop, "--stop", version, name))
                except AssertionError as error:
                    failed.append(str(error))
        shutil.rmtree(created.data_root, ignore_errors=True)
        if failed:
            raise AssertionError("dropping the clusters failed: " + "; ".join(failed))


@asynccontextmanager
async def standby_pair(database: str) -> AsyncIterator[StandbyPair]:
    """A primary and its synchronous standby, streaming, with `database` created on the
    primary (and so on the standby)."""
    basebackup = require_tool("pg_basebackup")
    suffix = uuid.uuid4().hex[:8]
    primary, standby = f"alch_primary_{suffix}", f"alch_standby_{suffix}"
    settings = {primary: {**PRIMARY_SETTINGS, "synchronous_standby_names": standby}, standby: {}}
    async with _created(settings) as created:
        pair = StandbyPair(created.version, primary, standby, created.ports, created.data_root)
        await run_tool(*_as_owner(_pg_ctlcluster(), pair.version, primary, "start"))
        shutil.rmtree(pair.data_root / standby)
        await run_tool(
            *_as_owner(
                basebackup,
                *("-D", str(pair.data_root / standby), "-R", "-X", "stream", "-c", "fast"),
                "-d",
                f"host=127.0.0.1 port={pair.ports[primary]} user={OWNER} "
                f"application_name={standby}",
            )
        )
        await run_tool(*_as_owner(_pg_ctlcluster(), pair.version, standby, "start"))
        await _until_synchronous(pair)
        await create_database(pair.admin_url(primary), database)
        yield pair


@asynccontextmanager
async def own_server(settings: dict[str, str]) -> AsyncIterator[str]:
    """One server with `settings` added to Debian's defaults, started; yields the URL of its
    `postgres` database, the admin URL to create databases from."""
    name = f"alch_server_{uuid.uuid4().hex[:8]}"
    async with _created({name: settings}) as created:
        await run_tool(*_as_owner(_pg_ctlcluster(), created.version, name, "start"))
        yield f"postgresql://{OWNER}@127.0.0.1:{created.ports[name]}/postgres"


async def _until_synchronous(pair: StandbyPair) -> None:
    """Until the primary reports the standby streaming as its synchronous standby."""
    deadline = time.monotonic() + SYNC_TIMEOUT_S
    connection = await asyncpg.connect(pair.admin_url(pair.primary))
    try:
        while True:
            state = await connection.fetchval(
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = $1",
                pair.standby,
            )
            if state == "sync":
                return
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{pair.standby} is not the synchronous standby of {pair.primary} "
                    f"{SYNC_TIMEOUT_S} s after its start (sync_state {state!r})"
                )
            await asyncio.sleep(0.1)
    finally:
        await connection.close()
