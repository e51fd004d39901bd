"""compose.yaml's application services, run as local processes against the real RabbitMQ and
PostgreSQL: the commands, ports and variables of the file are the ones a user's `docker compose
up` runs (compose host names mapped to 127.0.0.1, the ports as written)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message as MessageHandler

from services import registry
from services.commands.trigger import REFUSED_EXIT_CODE
from tests.deploy.compose_file import ComposeService, application_services, load_compose
from tests.e2e.cluster import port_is_free
from tests.eventually import eventually
from tests.servers import RABBITMQ_URL, delete_bus_namespace, unique_bus_namespace

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ALCHEMISER = str(Path(sys.executable).parent / "alchemiser")
SERVICES = {name.value: service.default_port for name, service in registry.SERVABLE.items()}
MAILPIT_SMTP_PORT = 1025
ONE_SHOTS = ("migrate", "bars")
COMPOSE_DATA_DIR = "/data"


def with_netloc(url: str, *, host: str, port: int, userinfo: str | None, path: str | None) -> str:
    parts = urlsplit(url)
    credentials = f"{userinfo}@" if userinfo else ""
    return urlunsplit(parts._replace(netloc=f"{credentials}{host}:{port}", path=path or parts.path))


@dataclass(frozen=True)
class LocalServers:
    """Where the real servers are, and which fresh database and namespace this run owns."""

    database_url: str
    rabbitmq_url: str
    bus_namespace: str
    data_dir: Path


def local_environment(service: ComposeService, servers: LocalServers) -> dict[str, str]:
    """The service's compose environment with compose host names rewritten to this machine:
    a URL keeps its scheme and port and takes the test server's credentials and database."""
    env = dict(service.environment)
    database = urlsplit(env["ALCHEMISER_DATABASE_URL"])
    assert database.hostname == "postgres", env["ALCHEMISER_DATABASE_URL"]
    assert database.port is not None
    fresh = urlsplit(servers.database_url)
    env["ALCHEMISER_DATABASE_URL"] = with_netloc(
        env["ALCHEMISER_DATABASE_URL"],
        host="127.0.0.1",
        port=database.port,
        userinfo=fresh.netloc.rsplit("@", 1)[0] if "@" in fresh.netloc else None,
        path=fresh.path,
    )
    rabbitmq = urlsplit(env["ALCHEMISER_RABBITMQ_URL"])
    assert rabbitmq.hostname == "rabbitmq", env["ALCHEMISER_RABBITMQ_URL"]
    assert rabbitmq.port is not None
    local = urlsplit(servers.rabbitmq_url)
    env["ALCHEMISER_RABBITMQ_URL"] = with_netloc(
        env["ALCHEMISER_RABBITMQ_URL"],
        host="127.0.0.1",
        port=rabbitmq.port,
        userinfo=local.netloc.rsplit("@", 1)[0] if "@" in local.netloc else None,
        path=local.path,
    )
    assert env["ALCHEMISER_SMTP_HOST"] == "mailpit"
    env["ALCHEMISER_SMTP_HOST"] = "127.0.0.1"
    for name, setting in (
        ("strategy", "ALCHEMISER_STRATEGY_URL"),
        ("portfolio", "ALCHEMISER_PORTFOLIO_URL"),
        ("execution", "ALCHEMISER_EXECUTION_URL"),
        ("notify", "ALCHEMISER_NOTIFY_SERVICE_URL"),
    ):
        service = urlsplit(env[setting])
        assert service.hostname == name and service.port is not None, env[setting]
        env[setting] = f"http://127.0.0.1:{service.port}"
    assert env["ALCHEMISER_DATA_DIR"] == COMPOSE_DATA_DIR, "the data volume is mounted at /data"
    env["ALCHEMISER_DATA_DIR"] = str(servers.data_dir)
    # The compose default, replaced so that test runs sharing one RabbitMQ stay apart.
    env["ALCHEMISER_BUS_NAMESPACE"] = servers.bus_namespace
    inherited = {key: value for key, value in os.environ.items() if key in {"PATH", "HOME", "LANG"}}
    return {**inherited, **env}


def listen_port(service: ComposeService) -> int:
    command = service.command
    assert command[:2] == ["serve", service.name], command
    assert command[command.index("--host") + 1] == "0.0.0.0"
    return int(command[command.index("--port") + 1])


def published_port(service: ComposeService) -> int:
    (mapping,) = service.definition["ports"]
    return int(str(mapping).rsplit(":", 1)[1])


@pytest.fixture
async def compose_ports_free() -> None:
    """The ports compose publishes are fixed; on a shared machine another run may hold them for a
    while, so wait, then fail naming the port rather than with a confusing bind error."""
    for port in (MAILPIT_SMTP_PORT, *SERVICES.values()):
        await eventually(
            lambda port=port: port_is_free(port),
            timeout_s=60,
            interval_s=0.5,
            message=f"port {port} (compose publishes it) to be free on 127.0.0.1",
        )


