"""The overview's readiness of the four services: each one's real `/readyz` (here the web
service's own app, served under uvicorn, stands in for a ready service; a closed port for a
stopped one), answers kept for a few seconds, and the embedded dashboard asking nothing."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.web import readiness
from services.web.readiness import EMBEDDED, ReadinessProbe
from services.web.service import definition
from shared.bus.memory import InMemoryBus
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.service.app import create_app
from shared.service.runtime import ServiceRuntime
from shared.settings import Settings
from tests.browser.local_server import served

TOKEN = "readiness-test-token-0123456789abcdef"


@pytest.fixture
def ready_service(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    asyncio.run(upgrade(url))
    settings = Settings(data_dir=tmp_path, api_token=TOKEN)
    runtime = ServiceRuntime(
        definition(settings, embedded=True), settings, SqlEventStore(url), InMemoryBus()
    )
    with served(create_app(runtime)) as base:
        yield base


def closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


async def test_ready_and_unreachable_services_and_the_answers_kept_a_few_seconds(
    ready_service: str,
) -> None:
    now = [1000.0]
    stopped = closed_port()
    urls = {
        "strategy": ready_service,
        "portfolio": stopped,
        "execution": f"{ready_service}/",
        "notify": stopped,
    }
    probe = ReadinessProbe(urls, clock=lambda: now[0])
    states = {state.service: state for state in await probe.states()}
    assert states["strategy"].ready is True and states["execution"].ready is True
    assert states["portfolio"].ready is False
    assert states["portfolio"].detail == (
        "unreachable (ConnectError); check ALCHEMISER_PORTFOLIO_URL"
    )
    assert states["notify"].detail.endswith("check ALCHEMISER_NOTIFY_SERVICE_URL")

    urls["strategy"] = stopped
    assert {s.service: s.ready for s in await probe.states()}["strategy"] is True  # still fresh
    now[0] += readiness.FRESH_S
    stale = await probe.states()  # answered at once; a poll starts behind it
    assert {s.service: s.ready for s in stale}["strategy"] is True
    for _ in range(100):
        if not {s.service: s.ready for s in await probe.states()}["strategy"]:
            break
        await asyncio.sleep(0.05)
    assert {s.service: s.ready for s in await probe.states()}["strategy"] is False


async def test_the_embedded_dashboard_asks_no_service() -> None:
    states = await ReadinessProbe(None).states()
    assert [state.service for state in states] == ["strategy", "portfolio", "execution", "notify"]
    assert {state.detail for state in states} == {EMBEDDED}
    assert {state.ready for state in states} == {None}
