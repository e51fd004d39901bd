"""What to read when a fault run broke an invariant: the database sessions of the cluster that
are not idle (a transaction left open or waiting on a lock shows here) and the depth of the
namespace's queues (messages ready, delivered but unacknowledged, consumers)."""

from __future__ import annotations

import asyncio
import shutil

import sqlalchemy as sa

from tests.e2e.cluster import Cluster

SESSIONS = sa.text(
    "SELECT pid, application_name, state, wait_event_type, wait_event, "
    "now() - xact_start AS in_transaction, left(query, 160) AS query "
    "FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'"
)


async def busy_sessions(cluster: Cluster) -> list[str]:
    assert cluster.store is not None
    async with cluster.store.engine.connect() as connection:
        rows = (await connection.execute(SESSIONS)).all()
    return [
        f"session {row.pid} {row.state} wait={row.wait_event_type}/{row.wait_event} "
        f"in transaction {row.in_transaction}: {row.query}"
        for row in rows
    ]


async def queue_depths(namespace: str) -> list[str]:
    """`rabbitmqctl list_queues` for the namespace's queues (empty without rabbitmqctl)."""
    rabbitmqctl = shutil.which("rabbitmqctl")
    if rabbitmqctl is None:
        return []
    process = await asyncio.create_subprocess_exec(
        rabbitmqctl,
        "list_queues",
        "-q",
        "--no-table-headers",
        "name",
        "messages_ready",
        "messages_unacknowledged",
        "consumers",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return [
        "queue {} ready={} unacked={} consumers={}".format(*line.split())
        for line in output.decode().splitlines()
        if line.startswith(f"{namespace}.") and len(line.split()) == 4
    ]


async def diagnose(cluster: Cluster) -> list[str]:
    return [*await busy_sessions(cluster), *await queue_depths(cluster.namespace)]
