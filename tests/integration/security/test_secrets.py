"""Secrets never leave their place (issue "Reliability and security", item 5e; DESIGN §6): a
cluster of the four service processes runs a workflow with a known API token and Alpaca-looking
keys in its environment, a poison message is dead-lettered and hostile requests are refused;
then no service log, no row of any table in the database, no dead letter, no error response and
no /metrics page holds any of those values. In paper mode without a token, the generated one
lives only in its 0600 file."""

from __future__ import annotations

import json
import stat
import uuid
from collections.abc import Iterable
from pathlib import Path

import aio_pika
import asyncpg
import httpx
import pytest

from shared.bus.rabbitmq import RabbitMqBus
from shared.service.auth import TOKEN_FILE_NAME
from tests.e2e.cluster import Cluster, sample_bars
from tests.eventually import eventually
from tests.servers import RABBITMQ_URL, SERVICES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

API_TOKEN = "tok-LEAKCHECK-7f3a9c1e5b2d4f60a8e1"
ALPACA_KEY_ID = "PKLEAKCHECK7Q2W9E4R1"
ALPACA_SECRET_KEY = "sk-LEAKCHECK-Zx81Lq0Vb3Nm5Kc7Hd9Fg2Js4Wt6Yr8Ue0Io"
SECRETS = (API_TOKEN, ALPACA_KEY_ID, ALPACA_SECRET_KEY)


@pytest.fixture(scope="session")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_bars(tmp_path_factory.mktemp("sample-bars"))


def leaks(where: str, text: str, secrets: Iterable[str]) -> list[str]:
    return [f"{where} holds {secret[:6]}..." for secret in secrets if secret in text]


def files_holding(root: Path, value: str) -> list[Path]:
    return [
        path for path in root.rglob("*") if path.is_file() and value.encode() in path.read_bytes()
    ]


async def database_dump(database_url: str) -> str:
    """Every row of every table of the cluster's database, as text."""
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
        rows = []
        for table in tables:
            name = table["tablename"]
            rows += [
                record[0] for record in await connection.fetch(f'SELECT t::text FROM "{name}" t')
            ]
        return "\n".join(rows)
    finally:
        await connection.close()


async def dead_letter_dump(namespace: str) -> str:
    bus = RabbitMqBus(RABBITMQ_URL, exchange=f"{namespace}.events")
    await bus.connect()
    try:
        parts = []
        for service in SERVICES:
            for message in await bus.dead_letters(f"{namespace}.{service}"):
                parts.append(message.body.decode("utf-8", errors="replace"))
                parts.append(json.dumps(dict(message.headers)))
        return "\n".join(parts)
    finally:
        await bus.close()


async def publish_poison(namespace: str) -> str:
    message_id = f"poison-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(RABBITMQ_URL)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(f"{namespace}.events", ensure=False)
        await exchange.publish(
            aio_pika.Message(b'{"event_type": "SignalGenerated"', message_id=message_id),
            routing_key="SignalGenerated",
        )
    finally:
        await connection.close()
    return message_id


async def hostile_answers(cluster: Cluster) -> str:
    """Error answers of the strategy service to wrong tokens and bad requests, headers too."""
    base = cluster.url("strategy")
    wrong_tokens = (None, "wrong", API_TOKEN[:-1], API_TOKEN.upper(), ALPACA_SECRET_KEY)
    parts = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for token in wrong_tokens:
            headers = {} if token is None else {"Authorization": f"Bearer {token}"}
            answer = await client.post("/v1/workflows", json={}, headers=headers)
            assert answer.status_code == 401
            parts.append(f"{answer.headers}\n{answer.text}")
        authorised = {"Authorization": f"Bearer {API_TOKEN}"}
        for method, path, body in (
            ("POST", "/v1/workflows", {"account_id": "../etc"}),
            ("POST", "/v1/workflows", {"forse": True}),
            ("GET", "/v1/workflows/no-such-workflow", None),
            ("GET", "/v1/workflows?date=yesterday", None),
        ):
            answer = await client.request(method, path, json=body, headers=authorised)
            assert 400 <= answer.status_code < 500, (path, answer.status_code)
            parts.append(f"{answer.headers}\n{answer.text}")
    return "\n".join(parts)


