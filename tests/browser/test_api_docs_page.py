"""A service's `/docs` in a real browser: Swagger UI renders every operation of the strategy
service and the browser asks nothing of any other host — the page works offline."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.chromium import requests
from tests.browser.local_server import served
from tests.integration.security.service_apps import service_app

pytestmark = pytest.mark.browser


@pytest.fixture
def strategy_url(tmp_path: Path) -> Iterator[str]:
    app, _ = asyncio.run(service_app("strategy", tmp_path))
    with served(app) as url:
        yield url


def test_swagger_ui_renders_every_operation_from_the_service_alone(
    browser: Any, strategy_url: str
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{strategy_url}/docs")
    WebDriverWait(browser, 30).until(
        lambda driver: len(driver.find_elements(By.CSS_SELECTOR, ".opblock")) >= 7
    )
    paths = {
        element.text for element in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    }
    assert "/v1/workflows/{workflow_id}/why/{symbol}" in {
        path.replace("\u200b", "") for path in paths
    }
    assert browser.find_elements(By.CSS_SELECTOR, ".btn.authorize")  # the bearer scheme

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    elsewhere = [
        url
        for url, _ in requests(browser)
        if not url.startswith((strategy_url, "chrome:", "data:"))
    ]
    assert elsewhere == []
