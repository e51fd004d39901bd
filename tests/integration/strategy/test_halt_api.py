"""`POST /v1/halt` and `POST /v1/resume` (docs/trading-rules.md, Halt): the token, the exact
refusal of a halted account's trigger, resume, the scope of a halt, and a liquidation refused
while the market is closed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.integration.strategy.test_workflows_api import IN_WINDOW, THANKSGIVING, client_for

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for the_client in client_for(tmp_path, sim_now=IN_WINDOW):
        yield the_client


async def test_halt_and_resume_need_the_token(client: httpx.AsyncClient) -> None:
    for path in ("/v1/halt", "/v1/resume"):
        assert (await client.post(path, headers={"Authorization": ""})).status_code == 401
        assert (await client.post(path, headers={"Authorization": "Bearer no"})).status_code == 401
    assert (await client.post("/v1/workflows")).status_code == 202


async def test_a_halted_account_refuses_workflows_until_resumed(
    client: httpx.AsyncClient,
) -> None:
    halted = await client.post("/v1/halt", json={"reason": "fat finger"})
    assert halted.status_code == 202
    answer = halted.json()
    assert answer["account_id"] == "*"
    assert answer["accounts"] == ["default"]
    assert answer["liquidations"] == {} and answer["liquidation_refused"] is None
    for body in ({}, {"force": True}, {"account_id": "acct-2"}):
        refused = await client.post("/v1/workflows", json=body)
        assert refused.status_code == 409
        assert refused.json() == {
            "detail": f"halted since {answer['halted_since']}: fat finger; resume with "
            "`alchemiser resume`"
        }
    resumed = await client.post("/v1/resume", json={"account_id": "acct-2"})
    assert resumed.status_code == 200
    assert resumed.json()["account_id"] == "acct-2"
    assert (await client.post("/v1/workflows", json={"account_id": "acct-2"})).status_code == 202
    assert (await client.post("/v1/workflows")).status_code == 409
    assert (await client.post("/v1/resume")).status_code == 200
    assert (await client.post("/v1/workflows")).status_code == 202


async def test_a_halt_of_one_account_leaves_the_others_trading(
    client: httpx.AsyncClient,
) -> None:
    halted = await client.post("/v1/halt", json={"account_id": "acct-2"})
    assert halted.json()["accounts"] == ["acct-2"]
    assert (await client.post("/v1/workflows")).status_code == 202
    refused = await client.post("/v1/workflows", json={"account_id": "acct-2"})
    assert refused.json()["detail"].endswith(
        "halted through POST /v1/halt; resume with `alchemiser resume`"
    )
    assert (await client.post("/v1/halt", json={"account_id": "bad id"})).status_code == 422


async def test_a_liquidation_outside_the_session_is_refused_but_the_halt_holds(
    tmp_path: Path,
) -> None:
    async for client in client_for(tmp_path, sim_now=THANKSGIVING):
        answer = (await client.post("/v1/halt", json={"liquidate": True})).json()
        assert answer["liquidations"] == {}
        assert answer["liquidation_refused"].startswith("the market is closed at ")
        assert (await client.post("/v1/workflows", json={"force": True})).status_code == 409


async def test_a_liquidation_in_the_session_starts_one_workflow_per_account(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.post("/v1/workflows", json={"account_id": "acct-2"})).status_code == 202
    answer = (await client.post("/v1/halt", json={"liquidate": True})).json()
    assert sorted(answer["liquidations"]) == ["acct-2", "default"]
    view = (await client.get(f"/v1/workflows/{answer['liquidations']['acct-2']}")).json()
    assert view["account_id"] == "acct-2" and view["status"] == "running"
