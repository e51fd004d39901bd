"""`POST /v1/workflows` and `GET /v1/workflows/{id}`: the token, once per day and account, the
close window (early closes included) and the status as the store's events say it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.strategy.service import definition
from shared.bus.memory import InMemoryBus
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.service.app import create_app
from shared.service.runtime import ServiceRuntime
from shared.settings import Settings

TOKEN = "test-token-for-the-workflow-api"
IN_WINDOW = "2024-11-26T15:50:00"  # New York time, a normal session (close 16:00)
MORNING = "2024-11-26T10:00:00"
THANKSGIVING = "2024-11-28T15:50:00"  # closed; the next session closes early at 13:00
AFTER_LAST_START = "2024-11-26T15:53:01"  # the close guard's margin and the last start: 15:53


async def client_for(tmp_path: Path, **settings: object) -> AsyncIterator[httpx.AsyncClient]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    await upgrade(url)
    config = Settings(data_dir=tmp_path, api_token=TOKEN, **settings)
    store = SqlEventStore(url)
    runtime = ServiceRuntime(definition(config), config, store, InMemoryBus())
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://strategy") as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield client
    await store.close()


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for the_client in client_for(tmp_path, sim_now=IN_WINDOW):
        yield the_client


async def test_a_trigger_without_the_token_is_refused(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/workflows", headers={"Authorization": ""})).status_code == 401
    wrong = await client.post("/v1/workflows", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


async def test_a_new_run_is_accepted_and_a_repeat_the_same_day_returns_it(
    client: httpx.AsyncClient,
) -> None:
    first = await client.post("/v1/workflows")
    assert first.status_code == 202
    assert first.json()["status"] == "running"
    again = await client.post("/v1/workflows", json={})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    forced = await client.post("/v1/workflows", json={"force": True})
    assert forced.status_code == 202
    assert forced.json()["id"] != first.json()["id"]
    other_account = await client.post("/v1/workflows", json={"account_id": "acct-2"})
    assert other_account.status_code == 202


async def test_racing_triggers_start_exactly_one_run(client: httpx.AsyncClient) -> None:
    answers = await asyncio.gather(*(client.post("/v1/workflows") for _ in range(5)))
    assert sorted(answer.status_code for answer in answers) == [200, 200, 200, 200, 202]
    assert len({answer.json()["id"] for answer in answers}) == 1


async def test_the_status_shows_the_run_and_its_events(client: httpx.AsyncClient) -> None:
    workflow_id = (await client.post("/v1/workflows")).json()["id"]
    view = (await client.get(f"/v1/workflows/{workflow_id}")).json()
    assert view["id"] == workflow_id
    assert view["account_id"] == "default"
    assert view["status"] == "running"
    assert view["started_at"] and view["finished_at"] is None and view["failure_reason"] is None
    assert [event["event_type"] for event in view["events"]] == ["WorkflowStarted"]
    assert (await client.get("/v1/workflows/no-such-id")).status_code == 404


@pytest.mark.parametrize(
    ("sim_now", "next_window_start"),
    [
        (MORNING, "2024-11-26T15:45:00-05:00"),
        (THANKSGIVING, "2024-11-29T12:45:00-05:00"),
        (AFTER_LAST_START, "2024-11-27T15:45:00-05:00"),
    ],
    ids=["before-the-window", "holiday-then-early-close", "after-the-last-start"],
)
async def test_outside_the_close_window_a_trigger_is_refused_naming_the_next_window(
    tmp_path: Path, sim_now: str, next_window_start: str
) -> None:
    async for client in client_for(tmp_path, sim_now=sim_now):
        refused = await client.post("/v1/workflows")
        assert refused.status_code == 409
        assert refused.json()["next_window"]["start"] == next_window_start
        assert "force" in refused.json()["detail"]
        forced = await client.post("/v1/workflows", json={"force": True})
        assert forced.status_code == 202


async def test_the_alpaca_broker_serves_only_the_default_account(tmp_path: Path) -> None:
    async for client in client_for(tmp_path, broker="alpaca"):
        refused = await client.post("/v1/workflows", json={"force": True, "account_id": "x"})
        assert refused.status_code == 422
        assert "'default'" in refused.text


async def test_an_unknown_field_in_the_body_is_refused(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/workflows", json={"forse": True})
    assert answer.status_code == 422


async def test_the_runs_of_a_trading_date_are_listed(client: httpx.AsyncClient) -> None:
    first = (await client.post("/v1/workflows")).json()["id"]
    second = (await client.post("/v1/workflows", json={"force": True})).json()["id"]
    listed = await client.get("/v1/workflows", params={"date": "2024-11-26"})
    assert listed.status_code == 200
    assert [run["id"] for run in listed.json()] == [first, second]
    assert (await client.get("/v1/workflows", params={"date": "2024-11-25"})).json() == []
    assert (await client.get("/v1/workflows", params={"date": "yesterday"})).status_code == 422


async def test_a_dry_run_starts_outside_the_window_and_leaves_the_days_run_key_alone(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """(docs/trading-rules.md, Dry runs)"""
    async for client in client_for(tmp_path_factory.mktemp("morning"), sim_now=MORNING):
        assert (await client.post("/v1/workflows")).status_code == 409
        dry = await client.post("/v1/workflows", json={"dry_run": True})
        assert dry.status_code == 202
        assert dry.json()["id"].startswith("dry-run-")
        again = await client.post("/v1/workflows", json={"dry_run": True, "email": True})
        assert again.status_code == 202 and again.json()["id"] != dry.json()["id"]
        view = (await client.get(f"/v1/workflows/{dry.json()['id']}")).json()
        assert (view["kind"], view["dry_run"], view["status"]) == ("dry_run", True, "running")
    async for client in client_for(tmp_path_factory.mktemp("window"), sim_now=IN_WINDOW):
        dry = (await client.post("/v1/workflows", json={"dry_run": True})).json()["id"]
        run = await client.post("/v1/workflows")
        assert run.status_code == 202, "the dry run must not count as the day's run"
        assert (await client.post("/v1/workflows")).json()["id"] == run.json()["id"]
        listed = (await client.get("/v1/workflows", params={"date": "2024-11-26"})).json()
        assert [(each["id"], each["kind"]) for each in listed] == [
            (dry, "dry_run"),
            (run.json()["id"], "trading"),
        ]
        shown = (await client.get(f"/v1/workflows/{dry}", params={"payloads": True})).json()
        started = shown["events"][0]
        assert started["schema_version"] == 2
        assert started["payload"]["workflow_type"] == "dry_run"
        assert started["payload"]["notify"] is False


async def test_email_changes_nothing_for_a_run_which_is_always_reported(
    client: httpx.AsyncClient,
) -> None:
    started = await client.post("/v1/workflows", json={"email": True})
    assert started.status_code == 202
    shown = await client.get(f"/v1/workflows/{started.json()['id']}", params={"payloads": True})
    payload = shown.json()["events"][0]["payload"]
    assert (payload["workflow_type"], payload["notify"]) == ("trading", True)
