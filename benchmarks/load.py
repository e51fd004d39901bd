"""Load at platform size: N simulated accounts on `--configs` distinct allocation configs (1–4 of
the shipped strategy files each, varied weights, mapped through
ALCHEMISER_ACCOUNT_STRATEGY_CONFIGS), all triggered at once at the simulated 15:45 through the
distributed system (four `alchemiser serve` processes, real RabbitMQ and PostgreSQL on loopback),
every simulated broker call answered after `--broker-latency-ms`. Each `--replicas` count runs
on a fresh cluster with that many extra processes of each `--replicated` service (portfolio and
execution unless told otherwise; competing consumers).

Prints throughput, per-workflow p50/p95/p99, when the last workflow ended against the close guard
(16:00 − ALCHEMISER_EXEC_CLOSE_MARGIN_S = 13 minutes after 15:45), events/s from the store, CPU and
peak memory per process (from /proc: the services' peak RSS, the summed PSS of the database's
PostgreSQL backends and RabbitMQ's RSS at their peaks during the burst), and the checks: every
account's workflow started and completed exactly once, no order intent or broker order twice
under one client order id, each config's signal decided once. A broken check exits with status
1 after the report; a timing never does.

    PYTHONPATH=. .venv/bin/python benchmarks/load.py --accounts 1000 --replicas 0 1 2
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import pwd
import random
import shutil
import signal
import sys
import time
from collections import Counter
from contextlib import AbstractAsyncContextManager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from services.strategy.symphonies import bundled_config
from shared.broker.simulated.tables import sim_orders
from shared.eventstore.schema import events
from shared.logs import configure_logging
from tests.chaos.pg_clusters import own_server
from tests.e2e.cluster import TOKEN, Cluster, sample_bars
from tests.servers import POSTGRES_ADMIN_URL, create_postgres_database

CLOSE_GUARD_S = 13 * 60  # 15:45 → 16:00 − EXEC_CLOSE_MARGIN_S (120 s)
CONNECTIONS = {"execution": 25, "portfolio": 16, "strategy": 11, "notify": 11}
"""The most PostgreSQL connections a process of each service held in a 1,000-account burst
(measured 2026-12-07: 63 in all with one process each, 145 with +2 portfolio and execution):
the store's and the simulated broker's pools at their peaks, the relay, the listeners
(docs/operations.md, Capacity model)."""
CONNECTION_HEADROOM = 15
"""This benchmark's own store pool and the server's reserved superuser connections."""
MEMORY_EVERY_S = 15
"""Reading a backend's smaps_rollup walks its page tables (0.3 ms idle, more under load), and a
10,000-account burst has 64 of them for 15 minutes: sampled sparsely, so the benchmark does not
take the CPU it measures."""
TICKS = os.sysconf("SC_CLK_TCK")
OUTCOMES = ("WorkflowCompleted", "WorkflowFailed")
TRIGGER_ATTEMPTS = 5


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def write_configs(folder: Path, count: int, seed: int) -> list[dict[str, float]]:
    """`count` distinct allocation configs beside copies of the shipped strategy files, each of 1–4
    files drawn at random with integer weights 1–9 (a draw equal to an earlier config is drawn
    again: with one file only as many configs as files differ)."""
    shipped = sorted(bundled_config().parent.glob("*.clj"))
    folder.mkdir(parents=True)
    for source in shipped:
        shutil.copy(source, folder / source.name)
    draw = random.Random(seed)
    configs: list[dict[str, float]] = []
    seen: set[tuple[tuple[str, float], ...]] = set()
    while len(configs) < count:
        files = draw.sample([path.name for path in shipped], draw.randint(1, 4))
        raw = {name: draw.randint(1, 9) for name in files}
        weights = {name: round(value / sum(raw.values()), 6) for name, value in raw.items()}
        key = tuple(sorted(weights.items()))
        if key in seen:
            continue
        seen.add(key)
        (folder / f"config-{len(configs):03d}.json").write_text(
            json.dumps({"files": files, "allocations": weights})
        )
        configs.append(weights)
    return configs


def write_account_mapping(folder: Path, accounts: int, configs: int) -> Path:
    mapping = {f"load-{n}": f"config-{n % configs:03d}.json" for n in range(accounts)}
    path = folder / "accounts.json"
    path.write_text(json.dumps(mapping))
    return path


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far; NaN once it is gone (what it used is lost)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / TICKS


def memory_mib(pid: int, field: str, source: str = "status") -> float:
    """A memory figure of /proc/<pid>/<source> in MiB: `VmHWM` (peak resident) or `VmRSS` of
    `status`, `Pss` of `smaps_rollup` (shared pages split among the processes sharing them, as
    PostgreSQL's backends share their buffers); 0 once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/{source}").read_text()
    except OSError:
        return 0.0
    [line] = [row for row in text.splitlines() if row.startswith(f"{field}:")]
    return int(line.split()[1]) / 1024


async def sample_memory(
    cluster: Cluster, broker_pid: int | None, peaks: dict[str, float], stop: asyncio.Event
) -> None:
    """The peaks the processes' own counters do not keep, every MEMORY_EVERY_S until `stop`: the
    summed PSS of the benchmark database's backends (they come and go with the pools) and
    RabbitMQ's RSS (its VmHWM covers the shared server's whole life)."""
    while not stop.is_set():
        backends = await database_backends(cluster)
        postgres = sum(memory_mib(pid, "Pss", "smaps_rollup") for pid in backends)
        peaks["postgres"] = max(peaks.get("postgres", 0.0), postgres)
        if broker_pid:
            peaks["rabbitmq"] = max(peaks.get("rabbitmq", 0.0), memory_mib(broker_pid, "VmRSS"))
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), MEMORY_EVERY_S)


def machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, every core."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / TICKS, sum(values) / TICKS


def rabbitmq_pid() -> int | None:
    """The process listening on 5672 (the shared RabbitMQ), found through its socket's inode."""
    inodes = {
        row.split()[9]
        for row in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if row.split()[1].endswith(":1628") and row.split()[3] == "0A"
    }
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
        except OSError:
            continue
        if any(f"socket:[{inode}]" in links for inode in inodes):
            return int(entry.name)
    return None


async def database_backends(cluster: Cluster) -> list[int]:
    assert cluster.store is not None
    name = cluster.database_url.rsplit("/", 1)[1]
    async with cluster.store.engine.connect() as connection:
        rows = await connection.execute(
            sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :name"), {"name": name}
        )
        return [row.pid for row in rows]


async def database_activity(cluster: Cluster) -> tuple[int, int, int]:
    """(transactions, rows written, bytes on disk) of the benchmark's database so far."""
    assert cluster.store is not None
    name = cluster.database_url.rsplit("/", 1)[1]
    async with cluster.store.engine.connect() as connection:
        row = (
            await connection.execute(
                sa.text(
                    "SELECT xact_commit + xact_rollback AS transactions, tup_inserted "
                    "+ tup_updated + tup_deleted AS written, pg_database_size(datname) AS size "
                    "FROM pg_stat_database WHERE datname = :name"
                ),
                {"name": name},
            )
        ).one()
        return int(row.transactions), int(row.written), int(row.size)


@dataclass
class Meter:
    """CPU of each process over the burst: the services, their PostgreSQL backends, RabbitMQ."""

    pids: dict[str, int]
    start: dict[int, float]
    machine: tuple[float, float]

    @classmethod
    def begin(cls, pids: dict[str, int]) -> Meter:
        return cls(pids, {pid: cpu_seconds(pid) for pid in pids.values()}, machine_busy_s())

    def used(self, pid: int) -> float:
        return cpu_seconds(pid) - self.start.get(pid, 0.0)


async def trigger_all(cluster: Cluster, accounts: int, in_flight: int) -> Counter[int | str]:
    """Every account's daily run, not forced: a second 202 for one account would be a doubled
    run; `in_flight` requests at a time, like a scheduler's fan-out."""
    gate = asyncio.Semaphore(in_flight)
    answers: Counter[int | str] = Counter()
    async with httpx.AsyncClient(
        base_url=cluster.url("strategy"),
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=120,
        limits=httpx.Limits(max_connections=in_flight),
    ) as client:

        async def one(n: int) -> None:
            async with gate:
                for attempt in range(1, TRIGGER_ATTEMPTS + 1):
                    try:
                        response = await client.post(
                            "/v1/workflows", json={"account_id": f"load-{n}"}
                        )
                    except httpx.TransportError as error:
                        # Safe to send again: a repeated trigger answers 200 with the run
                        # already started, never a second 202 (docs/trading-rules.md, Triggers).
                        answers[f"dropped ({type(error).__name__})"] += 1
                        if attempt == TRIGGER_ATTEMPTS:
                            raise
                        await asyncio.sleep(attempt)
                        continue
                    answers[response.status_code] += 1
                    return

        await asyncio.gather(*(one(n) for n in range(accounts)))
    return answers


