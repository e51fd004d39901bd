"""Taking the real RabbitMQ and PostgreSQL on this machine down for a few seconds, and always
bringing them back: every outage restores its server in a `finally` and waits until it answers,
so a failing test never leaves the server down for the rest of the suite (or for anyone else
testing on the machine)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aio_pika
import asyncpg
import httpx
import pytest

from shared.eventstore.store import SqlEventStore
from tests.chaos.invariants import terminal_events
from tests.e2e.cluster import Cluster
from tests.servers import POSTGRES_ADMIN_URL, RABBITMQ_URL, SERVICES, in_ci

COMMAND_TIMEOUT_S = 120.0
ANSWER_TIMEOUT_S = 120.0
RECOVERY_TIMEOUT_S = 120.0
REACH_TIMEOUT_S = 60.0
POSTGRES_CLUSTERS = Path("/etc/postgresql")


def require_tool(name: str) -> str:
    """The server's control tool on this machine; skipped (CI: failed) when it is absent."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not on PATH: this test controls the local server with it"
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return path


async def run_tool(*command: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT_S)
    if process.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {process.returncode}: {output.decode()}")


async def _rabbitmq_answers() -> bool:
    try:
        connection = await aio_pika.connect(RABBITMQ_URL, timeout=2)
    except Exception:
        return False
    await connection.close()
    return True


async def _postgres_answers() -> bool:
    try:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=2)
    except Exception:
        return False
    await connection.close()
    return True


async def _until_answers(name: str, probe: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while not await probe():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{name} does not answer {ANSWER_TIMEOUT_S} s after its restart")
        await asyncio.sleep(0.2)


@asynccontextmanager
async def rabbitmq_stopped() -> AsyncIterator[None]:
    """RabbitMQ's application stopped (the Erlang node stays up) for the body of the block."""
    rabbitmqctl = require_tool("rabbitmqctl")
    try:
        await run_tool(rabbitmqctl, "stop_app")
        yield
    finally:
        await run_tool(rabbitmqctl, "start_app")
        await run_tool(rabbitmqctl, "await_startup")
        await _until_answers("RabbitMQ", _rabbitmq_answers)


def postgres_version() -> str:
    """The one PostgreSQL version installed (Debian's layout: /etc/postgresql/<version>)."""
    versions = sorted(path.name for path in POSTGRES_CLUSTERS.iterdir())
    if len(versions) != 1:
        pytest.skip(f"expected one PostgreSQL version under {POSTGRES_CLUSTERS}, found {versions}")
    return versions[0]


@asynccontextmanager
async def postgres_stopped() -> AsyncIterator[None]:
    """PostgreSQL stopped (`pg_ctlcluster <version> main stop`, fast shutdown) for the body of
    the block; started again on the way out, whatever happened, and answering on return."""
    pg_ctlcluster = require_tool("pg_ctlcluster")
    version = postgres_version()
    try:
        await run_tool(pg_ctlcluster, "--skip-systemctl-redirect", version, "main", "stop")
        yield
    finally:
        if not await _postgres_answers():
            await run_tool(pg_ctlcluster, "--skip-systemctl-redirect", version, "main", "start")
        await _until_answers("PostgreSQL", _postgres_answers)


async def republish(namespace: str, messages: Sequence[tuple[str, bytes, str]]) -> None:
    """Publish (routing key, body, message id) again on a namespace's exchange, as the outbox
    relay does when it crashed between publishing a row and marking it sent."""
    connection = await aio_pika.connect(RABBITMQ_URL)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(f"{namespace}.events")
        for routing_key, body, message_id in messages:
            await exchange.publish(
                aio_pika.Message(
                    body, message_id=message_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                ),
                routing_key,
            )
    finally:
        await connection.close()


async def readiness(cluster: Cluster) -> dict[str, int]:
    """Each service's /readyz status code; 0 when it does not answer at all."""

    async def one(client: httpx.AsyncClient, service: str) -> int:
        try:
            return (await client.get(f"{cluster.url(service)}/readyz")).status_code
        except httpx.HTTPError:
            return 0

    async with httpx.AsyncClient(timeout=5) as client:
        codes = await asyncio.gather(*(one(client, service) for service in SERVICES))
    return dict(zip(SERVICES, codes, strict=True))


async def all_ready_after(cluster: Cluster, since: float, timeout_s: float = 120) -> float:
    """Seconds from `since` (monotonic) until every service's /readyz answers 200."""
    deadline = time.monotonic() + timeout_s
    while True:
        codes = await readiness(cluster)
        if all(code == 200 for code in codes.values()):
            return time.monotonic() - since
        if time.monotonic() >= deadline:
            raise AssertionError(f"services not ready {timeout_s} s after the outage: {codes}")
        await asyncio.sleep(0.1)


async def each_reported_not_ready(cluster: Cluster, timeout_s: float) -> None:
    """Poll every /readyz until each service has answered 503 at least once."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while True:
        codes = await readiness(cluster)
        seen.update(service for service, code in codes.items() if code == 503)
        if seen == set(SERVICES):
            return
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"/readyz did not answer 503 within {timeout_s} s for "
                f"{sorted(set(SERVICES) - seen)} (last codes {codes})"
            )
        await asyncio.sleep(0.1)


async def reached(store: SqlEventStore, workflow_id: str, event_type: str) -> None:
    """Until the workflow has recorded `event_type` (or already completed)."""
    deadline = time.monotonic() + REACH_TIMEOUT_S
    while True:
        types = {r.event.event_type for r in await store.read_correlation(workflow_id)}
        if event_type in types or "WorkflowCompleted" in types:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"{workflow_id} did not reach {event_type} in {REACH_TIMEOUT_S} s")
        await asyncio.sleep(0.02)


async def ended_after(store: SqlEventStore, workflow_id: str, since: float) -> float | None:
    """Seconds from `since` (monotonic) until the workflow's terminal event is in the store;
    None when it has not ended within RECOVERY_TIMEOUT_S (the invariants then say why)."""
    while not await terminal_events(store, workflow_id):
        if time.monotonic() - since >= RECOVERY_TIMEOUT_S:
            return None
        await asyncio.sleep(0.1)
    return time.monotonic() - since


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s after it"


async def start_workflows(cluster: Cluster, prefix: str, count: int) -> dict[str, str]:
    """`count` forced workflows at once, each on a fresh account `{prefix}-{n}`: workflow id to
    account, in start order."""
    started: dict[str, str] = {}
    for number in range(count):
        account_id = f"{prefix}-{number}"
        response = await cluster.trigger({"force": True, "account_id": account_id})
        assert response.status_code == 202, response.text
        started[response.json()["id"]] = account_id
    return started
