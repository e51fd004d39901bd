"""Execution throughput: one 100-symbol rebalance executed on the simulated broker, from the
`RebalancePlanned` delivery to `WorkflowCompleted`; prints figures, asserts nothing about speed.

    PYTHONPATH=. .venv/bin/python benchmarks/execution.py [--symbols 100] [--workflows 3]
        [--backend sqlite|postgres|both] [--latency-ms 0,50]

Each workflow is a fresh account buying `--symbols` symbols (the plan is built here, as the
portfolio service would emit it); the execution shell is the production one — consumer with
inbox, executor, timer loop on `ALCHEMISER_TIMER_POLL_S` — with the immediate fill model, and
then with every broker call delayed by `ALCHEMISER_SIM_LATENCY_MS`. PostgreSQL runs on a fresh
database on ALCHEMISER_TEST_POSTGRES_URL's server (default 127.0.0.1:5432), dropped afterwards;
SQLite on a temporary file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import platform
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.execution import timer_loop
from services.execution.executor import Executor
from shared.broker.factory import broker_for
from shared.broker.request_budget import BudgetShare
from shared.bus.memory import InMemoryBus
from shared.bus.port import Message
from shared.events import (
    RebalancePlanned,
    encode,
)
from shared.eventstore import SqlEventStore, upgrade
from shared.marketdata.bars import BarSnapshot
from shared.messaging.consumer import Consumer
from shared.service.runtime import PeriodicRunner
from shared.settings import load_settings
from tests.integration.execution.world import plan_event
from tests.servers import create_postgres_database, drop_postgres_database

SIM_NOW = "2024-11-27T15:45:00"
SESSIONS = [dt.date(2024, 11, day) for day in (21, 22, 25, 26, 27)]
CASH = Decimal(100000)


def symbols(count: int) -> list[str]:
    return [f"S{index:03d}" for index in range(count)]


def bars(tickers: list[str]) -> BarSnapshot:
    return BarSnapshot.from_closes(
        SESSIONS,
        {t: [50.0 + i, 50.5 + i, 51.0 + i, 51.5 + i, 52.0 + i] for i, t in enumerate(tickers)},
    )


def plan(workflow_id: str, account_id: str, tickers: list[str]) -> RebalancePlanned:
    """Buy every ticker for an equal share of 95 % of the account."""
    amount = (CASH * Decimal("0.95") / len(tickers)).quantize(Decimal("0.01"))
    weight = (Decimal("0.95") / len(tickers)).quantize(Decimal("0.0001"))
    return plan_event(
        workflow_id,
        [(ticker, "BUY", str(amount), str(weight)) for ticker in tickers],
        account_id=account_id,
        portfolio_value=str(CASH),
    )


async def run_config(
    database_url: str, data_dir: Path, tickers: list[str], workflows: int, latency_ms: int
) -> dict[str, Any]:
    settings = load_settings(
        database_url=database_url,
        data_dir=data_dir,
        sim_now=SIM_NOW,
        sim_latency_ms=latency_ms,
        timer_poll_s=0.05,
    )
    world = bars(tickers)
    store = SqlEventStore(database_url)
    executor = Executor(
        settings,
        lambda account: broker_for(settings, account, share=BudgetShare.EXECUTION, bars=world),
    )
    consumer = Consumer("execution", store, InMemoryBus(), executor.handle, ["RebalancePlanned"])
    loop = asyncio.create_task(
        PeriodicRunner("execution", store).run(
            timer_loop.due_timers(executor, settings.timer_poll_s)
        )
    )
    walls: list[float] = []
    events = 0
    try:
        for index in range(workflows):
            workflow_id = f"bench-{latency_ms}-{index}-{uuid.uuid4().hex[:6]}"
            event = plan(workflow_id, f"acct-{workflow_id}", tickers)
            started = time.perf_counter()
            await consumer.handle_message(
                Message(event.event_type, encode(event), str(event.event_id), {}, 1)
            )
            while True:
                recorded = await store.read_correlation(workflow_id)
                types = {r.event.event_type for r in recorded}
                if types & {"WorkflowCompleted", "WorkflowFailed"}:
                    break
                await asyncio.sleep(0.05)
            walls.append(time.perf_counter() - started)
            if "WorkflowCompleted" not in types:
                raise SystemExit(f"{workflow_id} failed: {[r.event for r in recorded][-1]}")
            events += len(recorded)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await executor.close()
        await store.close()
    total = sum(walls)
    return {
        "workflows": workflows,
        "events": events,
        "wall_s_mean": total / workflows,
        "wall_s_min": min(walls),
        "wall_s_max": max(walls),
        "events_per_s": events / total,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--workflows", type=int, default=3)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--latency-ms", default="0,50")
    args = parser.parse_args()
    tickers = symbols(args.symbols)
    latencies = [int(value) for value in args.latency_ms.split(",")]
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    print(
        f"# {platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
        f"Python {platform.python_version()}, SQLAlchemy {version('sqlalchemy')}, "
        f"asyncpg {version('asyncpg')}, aiosqlite {version('aiosqlite')}"
    )
    print(f"# {args.symbols}-symbol rebalance, {args.workflows} workflows per row")
    print(
        "| backend | broker latency | workflows | events | wall s/workflow (min–max) | events/s |"
    )
    print("|---|---:|---:|---:|---|---:|")
    for backend in backends:
        for latency_ms in latencies:
            with tempfile.TemporaryDirectory() as folder:
                if backend == "sqlite":
                    url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
                else:
                    url = await create_postgres_database()
                try:
                    await upgrade(url)
                    figures = await run_config(
                        url, Path(folder), tickers, args.workflows, latency_ms
                    )
                finally:
                    if backend == "postgres":
                        await drop_postgres_database(url)
            print(
                f"| {backend} | {latency_ms} ms | {figures['workflows']} | {figures['events']} | "
                f"{figures['wall_s_mean']:.2f} ({figures['wall_s_min']:.2f}–"
                f"{figures['wall_s_max']:.2f}) | {figures['events_per_s']:.0f} |"
            )


if __name__ == "__main__":
    asyncio.run(main())
