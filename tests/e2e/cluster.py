"""The distributed system as separate processes on this machine: the four services, each
`alchemiser serve <name>` under uvicorn (and the dashboard, `start("web")`, asking them for
their readiness), against the real RabbitMQ and PostgreSQL, sharing one
data dir (bar store) — for end-to-end, fault and load tests. Every cluster has a database and
a bus namespace of its own, removed when it stops."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from services.strategy.signal_step import bundled_symbols
from shared.events import Event
from shared.eventstore.store import SqlEventStore
from shared.marketdata.sample import ensure_sample
from tests.servers import (
    RABBITMQ_URL,
    SERVICES,
    create_postgres_database,
    delete_bus_namespace,
    drop_postgres_database,
    require_server,
    unique_bus_namespace,
)

REPO = Path(__file__).resolve().parents[2]
TOKEN = "e2e-paper-token-not-a-secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:`port` now."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def smtp_settings(port: int, **extra: str) -> dict[str, str]:
    """Settings that send the services' email to an SMTP sink on loopback `port`."""
    return {
        "ALCHEMISER_SMTP_HOST": "127.0.0.1",
        "ALCHEMISER_SMTP_PORT": str(port),
        "ALCHEMISER_SMTP_STARTTLS": "false",
        "ALCHEMISER_EMAIL_FROM": "alchemiser@example.org",
        "ALCHEMISER_EMAIL_TO": "owner@example.org",
        **extra,
    }


def sample_bars(cache: Path) -> Path:
    """The bundled sample bar store, generated once per test session into `cache`."""
    if not (cache / "bars").exists():
        symbols = bundled_symbols(cache_dir=None)
        ensure_sample(cache, symbols, dt.datetime(2024, 11, 27, 0, 0, tzinfo=dt.UTC))
    return cache


@dataclass
class Cluster:
    work_dir: Path
    bars: Path
    settings: Mapping[str, str] = field(default_factory=dict)
    rabbitmq_url: str = RABBITMQ_URL
    """The broker the services and the test's own checks use (a cluster's balancer, say)."""
    database_url: str = ""
    """Given: a database of the caller's, migrated here and left in place; empty: a new one on
    the test server, dropped when the cluster stops."""
    namespace: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    store: SqlEventStore | None = None
    profile_dir: Path | None = None
    """Set: every service process runs under cProfile and writes `{service}-{port}.prof` here
    when it stops (benchmarks/load.py --profile)."""
    _owns_database: bool = field(default=False, init=False)

    async def __aenter__(self) -> Cluster:
        require_server("RabbitMQ", self.rabbitmq_url)
        self._owns_database = not self.database_url
        if self._owns_database:
            self.database_url = await create_postgres_database()
        self.namespace = unique_bus_namespace()
        data_dir = self.work_dir / "data"
        shutil.copytree(self.bars, data_dir, dirs_exist_ok=True)
        self.ports = {service: free_port() for service in SERVICES}
        result = await self.alchemiser("db", "upgrade")
        if result.returncode != 0:
            raise AssertionError(f"db upgrade failed: {result.stderr.decode()[-2000:]}")
        self.store = SqlEventStore(self.database_url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for service in list(self.processes):
            self.stop(service)
        if self.store is not None:
            await self.store.close()
        await delete_bus_namespace(self.namespace, rabbitmq_url=self.rabbitmq_url)
        if self._owns_database:
            await drop_postgres_database(self.database_url)

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALCHEMISER_")}
        env.update(
            {
                "PYTHONPATH": str(REPO),
                "ALCHEMISER_DATABASE_URL": self.database_url,
                "ALCHEMISER_RABBITMQ_URL": self.rabbitmq_url,
                "ALCHEMISER_BUS_NAMESPACE": self.namespace,
                "ALCHEMISER_DATA_DIR": str(self.work_dir / "data"),
                "ALCHEMISER_API_TOKEN": TOKEN,
                "ALCHEMISER_STRATEGY_URL": self.url("strategy"),
                "ALCHEMISER_PORTFOLIO_URL": self.url("portfolio"),
                "ALCHEMISER_EXECUTION_URL": self.url("execution"),
                "ALCHEMISER_NOTIFY_SERVICE_URL": self.url("notify"),
                **self.settings,
            }
        )
        return env

    async def alchemiser(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.cli",
            *args,
            env=self.environment(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
        return subprocess.CompletedProcess(args, process.returncode or 0, stdout, stderr)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def log_path(self, service: str) -> Path:
        return self.work_dir / f"{service}.log"

    def serve_command(self, service: str, port: int) -> list[str]:
        profiler = (
            ["-m", "cProfile", "-o", str(self.profile_dir / f"{service}-{port}.prof")]
            if self.profile_dir is not None
            else []
        )
        return [
            sys.executable,
            *profiler,
            "-m",
            "services.cli",
            "serve",
            service,
            "--port",
            str(port),
        ]

    def start(self, service: str, *, replica: int = 0) -> str:
        """Starts `service`, or with `replica` > 0 one more process of it consuming from the same
        queue (competing consumers), named `{service}+{replica}` in `processes` and `ports`."""
        name = f"{service}+{replica}" if replica else service
        self.ports.setdefault(name, free_port())
        log = self.log_path(name).open("ab")
        self.processes[name] = subprocess.Popen(
            self.serve_command(service, self.ports[name]),
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return name

    def stop(self, service: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(service, None)
        if process is None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    async def start_all(self, services: Iterable[str] = SERVICES) -> None:
        for service in services:
            self.start(service)
        for service in services:
            await self.wait_ready(service)

    async def wait_ready(self, service: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                process = self.processes[service]
                if process.poll() is not None:
                    raise AssertionError(
                        f"{service} exited with {process.returncode}: "
                        f"{self.log_path(service).read_text()[-3000:]}"
                    )
                try:
                    if (await client.get(f"{self.url(service)}/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"{service} not ready within {timeout_s} s")

    async def trigger(
        self, body: dict[str, Any] | None = None, token: str | None = TOKEN
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.post(
                f"{self.url('strategy')}/v1/workflows", json=body or {}, headers=headers
            )

    async def workflow(self, workflow_id: str) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.get(f"{self.url('strategy')}/v1/workflows/{workflow_id}")
            response.raise_for_status()
            result: dict[str, Any] = response.json()
            return result

    async def finished(self, workflow_id: str, timeout_s: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                view = await self.workflow(workflow_id)
            except httpx.TransportError:
                # Hundreds of pollers on a loaded machine can miss a connect: poll again.
                await asyncio.sleep(1)
                continue
            if view["status"] != "running":
                return view
            await asyncio.sleep(0.2)
        raise AssertionError(f"workflow {workflow_id} still running after {timeout_s} s")

    async def signal_evaluations(self) -> float:
        """The strategy service's own count of the strategy sets it evaluated
        (docs/trading-rules.md, Shared signals)."""
        async with httpx.AsyncClient(timeout=30) as client:
            text = (await client.get(f"{self.url('strategy')}/metrics")).text
        [line] = [
            row
            for row in text.splitlines()
            if row.startswith("alchemiser_signal_evaluations_total ")
        ]
        return float(line.split()[-1])

    async def events(self, workflow_id: str) -> list[Event]:
        assert self.store is not None
        return [recorded.event for recorded in await self.store.read_correlation(workflow_id)]
