"""The web dashboard in a real browser: sign in, open the workflows list, open a workflow page,
sign out and be refused — with no console error and no request outside the service."""

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
from tests.browser.chromium import requests
from tests.browser.local_server import served
from tests.integration.web.test_pages import TOKEN, recorded_store

pytestmark = [pytest.mark.browser, pytest.mark.chaos]  # in `make chaos-ci`, not `make test`


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    ids = asyncio.run(recorded_store(url))
    settings = Settings(data_dir=tmp_path, api_token=TOKEN)

    async def no_trigger(account: str) -> tuple[int, str]:
        return 409, "not in this test"

    runtime = ServiceRuntime(
        definition(settings, no_trigger), settings, SqlEventStore(url), InMemoryBus()
    )
    with served(create_app(runtime)) as base:
        yield base, ids


def test_sign_in_browse_a_workflow_and_sign_out(
    browser: Any, dashboard: tuple[str, list[str]]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, ids = dashboard
    browser.get(f"{base}/workflows")
    assert browser.current_url == f"{base}/login"
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, 30).until(lambda driver: driver.current_url == f"{base}/")

    # the read models catch up in the background: the list fills within a few rounds
    def listed(driver: Any) -> bool:
        driver.get(f"{base}/workflows")
        return len(driver.find_elements(By.CSS_SELECTOR, "#workflows tbody a")) == len(ids)

    WebDriverWait(browser, 30, poll_frequency=0.5).until(listed)
    browser.find_element(By.LINK_TEXT, ids[2]).click()
    WebDriverWait(browser, 30).until(lambda driver: driver.find_elements(By.ID, "orders"))
    assert browser.find_element(By.ID, "workflow-status").text == "failed"
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.waterfall rect")) == 4  # the four steps
    assert TOKEN not in browser.page_source and TOKEN not in browser.current_url

    browser.find_element(By.ID, "logout").click()
    WebDriverWait(browser, 30).until(lambda driver: driver.current_url == f"{base}/login")
    browser.get(f"{base}/workflows/{ids[2]}")
    assert browser.current_url == f"{base}/login"  # refused: back to the sign-in page

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    elsewhere = [
        url for url, _ in requests(browser) if not url.startswith((base, "chrome:", "data:"))
    ]
    assert elsewhere == []