def show_exited(cluster: Cluster) -> None:
    """A service that died during the burst explains dropped triggers and stuck runs: its exit
    code and the end of its log, before the run's directory is removed."""
    for name, process in cluster.processes.items():
        if process.poll() is not None:
            print(f"    {name} exited with {process.returncode} during the run; its log ends:")
            print(cluster.log_path(name).read_text()[-3000:], flush=True)


async def count_outcomes(cluster: Cluster) -> int:
    assert cluster.store is not None
    async with cluster.store.engine.connect() as connection:
        return int(
            (
                await connection.execute(
                    sa.select(sa.func.count()).where(events.c.event_type.in_(OUTCOMES))
                )
            ).scalar_one()
        )


async def wait_for_outcomes(
    cluster: Cluster, accounts: int, began: float, timeout_s: float
) -> float:
    """Seconds from the first trigger until every workflow ended (or the timeout, or a service
    died), printing the progress every 30 s so a run cut short still says how far it got."""
    shown = began
    while True:
        ended = await count_outcomes(cluster)
        now = time.monotonic()
        if ended >= accounts or now - began > timeout_s:
            return now - began
        if any(process.poll() is not None for process in cluster.processes.values()):
            print(f"    {now - began:6.0f} s  a service exited: the burst cannot finish")
            return now - began
        if now - shown >= 30:
            shown = now
            print(
                f"    {now - began:6.0f} s  {ended:>6}/{accounts} ended  "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        await asyncio.sleep(2)


async def deliveries(cluster: Cluster) -> dict[str, Counter[str]]:
    """Each process's deliveries by outcome, from its /metrics: `handled`, or `duplicate` —
    refused because its event was already handled, by this process or a replica that raced it
    (docs/decisions.md, Decide once, trade per account)."""
    found: dict[str, Counter[str]] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        for name in cluster.processes:
            text = (await client.get(f"{cluster.url(name)}/metrics")).text
            outcomes: Counter[str] = Counter()
            for family in text_string_to_metric_families(text):
                if family.name == "alchemiser_events_consumed":
                    for sample in family.samples:
                        if sample.name.endswith("_total"):
                            outcomes[sample.labels["outcome"]] += int(sample.value)
            found[name] = outcomes
    return found


async def store_figures(cluster: Cluster) -> dict[str, object]:
    """What the store says about the burst: per-workflow durations, events, the checks."""
    assert cluster.store is not None
    async with cluster.store.engine.connect() as connection:
        by_type: dict[str, int] = dict(
            (
                await connection.execute(
                    sa.select(events.c.event_type, sa.func.count()).group_by(events.c.event_type)
                )
            ).all()
        )
        span = (
            await connection.execute(
                sa.select(sa.func.min(events.c.recorded_at), sa.func.max(events.c.recorded_at))
            )
        ).one()
        rows = (
            await connection.execute(
                sa.select(
                    events.c.correlation_id,
                    events.c.account_id,
                    events.c.event_type,
                    events.c.occurred_at,
                ).where(events.c.event_type.in_(("WorkflowStarted", "TradeExecuted", *OUTCOMES)))
            )
        ).all()
        intents = (
            await connection.execute(
                sa.select(events.c.payload["client_order_id"].as_string()).where(
                    events.c.event_type == "OrderRequested"
                )
            )
        ).scalars()
        doubled_intents = sum(1 for n in Counter(intents).values() if n > 1)
        failures = Counter(
            (
                await connection.execute(
                    sa.select(events.c.payload["failure_reason"].as_string()).where(
                        events.c.event_type == "WorkflowFailed"
                    )
                )
            ).scalars()
        )
        doubled_orders = (
            await connection.execute(
                sa.select(sa.func.count()).select_from(
                    sa.select(sim_orders.c.account_id)
                    .group_by(sim_orders.c.account_id, sim_orders.c.client_order_id)
                    .having(sa.func.count() > 1)
                    .subquery()
                )
            )
        ).scalar_one()
    starts: dict[str, dt.datetime] = {}
    ends: dict[str, dt.datetime] = {}
    kinds: dict[str, Counter[str]] = {}
    starts_per_account: Counter[str] = Counter()
    for row in rows:
        kinds.setdefault(row.correlation_id, Counter())[row.event_type] += 1
        if row.event_type == "WorkflowStarted":
            starts_per_account[row.account_id] += 1
            starts[row.correlation_id] = row.occurred_at
        elif row.event_type in OUTCOMES:
            ends[row.correlation_id] = row.occurred_at
    durations = [(end - starts[key]).total_seconds() for key, end in ends.items() if key in starts]
    return {
        "by_type": by_type,
        "failures": failures,
        "span_s": (span[1] - span[0]).total_seconds() if span[0] else 0.0,
        "durations": durations,
        "outcomes": Counter(
            next((kind for kind in OUTCOMES if counts[kind]), "running")
            for counts in kinds.values()
        ),
        "doubled_workflows": sum(
            1
            for counts in kinds.values()
            if counts["WorkflowCompleted"] + counts["WorkflowFailed"] > 1
            or counts["TradeExecuted"] > 1
        ),
        "accounts_started_twice": sum(1 for n in starts_per_account.values() if n > 1),
        "accounts_started": len(starts_per_account),
        "doubled_intents": doubled_intents,
        "doubled_orders": doubled_orders,
    }


async def one_load(
    work: Path,
    bars: Path,
    arguments: argparse.Namespace,
    replicas: int,
    mapping: Path,
    admin_url: str,
) -> list[str]:
    """Runs one burst on a fresh database (on the server of `admin_url`; empty: the tests'
    server) and reports it; returns the checks it broke."""
    settings = {
        "ALCHEMISER_SIM_LATENCY_MS": str(arguments.broker_latency_ms),
        "ALCHEMISER_ACCOUNT_STRATEGY_CONFIGS": str(mapping),
        # The daily burst must be over long before the watchdog would fail a run.
        "ALCHEMISER_WORKFLOW_DEADLINE_S": str(int(arguments.timeout_s) + 600),
    }
    profile_dir = arguments.profile / f"replicas-{replicas}" if arguments.profile else None
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
    label = (
        ", ".join(f"+{replicas} {service}" for service in arguments.replicated)
        if replicas
        else "one process each"
    )
    cluster = Cluster(
        work / f"cluster-{replicas}",
        bars,
        settings,
        profile_dir=profile_dir,
        database_url=await create_postgres_database(admin_url) if admin_url else "",
    )
    async with cluster:
        await cluster.start_all()
        for n in range(1, replicas + 1):
            for service in arguments.replicated:
                await cluster.wait_ready(cluster.start(service, replica=n))
        pids = {name: process.pid for name, process in cluster.processes.items()}
        backends = await database_backends(cluster)
        broker_pid = rabbitmq_pid()
        meter = Meter.begin(
            {**pids, **({"rabbitmq": broker_pid} if broker_pid else {})}
            | {f"pg{pid}": pid for pid in backends}
        )
        activity_before = await database_activity(cluster)
        load_before = os.getloadavg()
        client_cpu = time.process_time()
        peaks: dict[str, float] = {}
        sampled = asyncio.Event()
        sampler = asyncio.create_task(sample_memory(cluster, broker_pid, peaks, sampled))
        began = time.monotonic()
        try:
            answers = await trigger_all(cluster, arguments.accounts, arguments.in_flight)
        except httpx.TransportError:
            show_exited(cluster)
            raise
        triggered_s = time.monotonic() - began
        wall_s = await wait_for_outcomes(cluster, arguments.accounts, began, arguments.timeout_s)
        sampled.set()
        await sampler
        show_exited(cluster)
        load_after = os.getloadavg()
        backends_now = await database_backends(cluster)
        cpu = {name: meter.used(pid) for name, pid in pids.items()}
        rss = {name: memory_mib(pid, "VmHWM") for name, pid in pids.items()} | peaks
        # A backend that ended during the burst took its CPU figure with it.
        postgres_cpu = math.fsum(
            used
            for used in (meter.used(pid) for pid in set(backends) | set(backends_now))
            if not math.isnan(used)
        )
        rabbit_cpu = meter.used(broker_pid) if broker_pid else float("nan")
        busy = machine_busy_s()
        machine_cpu = busy[0] - meter.machine[0]
        await asyncio.sleep(1)  # PostgreSQL publishes its counters about once a second
        activity = await database_activity(cluster)
        figures = await store_figures(cluster)
        figures["transactions"] = activity[0] - activity_before[0]
        figures["rows_written"] = activity[1] - activity_before[1]
        figures["bytes"] = activity[2] - activity_before[2]
        figures["client_cpu"] = time.process_time() - client_cpu
        evaluations = await cluster.signal_evaluations()
        figures["deliveries"] = await deliveries(cluster)
        if profile_dir is not None:
            # uvicorn re-raises SIGTERM after its shutdown, which ends the process before cProfile
            # writes; SIGINT comes back as KeyboardInterrupt, after which it does.
            for name in list(cluster.processes):
                cluster.stop(name, signal.SIGINT)
    return report(
        label,
        arguments,
        answers=answers,
        triggered_s=triggered_s,
        wall_s=wall_s,
        figures=figures,
        cpu=cpu,
        rss=rss,
        postgres_cpu=postgres_cpu,
        postgres_backends=len(set(backends) | set(backends_now)),
        rabbit_cpu=rabbit_cpu,
        machine_cpu=machine_cpu,
        evaluations=evaluations,
        loads=(load_before, load_after),
    )


def report(
    label: str,
    arguments: argparse.Namespace,
    *,
    answers: Counter[int | str],
    triggered_s: float,
    wall_s: float,
    figures: dict[str, object],
    cpu: dict[str, float],
    rss: dict[str, float],
    postgres_cpu: float,
    postgres_backends: int,
    rabbit_cpu: float,
    machine_cpu: float,
    evaluations: float,
    loads: tuple[tuple[float, float, float], tuple[float, float, float]],
) -> list[str]:
    accounts = arguments.accounts
    durations: list[float] = figures["durations"]  # type: ignore[assignment]
    by_type: dict[str, int] = figures["by_type"]  # type: ignore[assignment]
    outcomes: Counter[str] = figures["outcomes"]  # type: ignore[assignment]
    total_events = sum(by_type.values())
    ended = outcomes["WorkflowCompleted"] + outcomes["WorkflowFailed"]
    service_cpu = sum(cpu.values())
    per_workflow = max(ended, 1)
    print(f"  {label}")
    print(
        f"    load average before {loads[0][0]:.1f}/{loads[0][1]:.1f}/{loads[0][2]:.1f}, after "
        f"{loads[1][0]:.1f}/{loads[1][1]:.1f}/{loads[1][2]:.1f}"
    )
    print(f"    triggers: {dict(answers)} in {triggered_s:.1f} s ({arguments.in_flight} in flight)")
    print(
        f"    ended {ended}/{accounts} {dict(outcomes)} in {wall_s:.1f} s "
        f"({'within' if wall_s <= CLOSE_GUARD_S and ended == accounts else 'NOT within'} the "
        f"{CLOSE_GUARD_S // 60}-minute close guard); throughput {ended / wall_s * 60:.0f}/min"
    )
    print(
        f"    per workflow (started → ended): p50 {percentile(durations, 0.5):.1f} s  "
        f"p95 {percentile(durations, 0.95):.1f} s  p99 {percentile(durations, 0.99):.1f} s  "
        f"max {max(durations, default=float('nan')):.1f} s"
    )
    print(
        f"    events: {total_events} ({total_events / per_workflow:.1f} per workflow), "
        f"{total_events / wall_s:.0f}/s over the burst; "
        + ", ".join(f"{kind} {n}" for kind, n in sorted(by_type.items(), key=lambda i: -i[1]))
    )
    failures: Counter[str] = figures["failures"]  # type: ignore[assignment]
    for reason, count in failures.most_common(5):
        print(f"    failed {count}: {reason[:300]}")
    transactions, written = int(str(figures["transactions"])), int(str(figures["rows_written"]))
    print(
        f"    PostgreSQL: {transactions} transactions ({transactions / per_workflow:.0f} per "
        f"workflow, {transactions / wall_s:.0f}/s), {written} rows written "
        f"({written / per_workflow:.0f} per workflow), database grew "
        f"{int(str(figures['bytes'])) / 2**20:.0f} MiB "
        f"({int(str(figures['bytes'])) / per_workflow / 1024:.1f} KiB per workflow)"
    )
    print(
        f"    checks: accounts started {figures['accounts_started']}, started twice "
        f"{figures['accounts_started_twice']}, workflows ended or executed twice "
        f"{figures['doubled_workflows']}, client order ids requested twice "
        f"{figures['doubled_intents']}, broker orders twice {figures['doubled_orders']}; "
        f"signal evaluations {evaluations:.0f} for {arguments.configs} configs, "
        f"SignalComputed {by_type.get('SignalComputed', 0)}"
    )
    consumed: dict[str, Counter[str]] = figures["deliveries"]  # type: ignore[assignment]
    print(
        "    deliveries handled / refused as already handled: "
        + ", ".join(
            f"{name} {counts['handled']}/{counts['duplicate']}"
            for name, counts in sorted(consumed.items())
        )
    )
    findings = broken_checks(figures, accounts, ended, evaluations, arguments.configs)
    print(f"    checks {'FAILED: ' + '; '.join(findings) if findings else 'passed'}")
    print("    CPU s (ms per workflow) and peak memory MiB per process:")
    for name in sorted(cpu):
        print(
            f"      {name:<14} {cpu[name]:8.1f} s  {cpu[name] / per_workflow * 1000:7.1f} ms  "
            f"{rss[name]:7.0f} MiB"
        )
    print(
        f"      {'services':<14} {service_cpu:8.1f} s  {service_cpu / per_workflow * 1000:7.1f} ms"
    )
    print(
        f"      {'postgres':<14} {postgres_cpu:8.1f} s  "
        f"{postgres_cpu / per_workflow * 1000:7.1f} ms  {rss.get('postgres', 0.0):7.0f} MiB  "
        f"({postgres_backends} backends; memory: their summed PSS at its peak)"
    )
    print(
        f"      {'rabbitmq':<14} {rabbit_cpu:8.1f} s  {rabbit_cpu / per_workflow * 1000:7.1f} ms  "
        f"{rss.get('rabbitmq', float('nan')):7.0f} MiB  (the shared server: other users' "
        "traffic included; memory: its RSS at its peak during the burst)"
    )
    print(
        f"      {'load.py':<14} {float(str(figures['client_cpu'])):8.1f} s  "
        f"{float(str(figures['client_cpu'])) / per_workflow * 1000:7.1f} ms  (this benchmark: "
        "the triggers, the polling, the checks)"
    )
    print(
        f"      {'machine':<14} {machine_cpu:8.1f} s  of {wall_s * (os.cpu_count() or 1):.0f} s "
        f"available ({machine_cpu / wall_s:.2f} cores busy)",
        flush=True,
    )
    return findings


def broken_checks(
    figures: dict[str, object], accounts: int, ended: int, evaluations: float, configs: int
) -> list[str]:
    """What the burst got wrong: a run not started, started or ended twice, failed or still
    running at the timeout, an order asked for or placed twice, a signal decided more than once
    per config. Any of these fails the benchmark; its timings never do."""
    outcomes: Counter[str] = figures["outcomes"]  # type: ignore[assignment]
    counts = {
        "accounts not started": accounts - int(str(figures["accounts_started"])),
        "accounts started twice": figures["accounts_started_twice"],
        "workflows ended or executed twice": figures["doubled_workflows"],
        "workflows failed": outcomes["WorkflowFailed"],
        "workflows not ended by --timeout-s": accounts - ended,
        "client order ids requested twice": figures["doubled_intents"],
        "broker orders placed twice": figures["doubled_orders"],
        "signal evaluations beyond one per config": evaluations - min(configs, accounts),
    }
    return [f"{what} {count}" for what, count in counts.items() if float(str(count)) > 0]


def connections_needed(arguments: argparse.Namespace) -> int:
    """The most connections the largest run's processes may hold at once, with room for this
    benchmark's own and the server's reserved ones."""
    extra: int = max(arguments.replicas)
    return (
        sum(CONNECTIONS.values())
        + extra * sum(CONNECTIONS[service] for service in arguments.replicated)
        + CONNECTION_HEADROOM
    )


async def refuse_a_small_server(arguments: argparse.Namespace) -> None:
    """Exits before the first run when the tests' server cannot take every process's pool: the
    processes would fail with "too many clients" mid-burst."""
    connection = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        allowed = int(await connection.fetchval("SHOW max_connections"))
    finally:
        await connection.close()
    needed = connections_needed(arguments)
    if allowed < needed:
        sys.exit(
            f"load benchmark: the PostgreSQL server at {POSTGRES_ADMIN_URL} allows "
            f"{allowed} connections (max_connections); with +{max(arguments.replicas)} "
            f"replicas the services and this benchmark may hold {needed}. Run with "
            "--own-postgres (as `make load` does; needs root or the postgres user and "
            "Debian's pg_createcluster) or point ALCHEMISER_TEST_POSTGRES_URL at a server "
            "with a larger max_connections."
        )


def refuse_without_cluster_tools() -> None:
    """--own-postgres creates a cluster as the postgres user: say so before anything starts."""
    missing = [tool for tool in ("pg_createcluster", "pg_ctlcluster") if not shutil.which(tool)]
    owner = os.geteuid() == 0 or pwd.getpwuid(os.geteuid()).pw_name == "postgres"
    if missing or not owner:
        sys.exit(
            "load benchmark: --own-postgres creates a PostgreSQL cluster with Debian's tools as "
            "the postgres user: "
            + (f"{', '.join(missing)} not on PATH" if missing else "run it as root or postgres")
        )


async def main(arguments: argparse.Namespace) -> None:
    configure_logging("WARNING")
    print("Load benchmark: every account's daily run at the simulated 15:45, all at once")
    print(f"  machine : {platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    print(
        f"  accounts: {arguments.accounts} on {arguments.configs} allocation configs; broker: "
        f"simulated, {arguments.broker_latency_ms} ms per call; replicas {arguments.replicas}"
    )
    scratch = Path(arguments.work_dir)
    clear_runs(scratch)
    bars = sample_bars(scratch / "bars")
    write_configs(scratch / "strategies", arguments.configs, arguments.seed)
    mapping = write_account_mapping(scratch / "strategies", arguments.accounts, arguments.configs)
    broken: list[str] = []
    server: AbstractAsyncContextManager[str]
    if arguments.own_postgres:
        refuse_without_cluster_tools()
        settings = {"max_connections": str(connections_needed(arguments))}
        print(f"  postgres: a server of its own, {settings}, dropped afterwards")
        server = own_server(settings)
    else:
        await refuse_a_small_server(arguments)
        server = nullcontext("")
    try:
        async with server as admin_url:
            for replicas in arguments.replicas:
                broken += await one_load(scratch, bars, arguments, replicas, mapping, admin_url)
    finally:
        clear_runs(scratch)
    if broken:
        sys.exit(f"load benchmark: checks failed: {'; '.join(broken)}")


def clear_runs(scratch: Path) -> None:
    """Removes the clusters' data and the configs of a run; the sample bars are kept for the
    next run (generating them takes a minute)."""
    for child in scratch.glob("*"):
        if child.name != "bars":
            shutil.rmtree(child, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--configs", type=int, default=100)
    parser.add_argument("--broker-latency-ms", type=int, default=50)
    parser.add_argument(
        "--replicas",
        type=int,
        nargs="+",
        default=[0],
        help="extra processes of each `--replicated` service, one fresh cluster per count",
    )
    parser.add_argument(
        "--replicated",
        nargs="+",
        choices=("portfolio", "execution"),
        default=["portfolio", "execution"],
        help="the services `--replicas` adds processes of",
    )
    parser.add_argument("--in-flight", type=int, default=32, help="trigger requests at once")
    parser.add_argument(
        "--timeout-s", type=float, default=1800, help="stop waiting and report what ended"
    )
    parser.add_argument("--seed", type=int, default=16, help="draws the configs")
    parser.add_argument("--profile", type=Path, help="run every service under cProfile, here")
    parser.add_argument("--work-dir", default="/tmp/alchemiser-load")
    parser.add_argument(
        "--own-postgres",
        action="store_true",
        help="run on a PostgreSQL server of its own (Debian's pg_createcluster, as the postgres "
        "user) with max_connections for every process's pool, dropped afterwards",
    )
    asyncio.run(main(parser.parse_args()))