async def metrics_pages(cluster: Cluster) -> str:
    async with httpx.AsyncClient(timeout=30) as client:
        return "\n".join(
            [(await client.get(f"{cluster.url(s)}/metrics")).text for s in cluster.processes]
        )


async def test_the_token_and_alpaca_keys_appear_in_no_log_event_dead_letter_error_or_metric(
    tmp_path: Path, bars: Path
) -> None:
    settings = {
        "ALCHEMISER_API_TOKEN": API_TOKEN,
        "ALCHEMISER_ALPACA_KEY_ID": ALPACA_KEY_ID,
        "ALCHEMISER_ALPACA_SECRET_KEY": ALPACA_SECRET_KEY,
        "ALCHEMISER_LOG_LEVEL": "DEBUG",
    }
    async with Cluster(tmp_path, bars, settings) as cluster:
        await cluster.start_all()
        started = await cluster.trigger(token=API_TOKEN)
        assert started.status_code == 202, started.text
        workflow_id = started.json()["id"]
        view = await cluster.finished(workflow_id)
        assert view["status"] == "completed", view["failure_reason"]
        await publish_poison(cluster.namespace)
        dead_letters = ""

        async def poison_dead_lettered() -> bool:
            nonlocal dead_letters
            dead_letters += await dead_letter_dump(cluster.namespace)
            # Portfolio's dead letter, with its four x-alchemiser headers.
            return "SignalGenerated" in dead_letters and dead_letters.count("x-alchemiser") >= 4

        await eventually(poison_dead_lettered, timeout_s=60, interval_s=0.5)
        found = leaks("dead letters", dead_letters, SECRETS)
        found += leaks("error answers", await hostile_answers(cluster), SECRETS)
        found += leaks("/metrics", await metrics_pages(cluster), SECRETS)
        found += leaks("workflow view", json.dumps(await cluster.workflow(workflow_id)), SECRETS)
        database = await database_dump(cluster.database_url)
        assert workflow_id in database  # the dump really holds the run
        found += leaks("database", database, SECRETS)
        for service in list(cluster.processes):
            cluster.stop(service)
        for service in SERVICES:
            log = cluster.log_path(service).read_text(encoding="utf-8", errors="replace")
            found += leaks(f"{service}.log", log, SECRETS)
        assert found == []


async def test_a_paper_service_without_a_token_keeps_the_generated_one_only_in_its_private_file(
    tmp_path: Path, bars: Path
) -> None:
    async with Cluster(tmp_path, bars, {"ALCHEMISER_API_TOKEN": ""}) as cluster:
        await cluster.start_all(["strategy"])
        token_path = tmp_path / "data" / TOKEN_FILE_NAME
        token = token_path.read_text(encoding="utf-8").strip()
        assert len(token) >= 32
        assert stat.S_IMODE(token_path.stat().st_mode) == 0o600

        assert (await cluster.trigger(token="not-the-token")).status_code == 401
        started = await cluster.trigger(body={"force": True}, token=token)
        assert started.status_code == 202, started.text
        workflow_id = started.json()["id"]
        await eventually(
            lambda: cluster.events(workflow_id), timeout_s=30, message="WorkflowStarted stored"
        )

        found = leaks("/metrics", await metrics_pages(cluster), [token])
        found += leaks("workflow view", json.dumps(await cluster.workflow(workflow_id)), [token])
        found += leaks("database", await database_dump(cluster.database_url), [token])
        cluster.stop("strategy")
        log = cluster.log_path("strategy").read_text(encoding="utf-8", errors="replace")
        assert str(token_path.resolve()) in log  # the path is said, so the operator finds it
        found += leaks("strategy.log", log, [token])
        assert files_holding(tmp_path, token) == [token_path]
        assert found == []
