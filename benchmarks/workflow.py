"""Trigger-to-`WorkflowCompleted` latency with the production strategy set: embedded (one
process, in-memory bus, SQLite) and distributed (four service processes, real RabbitMQ and
PostgreSQL on loopback). Each run is a forced workflow for a fresh simulated account, so every
run evaluates all strategies, plans and trades. Latency is occurred_at(WorkflowCompleted) −
occurred_at(WorkflowStarted). Prints figures only; never fails on a timing.

    PYTHONPATH=. .venv/bin/python benchmarks/workflow.py --runs 50
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from services.embedded import EmbeddedSystem, prepare_data
from services.strategy.trigger import start_workflow
from services.strategy.workflow_status import project_workflow
from shared import market_clock
from shared.logs import configure_logging
from shared.marketdata.barstore import BarStore
from shared.settings import Settings
from tests.e2e.cluster import Cluster, sample_bars


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def describe(label: str, latencies: list[float], wall_s: float) -> None:
    print(
        f"  {label:<12} runs {len(latencies):>3}  p50 {percentile(latencies, 0.5):6.2f} s  "
        f"p95 {percentile(latencies, 0.95):6.2f} s  max {max(latencies):6.2f} s  "
        f"mean {statistics.fmean(latencies):6.2f} s  wall {wall_s:7.1f} s"
    )


async def embedded(runs: int, work: Path) -> list[float]:
    settings = Settings(data_dir=work / "embedded", _env_file=None)  # type: ignore[call-arg]
    await prepare_data(settings, lambda line: None)
    system = EmbeddedSystem(settings)
    await system.start()
    latencies: list[float] = []
    try:
        now = market_clock.market_now(settings, BarStore(settings.data_dir).last_session())
        for run in range(runs):
            outcome = await start_workflow(
                system.store,
                settings,
                now=now,
                force=True,
                account_id=f"bench-{run}",
                requested_by="benchmark",
            )
            system.relay.wake()
            while True:
                events = [r.event for r in await system.store.read_correlation(outcome.workflow_id)]
                view = project_workflow(events)
                if view is not None and view.status != "running":
                    break
                await asyncio.sleep(0.02)
            if view.status != "completed":
                raise RuntimeError(f"run {run} ended {view.status}: {view.failure_reason}")
            assert view.started_at and view.finished_at
            latencies.append((view.finished_at - view.started_at).total_seconds())
    finally:
        await system.stop()
    return latencies


async def distributed(runs: int, work: Path) -> list[float]:
    bars = sample_bars(work / "bars")
    latencies: list[float] = []
    async with Cluster(work / "cluster", bars) as cluster:
        await cluster.start_all()
        for run in range(runs):
            answer = await cluster.trigger({"force": True, "account_id": f"bench-{run}"})
            view = await cluster.finished(answer.json()["id"])
            if view["status"] != "completed":
                raise RuntimeError(f"run {run} ended {view['status']}: {view['failure_reason']}")
            started = dt.datetime.fromisoformat(view["started_at"])
            finished = dt.datetime.fromisoformat(view["finished_at"])
            latencies.append((finished - started).total_seconds())
    return latencies


async def main(runs: int) -> None:
    configure_logging("WARNING")
    print("Workflow benchmark: trigger -> WorkflowCompleted, production strategy set")
    print(f"  machine : {platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    print(f"  python  : {platform.python_version()}")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for label, mode in (("embedded", embedded), ("distributed", distributed)):
            started = time.perf_counter()
            latencies = await mode(runs, work)
            describe(label, latencies, time.perf_counter() - started)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="workflows per mode")
    asyncio.run(main(parser.parse_args().runs))
