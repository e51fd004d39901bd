"""Every page of the web dashboard in a real browser passes the quality check
(tests/browser/quality.py: no console error, no request outside 127.0.0.1, no serious or
critical axe-core violation), and the session rules hold from the browser's side: the API token
never in a page or a URL, a write without the CSRF token refused although the session cookie
goes with it, and nothing readable without signing in. (The token in no log line:
tests/integration/web/test_pages.py.)

The pages are the web router's own GET routes, so a page added later is checked without
touching this test (a new path parameter needs a sample value below)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.commands.replay import _save
from services.replay import Decision, ReplayResult
from services.web.pages import web_router
from services.web.readiness import ReadinessProbe
from services.web.session import SessionSigner
from shared.settings import Settings
from tests.browser.dashboard import page_paths, refuse, sign_in, wait_until_listed
from tests.browser.quality import check_page, leaves_the_machine, page_requests
from tests.integration.web.test_file_pages import REPORT
from tests.integration.web.test_pages import TOKEN, keep_report

pytestmark = [pytest.mark.browser, pytest.mark.chaos]  # in `make chaos-ci`, not `make test`

FETCH = """
const done = arguments[arguments.length - 1];
fetch(arguments[0], {method: arguments[1], body: arguments[2],
                     headers: {"Content-Type": "application/x-www-form-urlencoded"}})
  .then(response => done(response.status)).catch(error => done(String(error)));
"""


def kept_files(data_dir: Path, workflow_id: str) -> tuple[str, str]:
    """A backtest report as `alchemiser backtest` keeps it and a replay as `replay --save`
    keeps it, so the Backtests and Replays pages have one each to show; their names."""
    name = "backtest-20260302T120000000000Z-ab12cd34ef56"
    (data_dir / "backtests").mkdir(exist_ok=True)
    (data_dir / "backtests" / f"{name}.html").write_text(REPORT, encoding="utf-8")
    spy = Decision("SPY", "BUY", Decimal("100.00"))
    result = ReplayResult(
        workflow_id=workflow_id,
        started_from="WorkflowStarted",
        targets={},
        recorded_targets={},
        plan=(spy,),
        recorded_plan=(spy,),
        orders=(Decision("SPY", "BUY", Decimal(2)),),
        recorded_orders=(Decision("SPY", "BUY", Decimal(2)),),
    )
    return name, _save(data_dir, result, None, result.differences, shadow=None).stem


def test_every_page_passes_the_quality_check_and_keeps_the_token_out(
    browser: Any, dashboard: tuple[str, list[str]], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, ids = dashboard
    browser.get(f"{base}/login")
    reports = [check_page(browser)]
    sign_in(browser, base)
    wait_until_listed(browser, base, len(ids))
    settings = Settings(api_token=TOKEN)
    router = web_router(
        None,  # type: ignore[arg-type]
        SessionSigner(TOKEN),
        refuse,
        settings,
        ReadinessProbe(None),
    )
    report, replay = kept_files(tmp_path, ids[0])  # the dashboard's data dir
    asyncio.run(keep_report(f"sqlite+aiosqlite:///{tmp_path / 'events.db'}", ids[0]))
    paths = page_paths(
        router,
        {"workflow_id": ids[0], "symbol": "TQQQ"},
        {
            "/strategies/{name}": "/strategies/1-KMLM",
            "/backtests/{name}": f"/backtests/{report}",
            "/backtests/{name}/report": f"/backtests/{report}/report",
            "/replays/{name}": f"/replays/{replay}",
        },
    )
    assert {"/", "/workflows", f"/workflows/{ids[0]}", f"/workflows/{ids[0]}/why/TQQQ"} <= set(
        paths
    )
    for path in [
        *paths,
        *(f"/workflows/{workflow_id}" for workflow_id in ids),
        "/workflows?status=failed",
    ]:
        browser.get(f"{base}{path}")
        reports.append(check_page(browser))
        assert TOKEN not in browser.page_source and TOKEN not in browser.current_url, path

    browser.get(f"{base}/workflows/no-such-workflow")
    reports.append(check_page(browser, error_page=True))  # 404
    browser.get(f"{base}/")
    browser.find_element(By.CSS_SELECTOR, "input[name=confirm]").click()
    browser.find_element(By.ID, "start-run").click()
    WebDriverWait(browser, 30).until(lambda d: "outside the close window" in d.page_source)
    reports.append(check_page(browser, error_page=True))  # the refusal: 409

    assert [problem for report in reports for problem in report.problems()] == []
    minor = {v["id"] for report in reports for v in report.violations}
    print(f"{len(reports)} pages checked; axe's minor and moderate findings: {sorted(minor)}")
    # A write with the session cookie but no CSRF token: refused, the strategy never asked.
    assert browser.execute_async_script(FETCH, "/trigger", "POST", "confirm=yes") == 403
    assert browser.execute_async_script(FETCH, "/logout", "POST", "") == 403


def test_without_a_session_pages_go_to_sign_in_and_json_is_refused(
    browser: Any, dashboard: tuple[str, list[str]]
) -> None:
    base, ids = dashboard
    for path in ("/", "/workflows", f"/workflows/{ids[0]}"):
        browser.get(f"{base}{path}")
        assert browser.current_url == f"{base}/login", path
    browser.get(f"{base}/login")
    assert check_page(browser).problems() == []
    assert browser.execute_async_script(FETCH, "/api/workflows", "GET", None) == 401


def test_the_request_filter_keeps_page_requests_and_drops_background_ones() -> None:
    def sent(url: str, **params: str) -> dict[str, str]:
        message = {"method": "Network.requestWillBeSent", "params": {"request": {"url": url}}}
        message["params"].update(params)  # type: ignore[union-attr]
        return {"message": json.dumps({"message": message})}

    log = [
        sent("http://127.0.0.1:1/", frameId="F", loaderId="L"),
        sent("https://cdn.example.com/x.js", frameId="F", loaderId="L"),
        sent("https://update.googleapis.com/service/update2"),  # the browser's own
        sent("data:image/png;base64,AA", frameId="F", loaderId=""),
    ]
    requested = page_requests(log)
    assert requested == [
        "http://127.0.0.1:1/",
        "https://cdn.example.com/x.js",
        "data:image/png;base64,AA",
    ]
    assert [url for url in requested if leaves_the_machine(url)] == ["https://cdn.example.com/x.js"]
    assert leaves_the_machine("http://localhost:8005/")


def test_the_check_finds_what_it_looks_for(browser: Any) -> None:
    """A page with a nameless button, an image without alt text and no language, which logs a
    console error: the check reports each (so a clean dashboard page is clean, not unchecked)."""
    bad = (
        "<!doctype html><title>bad</title><button></button><img src='data:,'>"
        "<script>console.error('broken')</script>"
    )
    browser.get(f"data:text/html,{bad}")
    report = check_page(browser)
    assert {v["id"] for v in report.blocking} >= {"button-name", "image-alt", "html-has-lang"}
    assert any("broken" in line for line in report.console_errors)
