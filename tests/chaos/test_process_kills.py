"""Process faults (issue "Reliability and security", item 1;
docs/trading-rules.md, Restart reconciliation): one cluster of four service processes on the real
RabbitMQ and PostgreSQL runs workflow after workflow, each on a fresh simulated account; during
each, a randomly chosen service is SIGKILLed at a random point and restarted. After every run the
invariants of `tests/chaos/invariants.py` must hold. The seed is printed; ALCHEMISER_CHAOS_SEED
replays it.

Every other run starts its account holding SPY, which no bundled strategy wants, so the run
sells, settles and then buys; the rest start in cash and only buy."""

from __future__ import annotations

import random
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.chaos.accounts import last_close, open_holding
from tests.chaos.diagnostics import diagnose
from tests.chaos.invariants import bindings, dead_letters, violations
from tests.chaos.kills import CHAOS_SETTINGS, draw_kill, inject
from tests.chaos.scale import chaos_seed, runs
from tests.e2e.cluster import Cluster

pytestmark = pytest.mark.chaos

RUNS = runs(ci=30, full=300)
MAX_FAILED_RUNS = 3
"""Stop early once this many runs broke an invariant: the report is clear by then."""
HELD_SYMBOL = "SPY"


async def test_a_service_killed_at_any_point_of_a_workflow_loses_nothing_and_doubles_nothing(
    tmp_path: Path, bars: Path
) -> None:
    seed = chaos_seed()
    print(f"\nchaos seed {seed} ({RUNS} runs); replay with ALCHEMISER_CHAOS_SEED={seed}")
    rng = random.Random(seed)
    bound = bindings()
    failures: list[str] = []
    durations: list[float] = []
    async with Cluster(tmp_path, bars, CHAOS_SETTINGS) as cluster:
        assert cluster.store is not None
        await cluster.start_all()
        spy_price = last_close(tmp_path / "data", HELD_SYMBOL)
        for run in range(RUNS):
            kill = draw_kill(rng)
            account_id = f"chaos-{run}"
            if run % 2:
                await open_holding(
                    cluster.store,
                    account_id,
                    cash=Decimal(60000),
                    symbol=HELD_SYMBOL,
                    qty=Decimal(40),
                    price=spy_price,
                )
            dead_before = await dead_letters(cluster.namespace)
            started = time.monotonic()
            response = await cluster.trigger({"force": True, "account_id": account_id})
            assert response.status_code == 202, response.text
            workflow_id = response.json()["id"]
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
