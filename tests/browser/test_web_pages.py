"""The dashboard's pages in a real browser: sign in, start a run from the overview and watch its
page turn `completed` without a reload (server-sent events), click an order through to its Why
page (a branch and an indicator value), and open a backtest report in its sandboxed frame, whose
inline script runs under the report's own policy — with no console error."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.web.service import definition
from shared.bus.memory import InMemoryBus
from shared.eventstore.store import SqlEventStore
from shared.service.app import create_app
from shared.service.runtime import ServiceRuntime
from shared.settings import Settings
from tests.browser.local_server import served
from tests.integration.web.history import record
from tests.integration.web.test_file_pages import REPORT
from tests.integration.web.test_pages import TOKEN, recorded_store
from tests.unit.notify import workflows

pytestmark = [pytest.mark.browser, pytest.mark.chaos]  # in `make chaos-ci`, not `make test`

REPORT_NAME = "backtest-20260302T120000000000Z-ab12cd34ef56"


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[tuple[str, str]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    asyncio.run(recorded_store(url))
    (tmp_path / "backtests").mkdir()
    (tmp_path / "backtests" / f"{REPORT_NAME}.html").write_text(REPORT)
    settings = Settings(data_dir=tmp_path, api_token=TOKEN)
    run = (
        workflows.Workflow().started().signal().planned().orders_in_flight().executed().completed()
    )
    store = SqlEventStore(url)
    running: list[asyncio.Task[None]] = []

    async def play() -> None:
        """The run's events as the services would record them, a fraction of a second apart."""
        for event in run.events:
            await record(store, event)
            await asyncio.sleep(0.4)

    async def trigger(account: str) -> tuple[int, str]:
        running.append(asyncio.create_task(play()))
        return 202, f"workflow {run.id} started (running)"

    runtime = ServiceRuntime(definition(settings, trigger), settings, store, InMemoryBus())
    with served(create_app(runtime)) as base:
        yield base, run.id


def test_start_a_run_watch_it_finish_explain_an_order_and_open_a_backtest(
    browser: Any, dashboard: tuple[str, str]
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    swapped = [StaleElementReferenceException]  # htmx replaces the body as the run moves on

    base, workflow_id = dashboard
    browser.get(f"{base}/")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, 30).until(lambda driver: driver.current_url == f"{base}/")
    browser.find_element(By.NAME, "confirm").click()
    browser.find_element(By.ID, "start-run").click()
    WebDriverWait(browser, 30).until(lambda driver: workflow_id in driver.page_source)

    def opened(driver: Any) -> bool:
        driver.get(f"{base}/workflows/{workflow_id}")
        return bool(driver.find_elements(By.ID, "workflow-status"))

    WebDriverWait(browser, 30, poll_frequency=0.3).until(opened)
    browser.get_log("browser")  # drained: the polls' 404s while the run was not recorded yet
    first = WebDriverWait(browser, 30, ignored_exceptions=swapped).until(
        lambda driver: driver.find_element(By.ID, "workflow-status").text
    )
    assert first == "running"
    browser.execute_script("window.notReloaded = true;")
    WebDriverWait(browser, 60, poll_frequency=0.3, ignored_exceptions=swapped).until(
        lambda driver: driver.find_element(By.ID, "workflow-status").text == "completed"
    )
    assert browser.execute_script("return window.notReloaded === true;")  # the same page

    def explained(driver: Any) -> bool:
        driver.find_element(By.CSS_SELECTOR, "#orders a.why[href$='/why/TQQQ']").click()
        return "/why/" in driver.current_url

    WebDriverWait(browser, 30, ignored_exceptions=swapped).until(explained)
    branches = [element.text for element in browser.find_elements(By.CSS_SELECTOR, ".branch")]
    values = [
        element.text for element in browser.find_elements(By.CSS_SELECTOR, ".indicator-value")
    ]
    assert "else" in branches and "71.25" in values

    browser.get(f"{base}/backtests")
    browser.find_element(By.LINK_TEXT, REPORT_NAME).click()
    frame = WebDriverWait(browser, 30).until(lambda driver: driver.find_element(By.ID, "report"))
    assert frame.get_attribute("sandbox") == "allow-scripts"
    browser.switch_to.frame(frame)
    WebDriverWait(browser, 30).until(
        lambda driver: driver.find_element(By.TAG_NAME, "body").get_attribute("data-ran") == "yes"
    )
    assert browser.find_element(By.TAG_NAME, "p").text == "drawn"
    browser.switch_to.default_content()

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
