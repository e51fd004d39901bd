"""The web dashboard at size: 10,000 recorded workflows (by default) written in bulk into a fresh
PostgreSQL database (or SQLite), then (a) how fast the read models catch up from zero, in events
per second (target ≥ 5,000), and (b) each page's server-side latency, p50 and p95 over N
requests with a signed-in session after one warm-up request (target p95 < 100 ms). Prints
figures only; never fails on a timing. docs/performance.md, Dashboard, holds the results.

    PYTHONPATH=. .venv/bin/python benchmarks/web.py --workflows 10000 --requests 50
    PYTHONPATH=. .venv/bin/python benchmarks/web.py --database sqlite

The workflows are the notify tests' hand-built ones (tests/unit/notify/workflows.py) with the
email after each ending: WorkflowStarted, SignalGenerated with decision paths, RebalancePlanned,
OrderRequested/OrderSubmitted/OrderFilled (or a rejection, or a re-peg), TradeExecuted,
WorkflowCompleted or WorkflowFailed, NotificationSent. Mostly successes, spread over 20 accounts
and one run per account and day, so the filters and the equity chart have something to do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import tempfile
import time
from pathlib import Path

from services.web.read_models import catch_up
from services.web.service import definition
from shared.bus.memory import InMemoryBus
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.logs import configure_logging
from shared.service.app import create_app
from shared.service.runtime import ServiceRuntime
from shared.settings import Settings
from tests.integration.web.history import write_fixture
from tests.servers import create_postgres_database, drop_postgres_database

TOKEN = "benchmark-token-0123456789abcdef"
LATENCY_TARGET_MS = 100.0
CATCH_UP_TARGET = 5000.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def page_latencies(
    store_url: str, data_dir: Path, requests: int
) -> list[tuple[str, int, float, float, int]]:
    """(path, status, p50 ms, p95 ms, bytes) of every page, signed in, in process: the app as
    `alchemiser serve web` builds it, without a socket in between."""
    from fastapi.testclient import TestClient

    settings = Settings(data_dir=data_dir, api_token=TOKEN)

    async def no_trigger(account: str) -> tuple[int, str]:
        return 409, "not in the benchmark"

    runtime = ServiceRuntime(
        definition(settings, no_trigger), settings, SqlEventStore(store_url), InMemoryBus()
    )
    results = []
    with TestClient(create_app(runtime), base_url="http://127.0.0.1") as client:
        signed_in = client.post(
            "/login",
            content=f"token={TOKEN}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            follow_redirects=False,
        )
        assert signed_in.status_code == 303, signed_in.text
        listing = client.get("/workflows?status=failed").text
        failed = re.findall(r'href="/workflows/([0-9a-f-]{36})"', listing)
        newest = re.findall(r'href="/workflows/([0-9a-f-]{36})"', client.get("/workflows").text)
        day = client.get(f"/api/workflows/{newest[0]}").json()["workflow"][0]["started_at"][:10]
        paths = [
            "/login",
            "/",
            "/workflows",
            "/workflows?status=failed",
            f"/workflows?date={day}",
            "/workflows?account=acct-07",
            f"/workflows/{newest[0]}",
            f"/workflows/{failed[-1]}",
            "/api/workflows",
            f"/api/workflows/{newest[0]}",
        ]
        for path in paths:
            client.get(path)  # warm-up: the exchange calendar, the first readiness poll
            timings, status, size = [], 0, 0
            for _ in range(requests):
                started = time.perf_counter()
                response = client.get(path)
                timings.append((time.perf_counter() - started) * 1000)
                status, size = response.status_code, len(response.content)
            results.append(
                (path, status, percentile(timings, 0.5), percentile(timings, 0.95), size)
            )
    return results


async def fixture_and_catch_up(url: str, count: int, seed: int) -> tuple[int, float, float, float]:
    await upgrade(url)
    store = SqlEventStore(url)
    try:
        started = time.perf_counter()
        written = await write_fixture(store, count, seed)
        write_s = time.perf_counter() - started
        started, cpu = time.perf_counter(), time.process_time()
        await catch_up(store)
        return written, write_s, time.perf_counter() - started, time.process_time() - cpu
    finally:
        await store.close()


def main(database: str, count: int, requests: int, seed: int) -> None:
    configure_logging("WARNING")
    print(f"Web dashboard benchmark: {count} workflows on {database}")
    print(f"  machine : {platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    print(f"  python  : {platform.python_version()}")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        url = (
            asyncio.run(create_postgres_database())
            if database == "postgresql"
            else f"sqlite+aiosqlite:///{work / 'events.db'}"
        )
        try:
            written, write_s, fold_s, cpu_s = asyncio.run(fixture_and_catch_up(url, count, seed))
            rate = written / fold_s
            print(f"  fixture : {written} events written in {write_s:.1f} s")
            verdict = "meets" if rate >= CATCH_UP_TARGET else "MISSES"
            print(
                f"  catch-up: {written} events from zero in {fold_s:.1f} s = {rate:,.0f} events/s "
                f"({verdict} the {CATCH_UP_TARGET:,.0f} target); this process's CPU alone: "
                f"{written / cpu_s:,.0f} events/s"
            )
            print(f"  pages   : {requests} requests each, signed in, load {os.getloadavg()}")
            print(f"    {'path':<52} {'status':>6} {'p50 ms':>8} {'p95 ms':>8} {'bytes':>9}")
            for path, status, p50, p95, size in page_latencies(url, work, requests):
                flag = "" if p95 < LATENCY_TARGET_MS else "  MISSES the 100 ms p95 target"
                print(f"    {path:<52} {status:>6} {p50:8.1f} {p95:8.1f} {size:9d}{flag}")
            print(f"  done    : load {os.getloadavg()}")
        finally:
            if database == "postgresql":
                asyncio.run(drop_postgres_database(url))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--workflows", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=50, help="requests per page")
    parser.add_argument("--seed", type=int, default=15)
    arguments = parser.parse_args()
    main(arguments.database, arguments.workflows, arguments.requests, arguments.seed)