@pytest.fixture
def smtp_inbox(compose_ports_free: None) -> Iterator[list[str]]:
    """Mailpit's SMTP port as compose writes it (1025), served by aiosmtpd on loopback."""
    subjects: list[str] = []

    class Inbox(MessageHandler):
        def handle_message(self, message: Message) -> None:
            subjects.append(str(message["Subject"]))

    controller = Controller(Inbox(), hostname="127.0.0.1", port=MAILPIT_SMTP_PORT)
    controller.start()
    try:
        yield subjects
    finally:
        controller.stop()


@pytest.fixture
async def bus_namespace(rabbitmq_url: str) -> AsyncIterator[str]:
    namespace = unique_bus_namespace()
    try:
        yield namespace
    finally:
        await delete_bus_namespace(namespace)


async def stop(processes: dict[str, asyncio.subprocess.Process]) -> None:
    """SIGTERM, as compose and Kubernetes stop a container; SIGKILL if one hangs."""
    for process in processes.values():
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    for process in processes.values():
        try:
            await asyncio.wait_for(process.wait(), timeout=20)
        except TimeoutError:
            process.kill()
            await process.wait()


def logs(tmp_path: Path) -> str:
    return "\n".join(
        f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
        for path in sorted(tmp_path.glob("*.log"))
    )


async def test_compose_services_run_a_forced_workflow_to_completion_on_the_real_servers(
    tmp_path: Path, postgres_url: str, bus_namespace: str, smtp_inbox: list[str]
) -> None:
    compose = load_compose()
    services = application_services(compose)
    servers = LocalServers(postgres_url, RABBITMQ_URL, bus_namespace, tmp_path / "data")

    for name in ONE_SHOTS:
        one_shot = await asyncio.create_subprocess_exec(
            ALCHEMISER,
            *services[name].command,
            env=local_environment(services[name], servers),
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(one_shot.communicate(), timeout=120)
        assert one_shot.returncode == 0, f"{name}: {output.decode(errors='replace')}"

    ports = {name: listen_port(services[name]) for name in SERVICES}
    assert ports == SERVICES
    assert {name: published_port(services[name]) for name in SERVICES} == ports

    processes: dict[str, asyncio.subprocess.Process] = {}
    try:
        for name in SERVICES:
            with (tmp_path / f"{name}.log").open("wb") as log:
                processes[name] = await asyncio.create_subprocess_exec(
                    ALCHEMISER,
                    *services[name].command,
                    env=local_environment(services[name], servers),
                    cwd=tmp_path,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                )
        async with httpx.AsyncClient(timeout=5) as client:

            async def answers(port: int, path: str) -> bool:
                if any(process.returncode is not None for process in processes.values()):
                    raise AssertionError(f"a service exited:\n{logs(tmp_path)}")
                try:
                    response = await client.get(f"http://127.0.0.1:{port}{path}")
                except httpx.HTTPError:
                    return False
                return response.status_code == 200

            for port in ports.values():
                for path in ("/healthz", "/readyz"):
                    await eventually(
                        lambda port=port, path=path: answers(port, path),
                        timeout_s=60,
                        interval_s=0.2,
                        message=f"{path} on {port}",
                    )

            token = services["strategy"].environment["ALCHEMISER_API_TOKEN"]
            strategy = f"http://127.0.0.1:{ports['strategy']}/v1/workflows"
            started = await client.post(
                strategy, json={"force": True}, headers={"Authorization": f"Bearer {token}"}
            )
            assert started.status_code == 202, started.text
            workflow_id = started.json()["id"]

            async def finished() -> dict[str, Any] | None:
                body: dict[str, Any] = (await client.get(f"{strategy}/{workflow_id}")).json()
                return body if body["status"] in {"completed", "failed"} else None

            status = await eventually(
                finished, timeout_s=180, interval_s=0.5, message="the workflow to finish"
            )
        assert status["status"] == "completed", f"{status}\n{logs(tmp_path)}"
        assert {event["event_type"] for event in status["events"]} >= {
            "WorkflowStarted",
            "SignalGenerated",
            "RebalancePlanned",
            "TradeExecuted",
            "WorkflowCompleted",
        }
        await eventually(lambda: smtp_inbox, timeout_s=30, message="the run email in Mailpit")
        async with httpx.AsyncClient(timeout=5) as client:
            dashboard = f"http://127.0.0.1:{ports['web']}/api/workflows/{workflow_id}"

            async def on_the_dashboard() -> bool:
                response = await client.get(dashboard, headers={"Authorization": f"Bearer {token}"})
                if response.status_code != 200:
                    return False
                (folded,) = response.json()["workflow"]
                return bool(folded["status"] == "completed")

            await eventually(
                on_the_dashboard, timeout_s=30, interval_s=0.5, message="the run on the dashboard"
            )
        assert "PAPER" in smtp_inbox[0], smtp_inbox
        # The scheduler's call, with its environment, once the forced run is over (two runs at
        # once would share the simulated account's cash): 0 when it starts or finds the day's run
        # (the simulated clock may sit in the close window), 3 when refused outside the window;
        # anything else means its URL or token is wrong.
        scheduled = await asyncio.create_subprocess_exec(
            ALCHEMISER,
            "trigger",
            env=local_environment(services["scheduler"], servers),
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(scheduled.communicate(), timeout=60)
        assert scheduled.returncode in {0, REFUSED_EXIT_CODE}, output.decode(errors="replace")
    finally:
        await stop(processes)
