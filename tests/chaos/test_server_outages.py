"""Broker and database faults (issue "Reliability and security", item 2): the real RabbitMQ
is stopped and started in the middle of workflows, three times (every service must report it
on /readyz with 503), and the real PostgreSQL is stopped and started while three workflows
run. Every service must reconnect, re-attach its consumer (/readyz 200), and every workflow
must complete with the invariants of `tests/chaos/invariants.py` intact. The recovery times
are printed (docs/reliability.md keeps the last figures); they are not asserted.

These tests take servers other tests use down for seconds: they run only under `-m chaos`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from shared.eventstore.schema import outbox
from shared.eventstore.store import SqlEventStore
from tests.chaos.invariants import bindings, dead_letters, violations
from tests.chaos.kills import CHAOS_SETTINGS
from tests.chaos.outages import (
    RECOVERY_TIMEOUT_S,
    all_ready_after,
    each_reported_not_ready,
    ended_after,
    postgres_stopped,
    rabbitmq_stopped,
    reached,
    republish,
    seconds,
    start_workflows,
)
from tests.e2e.cluster import Cluster
from tests.servers import SERVICES

pytestmark = pytest.mark.chaos

RABBITMQ_OUTAGE_POINTS = ("WorkflowStarted", "RebalancePlanned", "OrderSubmitted")
"""Where each of the three RabbitMQ outages begins: before strategy has answered, while
execution starts on the plan, and while orders are working."""
POSTGRES_WORKFLOWS_IN_FLIGHT = 3
"""Workflows just started when the database stops, so handlers are mid-transaction then."""
POSTGRES_DOWN_S = 2.0
"""About as long as `pg_ctlcluster ... restart` keeps it down on this machine (2.4 s measured)."""
DETACH_TIMEOUT_S = 30.0


async def test_rabbitmq_stopped_three_times_mid_workflow_every_service_reattaches_and_completes(
    tmp_path: Path, bars: Path
) -> None:
    bound = bindings()
    async with Cluster(tmp_path, bars, CHAOS_SETTINGS) as cluster:
        assert cluster.store is not None
        await cluster.start_all()
        for outage, point in enumerate(RABBITMQ_OUTAGE_POINTS):
            account_id = f"outage-{outage}"
            dead_before = await dead_letters(cluster.namespace)
            response = await cluster.trigger({"force": True, "account_id": account_id})
            assert response.status_code == 202, response.text
            workflow_id = response.json()["id"]
            await reached(cluster.store, workflow_id, point)
            started = time.monotonic()
            async with rabbitmq_stopped():
                await each_reported_not_ready(cluster, DETACH_TIMEOUT_S)
            ended = time.monotonic()
            ready_s = await all_ready_after(cluster, ended, RECOVERY_TIMEOUT_S)
            completed_s = await ended_after(cluster.store, workflow_id, ended)
            found = await violations(cluster, workflow_id, account_id, bound, dead_before)
            print(
                f"\nRabbitMQ outage {outage + 1} after {point}: down {ended - started:.1f} s; "
                f"all ready {ready_s:.1f} s after it; workflow ended {seconds(completed_s)}"
            )
            assert not found, f"outage {outage + 1} after {point}:\n  " + "\n  ".join(found)


async def recorded_messages(store: SqlEventStore, workflow_id: str) -> list[tuple[str, bytes, str]]:
    """The workflow's outbox rows as they went on the wire: (routing key, body, message id)."""
    event_ids = [r.event.event_id for r in await store.read_correlation(workflow_id)]
    async with store.engine.connect() as connection:
        rows = await connection.execute(
            sa.select(outbox.c.routing_key, outbox.c.body, outbox.c.event_id)
            .where(outbox.c.event_id.in_(event_ids))
            .order_by(outbox.c.id)
        )
        return [(row.routing_key, row.body, str(row.event_id)) for row in rows]


async def test_postgresql_restarted_mid_workflow_services_recover_and_lose_no_event(
    tmp_path: Path, bars: Path
) -> None:
    """Three workflows have just started when PostgreSQL stops; while it is down, the first
    one's events are delivered again (as after a relay crash between publish and mark-sent),
    so consumers certainly meet the outage. Once it is back, every service is ready, every
    workflow completes, and no event was given up on."""
    bound = bindings()
    async with Cluster(tmp_path, bars, CHAOS_SETTINGS) as cluster:
        assert cluster.store is not None
        await cluster.start_all()
        dead_before = await dead_letters(cluster.namespace)
        started_runs = await start_workflows(
            cluster, "outage-postgres", POSTGRES_WORKFLOWS_IN_FLIGHT
        )
        redelivered = await recorded_messages(cluster.store, next(iter(started_runs)))

        started = time.monotonic()
        async with postgres_stopped():
            await republish(cluster.namespace, redelivered)
            await asyncio.sleep(POSTGRES_DOWN_S)
        ended = time.monotonic()
        await cluster.store.engine.dispose()  # this test's pooled connections died with the server
        ready_s = await all_ready_after(cluster, ended, RECOVERY_TIMEOUT_S)
        found: list[str] = []
        ended_s: list[float | None] = []
        for workflow_id, account_id in started_runs.items():
            completed_s = await ended_after(cluster.store, workflow_id, ended)
            ended_s.append(completed_s)
            settle_s = 60 if completed_s is not None else 5
            found += [
                f"workflow {workflow_id}: {finding}"
                for finding in await violations(
                    cluster, workflow_id, account_id, bound, dead_before, settle_s
                )
            ]
        print(
            f"\nPostgreSQL down {ended - started:.1f} s ({len(redelivered)} messages delivered "
            f"again meanwhile); all ready {ready_s:.1f} s after it; workflows ended "
            f"{', '.join(seconds(value) for value in ended_s)}"
        )
        assert not found, "\n  ".join(found)
        for service in SERVICES:
            assert cluster.processes[service].poll() is None, f"{service} exited"
