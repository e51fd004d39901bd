"""The web service's real app in process over a SQLite store holding several runs: sign-in,
the pages and their JSON twins read the caught-up read models, the security headers, CSRF on
the one write, and the token never in a page, a URL or a log."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.web import queries
from services.web.session import COOKIE
from shared import market_clock, sent_reports
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.logs import configure_logging
from shared.settings import Settings
from tests.integration.web.history import events_of, record, runs

TOKEN = "web-test-token-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


async def recorded_store(url: str) -> list[str]:
    await upgrade(url)
    store = SqlEventStore(url)
    made = runs()
    try:
        for event in events_of(made):
            await record(store, event)
    finally:
        await store.close()
    return [workflow.id for workflow in made]


def sign_in(client: TestClient) -> str:
    response = client.post(
        "/login",
        content=f"token={TOKEN}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    assert TOKEN not in cookie
    page = client.get("/")
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match is not None
    return match.group(1)


def test_without_a_session_pages_redirect_and_json_is_401(
    started: tuple[TestClient, list[str], list[str]],
) -> None:
    client, ids, _ = started
    for path in ("/", "/workflows", f"/workflows/{ids[0]}", f"/workflows/{ids[0]}/live"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/login", path
    assert client.get("/api/workflows").status_code == 401
    assert client.get("/api/workflows", headers={"Authorization": "Bearer nope"}).status_code == 401
    wrong = client.post(
        "/login",
        content="token=nope",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert wrong.status_code == 401 and COOKIE not in wrong.headers.get("set-cookie", "")
    client.cookies.set(COOKIE, "e30.0000")
    assert client.get("/", follow_redirects=False).status_code == 303  # a forged cookie


def test_pages_show_the_read_models_with_the_security_headers(
    started: tuple[TestClient, list[str], list[str]],
) -> None:
    client, ids, _ = started
    sign_in(client)
    pages = {
        "/": "Account default",
        "/workflows": ids[0],
        "/workflows?status=failed": ids[1],
        f"/workflows/{ids[0]}": "portfolio_analysis",
        f"/workflows/{ids[2]}": "OrderSubmitted",
    }
    for path, expected in pages.items():
        response = client.get(path)
        assert response.status_code == 200, path
        assert expected in response.text, path
        assert TOKEN not in response.text
        headers = response.headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "unsafe-inline" not in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"
        assert "<script>" not in response.text  # every script is a file
    failed = client.get("/workflows?status=failed").text
    assert ids[0] not in failed  # the successful run is filtered out
    assert client.get("/workflows?date=2026-03-02").text.count("/workflows/") >= len(ids)
    assert client.get("/workflows?date=2026-03-03").text.count('href="/workflows/') == 0
    assert client.get("/workflows?date=yesterday").status_code == 422
    detail = client.get(f"/api/workflows/{ids[2]}", headers=BEARER).json()
    assert sorted(o["attempt"] for o in detail["order"]) == [1, 1, 2]  # a re-peg is attempt 2
    assert detail["workflow"][0]["status"] == "failed"
    assert client.get("/static/htmx.min.js").status_code == 200
    assert client.get("/static/uPlot.iife.min.js").status_code == 200
    assert client.get("/static/../pyproject.toml").status_code == 404


def test_the_one_write_needs_the_csrf_token_and_a_confirmation(
    started: tuple[TestClient, list[str], list[str]],
) -> None:
    client, _, asked = started
    csrf = sign_in(client)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert client.post("/trigger", content="confirm=yes", headers=form).status_code == 403
    assert client.post("/trigger", content="csrf=x&confirm=yes", headers=form).status_code == 403
    assert client.post("/trigger", content=f"csrf={csrf}", headers=form).status_code == 400
    assert asked == []
    refused = client.post(
        "/trigger", content=f"csrf={csrf}&confirm=yes&account=default", headers=form
    )
    assert refused.status_code == 409 and "outside the close window" in refused.text
    assert asked == ["default"]


def test_sign_out_ends_the_session(started: tuple[TestClient, list[str], list[str]]) -> None:
    client, _, _ = started
    csrf = sign_in(client)
    out = client.post(
        "/logout",
        content=f"csrf={csrf}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert client.get("/", follow_redirects=False).status_code == 303


def test_health_needs_only_the_database(started: tuple[TestClient, list[str], list[str]]) -> None:
    client, _, _ = started
    assert client.get("/healthz").json()["status"] == "alive"
    assert client.get("/readyz").json() == {"status": "ready", "service": "web"}


def test_the_token_is_in_no_log_line(
    started: tuple[TestClient, list[str], list[str]], capfd: pytest.CaptureFixture[str]
) -> None:
    """Everything the service logs while a client signs in with the token (form and bearer),
    browses and signs out: JSON lines at DEBUG on stderr, as `alchemiser serve` logs."""
    configure_logging("DEBUG", service="web")
    client, ids, _ = started
    csrf = sign_in(client)
    client.get(f"/workflows/{ids[0]}")
    client.get("/api/workflows", headers=BEARER)
    client.get("/api/workflows", headers={"Authorization": "Bearer wrong"})
    client.post(
        "/logout",
        content=f"csrf={csrf}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    out, err = capfd.readouterr()
    assert "/api/workflows" in err  # the requests' URLs were logged
    assert TOKEN not in out + err


def test_the_live_stream_of_an_ended_workflow_says_so_and_ends(
    started: tuple[TestClient, list[str], list[str]],
) -> None:
    client, ids, _ = started
    sign_in(client)
    with client.stream("GET", f"/workflows/{ids[0]}/live") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = "".join(response.iter_text())
    assert body.startswith("event: changed\n") and body.endswith("event: finished\ndata: end\n\n")


def test_the_list_pages_by_keyset_without_losing_or_repeating_a_workflow(
    started: tuple[TestClient, list[str], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, ids, _ = started
    sign_in(client)
    monkeypatch.setattr(queries, "LIST_LIMIT", 2)
    assert len(client.get("/api/workflows").json()) == 2  # a page; all of them page by page:

    seen, path = [], "/workflows"
    while path:
        page = client.get(path).text
        seen += re.findall(r'<td><a href="/workflows/([^"]+)">', page)
        older = re.search(r'href="(/workflows\?[^"]+)" id="older"', page)
        path = older.group(1).replace("&amp;", "&") if older else ""
    assert len(seen) == len(ids) and set(seen) == set(ids)

    listed, url = [], "/api/workflows"
    while url:
        response = client.get(url, headers=BEARER)
        listed += [w["workflow_id"] for w in response.json()]
        link = response.headers.get("link")
        url = link[1 : link.index(">")] if link else ""
    assert listed == seen
    assert client.get("/workflows?before=yesterday").status_code == 422


def test_the_overview_shows_the_services_and_the_next_scheduled_run(
    started: tuple[TestClient, list[str], list[str]],
) -> None:
    """The services at their default addresses (nothing of this test listens there, so each is
    ready or not as the machine has it); the next run is the trigger's next close window."""
    client, _, _ = started
    sign_in(client)
    before = dt.datetime.now(dt.UTC)
    page = client.get("/").text
    after = dt.datetime.now(dt.UTC)
    for service in ("strategy", "portfolio", "execution", "notify"):
        assert f'id="service-{service}"' in page
    assert "http://127.0.0.1:8002" in page and "http://127.0.0.1:8004" in page
    cutoff = market_clock.last_start_cutoff(Settings(api_token=TOKEN))
    windows = {market_clock.next_close_window(moment, cutoff) for moment in (before, after)}
    assert any(
        f"({start.isoformat()}); its last start is {last.isoformat()}." in page
        for start, last in windows
    )


