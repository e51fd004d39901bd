"""The query KEDA polls to scale execution on its due timers
(deploy/k8s/components/autoscaling/scaledobjects.yaml), run on a migrated PostgreSQL database: a
query KEDA cannot run, or one counting the wrong rows, would leave execution at its minimum
through a burst without any error on our side (docs/operations.md, Scaling)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.eventstore.timers import timers

pytestmark = pytest.mark.integration

SCALED_OBJECTS = (
    Path(__file__).resolve().parents[3]
    / "deploy"
    / "k8s"
    / "components"
    / "autoscaling"
    / "scaledobjects.yaml"
)


def backlog_query() -> str:
    documents = list(yaml.safe_load_all(SCALED_OBJECTS.read_text(encoding="utf-8")))
    (execution,) = [d for d in documents if d["metadata"]["name"] == "alchemiser-execution"]
    (trigger,) = [t for t in execution["spec"]["triggers"] if t["type"] == "postgresql"]
    return str(trigger["metadata"]["query"])


async def test_the_scalers_query_counts_executions_due_timers_leased_or_not(
    postgres_url: str,
) -> None:
    await upgrade(postgres_url)
    store = SqlEventStore(postgres_url)
    now = datetime.now(UTC)
    past, future = now - timedelta(seconds=5), now + timedelta(hours=1)
    rows = [
        ("execution", past, None),  # due: counted
        ("execution", past, future),  # due and being stepped by a replica: counted
        ("execution", future, None),  # not due yet
        ("portfolio", past, None),  # another service's
    ]
    try:
        async with store.engine.begin() as connection:
            await connection.execute(
                sa.insert(timers),
                [
                    {
                        "service": service,
                        "workflow_id": f"wf-{n}",
                        "chain": "order-0",
                        "kind": "poll",
                        "due_at": due_at,
                        "lease_until": lease_until,
                        "payload": {},
                    }
                    for n, (service, due_at, lease_until) in enumerate(rows)
                ],
            )
            counted = (await connection.execute(sa.text(backlog_query()))).scalar_one()
    finally:
        await store.close()

    assert counted == 2
