"""Process faults (issue "Reliability and security", item 1;
docs/trading-rules.md, Restart reconciliation): one cluster of four service processes on the real
RabbitMQ and PostgreSQL runs workflow after workflow, each on a fresh simulated account; during
each, a randomly chosen service is SIGKILLed at a random point and restarted. After every run the
invariants of `tests/chaos/invariants.py` must hold. The seed is printed; ALCHEMISER_CHAOS_SEED
replays it.

Every other run starts its account holding SPY, which no bundled strategy wants, so the run
sells, settles and then buys; the rest start in cash and only buy."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.chaos.accounts import start_run
from tests.chaos.diagnostics import diagnose
from tests.chaos.invariants import bindings, dead_letters, violations
from tests.chaos.kills import CHAOS_SETTINGS, draw_kill, inject
from tests.chaos.scale import runs, seeded
from tests.e2e.cluster import Cluster

pytestmark = pytest.mark.chaos

RUNS = runs(ci=30, full=300)
MAX_FAILED_RUNS = 3
"""Stop early once this many runs broke an invariant: the report is clear by then."""


async def test_a_service_killed_at_any_point_of_a_workflow_loses_nothing_and_doubles_nothing(
    tmp_path: Path, bars: Path
) -> None:
    seed, rng = seeded(f"{RUNS} runs")
    bound = bindings()
    failures: list[str] = []
    durations: list[float] = []
    async with Cluster(tmp_path, bars, CHAOS_SETTINGS) as cluster:
        assert cluster.store is not None
        await cluster.start_all()
        for run in range(RUNS):
            kill = draw_kill(rng)
            account_id = f"chaos-{run}"
            dead_before = await dead_letters(cluster.namespace)
            started = time.monotonic()
            workflow_id = await start_run(cluster, account_id, holding=run % 2 == 1)
            came_back = True
            try:
                what = await inject(cluster, workflow_id, kill)
            except AssertionError as restart_failed:
                came_back, what, found = False, str(kill), [str(restart_failed)]
            else:
                found = await violations(cluster, workflow_id, account_id, bound, dead_before)
            durations.append(time.monotonic() - started)
            print(f"run {run}: {what}; {'OK' if not found else 'BROKEN'}")
            if found:
                found += ["diagnostics:", *await diagnose(cluster)]
                failures.append(
                    f"seed {seed} run {run} workflow {workflow_id} account {account_id}: "
                    f"{what}\n  " + "\n  ".join(found)
                )
                if len(failures) >= MAX_FAILED_RUNS or not came_back:
                    break
    print(
        f"{len(durations)} runs, {len(failures)} broken; per run (trigger to settled, kill and "
        f"restart included) median {sorted(durations)[len(durations) // 2]:.1f} s, "
        f"max {max(durations):.1f} s"
    )
    assert not failures, "\n".join(failures)
