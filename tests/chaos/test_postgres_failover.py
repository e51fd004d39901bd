"""PostgreSQL failover (issue 16, item 4; docs/operations.md, PostgreSQL high availability): the
four services run against a primary with a synchronous streaming standby of their own
(`tests/chaos/pg_clusters.py`, never the system cluster), through the multi-host URL with
`target_session_attrs=read-write`. Workflows are started; once the first has reached a drawn
point, every event committed so far is read, the primary is SIGKILLed with all its processes,
and the standby is promoted. Every service must reconnect to it by itself, every workflow
complete with the invariants of `tests/chaos/invariants.py`, and every event read before the
kill must be in the promoted standby unchanged. The timings are printed (docs/reliability.md
keeps the last figures); they are not asserted."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from tests.chaos.diagnostics import diagnose
from tests.chaos.invariants import (
    bindings,
    dead_letters,
    every_event,
    lost_or_changed,
    terminal_events,
    violations,
)
from tests.chaos.kills import CHAOS_SETTINGS, KILL_AFTER
from tests.chaos.outages import (
    RECOVERY_TIMEOUT_S,
    all_ready_after,
    ended_after,
    reached,
    seconds,
    start_workflows,
)
from tests.chaos.pg_clusters import standby_pair
from tests.chaos.scale import runs, seeded
from tests.e2e.cluster import Cluster
from tests.servers import SERVICES

pytestmark = pytest.mark.chaos

WORKFLOWS = runs(ci=3, full=12)
"""Workflows in flight when the primary dies, each on an account of its own."""
KILL_POINTS = KILL_AFTER[:4]
"""Up to `OrderRequested`: with fills at once, a later point can come after the last workflow
ended, and the kill would test nothing."""
MAX_DELAY_S = 0.1
MAX_PROMOTION_DELAY_S = 2.0
"""How long the standby waits before it is promoted: an operator's or a monitor's reaction,
during which the services find no host that takes writes."""


async def test_primary_killed_mid_workflow_standby_promoted_nothing_lost_or_doubled(
    tmp_path: Path, bars: Path
) -> None:
    seed, rng = seeded(f"{WORKFLOWS} workflows")
    point, delay_s = rng.choice(KILL_POINTS), rng.uniform(0, MAX_DELAY_S)
    promotion_delay_s = rng.uniform(0, MAX_PROMOTION_DELAY_S)
    bound = bindings()
    database = f"alc_failover_{uuid.uuid4().hex[:8]}"
    async with (
        standby_pair(database) as pair,
        Cluster(tmp_path, bars, CHAOS_SETTINGS, database_url=pair.url(database)) as cluster,
    ):
        assert cluster.store is not None
        await cluster.start_all()
        dead_before = await dead_letters(cluster.namespace)
        started_runs = await start_workflows(cluster, "failover", WORKFLOWS)
        await reached(cluster.store, next(iter(started_runs)), point)
        await asyncio.sleep(delay_s)

        committed = await every_event(cluster.store)
        running = [wf for wf in started_runs if not await terminal_events(cluster.store, wf)]
        killed = time.monotonic()
        processes = pair.kill_primary()
        await asyncio.sleep(promotion_delay_s)
        promoted_s = await pair.promote_standby() + promotion_delay_s
        await cluster.store.close()  # its connections died with the primary; reopened on use
        ready_s = await all_ready_after(cluster, killed, RECOVERY_TIMEOUT_S)
        ended_s = [await ended_after(cluster.store, wf, killed) for wf in started_runs]

        found: list[str] = []
        for (workflow_id, account_id), ended in zip(started_runs.items(), ended_s, strict=True):
            settle_s = 60 if ended is not None else 5
            found += [
                f"workflow {workflow_id}: {finding}"
                for finding in await violations(
                    cluster, workflow_id, account_id, bound, dead_before, settle_s
                )
            ]
        after = await every_event(cluster.store)
        found += lost_or_changed(committed, after)
        found += [
            f"{service} exited"
            for service in SERVICES
            if cluster.processes[service].poll() is not None
        ]
        print(
            f"primary SIGKILLed ({processes} processes) {delay_s:.2f} s after the first workflow "
            f"recorded {point}, {len(running)} of {WORKFLOWS} workflows running, "
            f"{len(committed)} events committed; standby promoted {promoted_s:.1f} s after the "
            f"kill ({promotion_delay_s:.1f} s of it waiting); all services ready "
            f"{ready_s:.1f} s after it; workflows ended "
            f"{', '.join(seconds(value) for value in ended_s)}; {len(after)} events after"
        )
        if found:
            found += ["diagnostics:", *await diagnose(cluster)]
        assert running, f"every workflow had ended before the kill at {point}: nothing was tested"
        assert not found, f"seed {seed}:\n  " + "\n  ".join(found)
