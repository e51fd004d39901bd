"""Broker and database faults (issue "Reliability and security", item 2): the real RabbitMQ
is stopped and started in the middle of workflows, three times, and the real PostgreSQL is
restarted in the middle of one. Every service must notice (/readyz 503), reconnect, re-attach
its consumer (/readyz 200), and every workflow must complete with the invariants of
`tests/chaos/invariants.py` intact. The recovery times are printed (docs/reliability.md keeps
the last figures); they are not asserted.

These tests take servers other tests use down for seconds: they run only under `-m chaos`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from shared.eventstore.store import SqlEventStore
from tests.chaos.invariants import bindings, dead_letters, terminal_events, violations
from tests.chaos.kills import CHAOS_SETTINGS
from tests.chaos.outages import (
    all_ready_after,
    each_reported_not_ready,
    rabbitmq_stopped,
    restart_postgres,
)
from tests.e2e.cluster import Cluster
from tests.eventually import eventually
from tests.servers import SERVICES

pytestmark = pytest.mark.chaos

RABBITMQ_OUTAGE_POINTS = ("WorkflowStarted", "RebalancePlanned", "OrderSubmitted")
"""Where each of the three RabbitMQ outages begins: before strategy has answered, while
execution starts on the plan, and while orders are working."""
DETACH_TIMEOUT_S = 30.0
RECOVERY_TIMEOUT_S = 120.0


async def reached(store: SqlEventStore, workflow_id: str, event_type: str) -> None:
    async def recorded() -> bool:
        types = {r.event.event_type for r in await store.read_correlation(workflow_id)}
        return event_type in types or "WorkflowCompleted" in types

    await eventually(recorded, timeout_s=60, message=f"{event_type} of {workflow_id}")


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


async def test_postgresql_restarted_mid_workflow_services_recover_and_lose_no_event(
    tmp_path: Path, bars: Path
) -> None:
    bound = bindings()
    async with Cluster(tmp_path, bars, CHAOS_SETTINGS) as cluster:
        assert cluster.store is not None
        await cluster.start_all()
        account_id = "outage-postgres"
        dead_before = await dead_letters(cluster.namespace)
        response = await cluster.trigger({"force": True, "account_id": account_id})
        assert response.status_code == 202, response.text
        workflow_id = response.json()["id"]
        await reached(cluster.store, workflow_id, "RebalancePlanned")

        started = time.monotonic()
        await restart_postgres()
        ended = time.monotonic()
        await cluster.store.engine.dispose()  # this test's pooled connections died with the server
        ready_s = await all_ready_after(cluster, ended, RECOVERY_TIMEOUT_S)
        completed_s = await ended_after(cluster.store, workflow_id, ended)
        settle_s = 60 if completed_s is not None else 5
        found = await violations(cluster, workflow_id, account_id, bound, dead_before, settle_s)
        print(
            f"\nPostgreSQL restart: {ended - started:.1f} s; all ready {ready_s:.1f} s after it; "
            f"workflow ended {seconds(completed_s)}"
        )
        assert not found, "\n  ".join(found)
        for service in SERVICES:
            assert cluster.processes[service].poll() is None, f"{service} exited"
