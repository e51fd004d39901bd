"""The overview's P&L (the P&L projection kept beside the read models, equal to `pnl_view` over
the same store), its halt banner and per-account halt state, and the kinds in the lists."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.pnl import pnl_view
from services.web.rendering import money, percent
from shared.events.control import TradingResumed
from shared.eventstore.store import SqlEventStore
from tests.integration.web.history import HALT_REASON, HALTED_AT, record
from tests.integration.web.test_pages import sign_in


def store_of(tmp_path: Path) -> SqlEventStore:
    return SqlEventStore(f"sqlite+aiosqlite:///{tmp_path / 'events.db'}")


async def expected_pnl(tmp_path: Path) -> dict[str, str]:
    store = store_of(tmp_path)
    try:
        view = await pnl_view(store, "default")
    finally:
        await store.close()
    assert view is not None
    return {
        "day": money(view.day_pnl, signed=True),
        "total": money(view.pnl, signed=True),
        "realised": money(view.realised, signed=True),
        "unrealised": money(view.unrealised, signed=True),
        "fees": money(view.fees),
        **{
            f"strategy {name}": money(amount, signed=True)
            for name, amount in view.by_strategy.items()
        },
    }


def test_the_overview_shows_the_pnl_of_the_projection_with_its_attribution(
    started: tuple[TestClient, list[str], list[str]], tmp_path: Path
) -> None:
    client, _, _ = started
    sign_in(client)
    expected = asyncio.run(expected_pnl(tmp_path))
    page = client.get("/").text
    figures = page.split('<table class="pnl">')[1].split("</table>")[0]
    cells = [cell.split("</td>")[0] for cell in figures.split("<td>")[1:]]
    assert cells[:5] == [
        expected[name] for name in ("day", "total", "realised", "unrealised", "fees")
    ]
    attribution = page.split('<table class="attribution">')[1].split("</table>")[0]
    for name, amount in expected.items():
        if name.startswith("strategy "):
            assert f"<td>{name.removeprefix('strategy ')}</td><td>{amount}</td>" in attribution
    assert "(unattributed)" in attribution
    assert expected["total"] != "$0.00"  # the fills moved the account


def test_a_halt_shows_as_a_banner_and_on_its_account_until_resumed_for_every_account(
    started: tuple[TestClient, list[str], list[str]], tmp_path: Path
) -> None:
    client, ids, _ = started
    sign_in(client)
    page = client.get("/").text
    assert f"Trading halted for account default since {HALTED_AT}: {HALT_REASON}" in page
    assert f'<p class="halted">Halted since {HALTED_AT}: {HALT_REASON}</p>' in page
    listed = client.get("/workflows").text
    assert f'href="/workflows/{ids[-1]}"' in listed
    assert '<span class="kind liquidation">liquidation</span>' in listed
    assert listed.count("<tr><td>") == len(ids)  # the halt and its announcement are no workflow

    async def resume() -> None:
        store = store_of(tmp_path)
        try:
            await record(
                store,
                TradingResumed(
                    correlation_id=str(uuid.uuid4()),
                    account_id="*",
                    occurred_at=HALTED_AT.replace(hour=23),
                    source="strategy",
                    reason="outage over",
                    requested_by="operator",
                ),
            )
        finally:
            await store.close()

    asyncio.run(resume())
    deadline = time.monotonic() + 30
    while "Trading halted" in (page := client.get("/").text):
        assert time.monotonic() < deadline, "the resume was not folded in"
        time.sleep(0.1)
    assert "Trading allowed." in page and 'class="halted"' not in page


@pytest.mark.parametrize(
    ("value", "signed", "shown"),
    [
        ("99937.72740729", False, "$99,937.73"),
        ("-1234.565", False, "-$1,234.56"),
        ("2.4", True, "+$2.40"),
        ("0E+2", True, "$0.00"),
        (None, False, ""),
    ],
)
def test_money_is_shown_to_the_cent_with_its_sign(
    value: str | None, signed: bool, shown: str
) -> None:
    assert money(value, signed=signed) == shown


@pytest.mark.parametrize(
    ("value", "shown"), [("0E+2", "0.00%"), ("0.123456", "12.35%"), ("1", "100.00%")]
)
def test_a_weight_is_shown_as_a_percentage(value: str, shown: str) -> None:
    assert percent(value) == shown
