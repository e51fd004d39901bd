"""Load and scale-out: N workflows for N distinct simulated accounts triggered at once through
the distributed system (four service processes, real RabbitMQ and PostgreSQL on loopback), the
simulated broker answering every call after `--latency-ms` (50 ms: I/O-bound, as with a real
broker). Then the same load with one extra replica of portfolio and execution (competing
consumers). Prints throughput and latency percentiles, and checks none was lost or duplicated.
Prints figures only; never fails on a timing.

    PYTHONPATH=. .venv/bin/python benchmarks/load.py --workflows 200
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from shared.logs import configure_logging
from tests.e2e.cluster import Cluster, free_port, sample_bars


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def one_load(cluster: Cluster, workflows: int, label: str, offset: int) -> None:
    started = time.perf_counter()
    answers = await asyncio.gather(
        *(
            cluster.trigger({"force": True, "account_id": f"load-{offset + n}"})
            for n in range(workflows)
        )
    )
    ids = [answer.json()["id"] for answer in answers]
    views = await asyncio.gather(*(cluster.finished(i, timeout_s=1800) for i in ids))
    wall_s = time.perf_counter() - started
    statuses = Counter(view["status"] for view in views)
    latencies = [
        (
            dt.datetime.fromisoformat(view["finished_at"])
            - dt.datetime.fromisoformat(view["started_at"])
        ).total_seconds()
        for view in views
        if view["finished_at"]
    ]
    duplicated = 0
    for workflow_id in ids:
        kinds = Counter(event.event_type for event in await cluster.events(workflow_id))
        if kinds["WorkflowCompleted"] + kinds["WorkflowFailed"] != 1 or kinds["TradeExecuted"] > 1:
            duplicated += 1
    print(
        f"  {label:<34} {workflows:>4} workflows  {dict(statuses)}  lost/duplicated {duplicated}"
        f"\n  {'':<34} wall {wall_s:6.1f} s  throughput {workflows / wall_s * 60:6.1f}/min  "
        f"p50 {percentile(latencies, 0.5):5.1f} s  p95 {percentile(latencies, 0.95):5.1f} s  "
        f"p99 {percentile(latencies, 0.99):5.1f} s"
    )


def extra_replica(cluster: Cluster, service: str) -> subprocess.Popen[bytes]:
    log = (cluster.work_dir / f"{service}-replica.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve", service, "--port", str(free_port())],
        env=cluster.environment(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def main(workflows: int, latency_ms: int) -> None:
    configure_logging("WARNING")
    print("Load benchmark: workflows at once through the distributed system")
    print(f"  machine : {platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    print(f"  broker  : simulated, {latency_ms} ms per call; production strategy set")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        bars = sample_bars(work / "bars")
        settings = {"ALCHEMISER_SIM_LATENCY_MS": str(latency_ms)}
        async with Cluster(work / "cluster", bars, settings) as cluster:
            await cluster.start_all()
            await one_load(cluster, workflows, "one replica each", 0)
            replicas = [extra_replica(cluster, s) for s in ("portfolio", "execution")]
            try:
                await asyncio.sleep(15)  # the replicas attach to their queues
                await one_load(cluster, workflows, "+1 portfolio, +1 execution", workflows)
            finally:
                for process in replicas:
                    process.terminate()
                    process.wait(timeout=30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=200)
    parser.add_argument("--latency-ms", type=int, default=50)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.workflows, arguments.latency_ms))