async def keep_report(url: str, workflow_id: str) -> None:
    store = SqlEventStore(url)
    try:
        async with store.unit_of_work() as uow:
            await sent_reports.save(
                uow,
                workflow_id,
                {
                    "subject": "[SUCCESS] Alchemiser - PAPER Trading Report",
                    "text": "Bought <SPY>",
                    "html": (
                        '<!doctype html><html lang="en"><head><title>Report</title></head>'
                        '<body><p style="color: #0a6b2d">Bought SPY</p></body></html>'
                    ),
                    "fallback": False,
                },
            )
    finally:
        await store.close()


def test_the_workflow_page_shows_the_report_as_sent_in_a_sandboxed_frame(
    started: tuple[TestClient, list[str], list[str]], tmp_path: Path
) -> None:
    client, ids, _ = started
    sign_in(client)
    assert "No report recorded" in client.get(f"/workflows/{ids[0]}").text
    assert client.get(f"/workflows/{ids[0]}/email").status_code == 404
    asyncio.run(keep_report(f"sqlite+aiosqlite:///{tmp_path / 'events.db'}", ids[0]))
    page = client.get(f"/workflows/{ids[0]}")
    assert "Subject: [SUCCESS] Alchemiser - PAPER Trading Report" in page.text
    assert f'src="/workflows/{ids[0]}/email" sandbox=""' in page.text
    assert "Bought &lt;SPY&gt;" in page.text  # the text version, escaped
    assert "frame-src 'self'" in page.headers["content-security-policy"]
    email = client.get(f"/workflows/{ids[0]}/email")
    assert '<body><p style="color: #0a6b2d">Bought SPY</p></body>' in email.text
    assert email.headers["x-frame-options"] == "SAMEORIGIN"
    policy = email.headers["content-security-policy"]
    assert "script-src 'none'" in policy and "style-src-attr 'unsafe-hashes' 'sha256-" in policy
