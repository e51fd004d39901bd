"""The web dashboard served over a SQLite store holding the recorded runs of
tests/integration/web/history.py, for the browser tests, and the steps they share."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from services.web.service import definition
from shared.bus.memory import InMemoryBus
from shared.eventstore.store import SqlEventStore
from shared.service.app import create_app
from shared.service.runtime import ServiceRuntime
from shared.settings import Settings
from tests.browser.local_server import served
from tests.integration.web.test_pages import TOKEN, recorded_store


async def refuse(account: str) -> tuple[int, str]:
    """The strategy service's answer outside the close window, without one."""
    return 409, "outside the close window; the next window opens at the close"


@contextmanager
def dashboard_over(folder: Path) -> Iterator[tuple[str, list[str]]]:
    """(base URL, workflow ids) of a dashboard over freshly recorded runs."""
    url = f"sqlite+aiosqlite:///{folder / 'events.db'}"
    ids = asyncio.run(recorded_store(url))
    settings = Settings(data_dir=folder, api_token=TOKEN)
    runtime = ServiceRuntime(
        definition(settings, refuse), settings, SqlEventStore(url), InMemoryBus()
    )
    with served(create_app(runtime)) as base:
        yield base, ids


def page_paths(
    router: APIRouter, samples: dict[str, str], routes: dict[str, str] | None = None
) -> list[str]:
    """Every HTML page the router serves by GET (not the JSON twins, the static files or the
    live stream), with its path parameters filled from `samples`, or the whole path from
    `routes` where one parameter name means different things on different pages."""
    paths = []
    for route in router.routes:
        path = getattr(route, "path", "")
        if "GET" not in getattr(route, "methods", ()) or path.startswith(("/api/", "/static/")):
            continue
        if path.endswith("/live"):
            continue
        path = (routes or {}).get(path, path)
        for name, value in samples.items():
            path = path.replace(f"{{{name}}}", value)
        assert "{" not in path, f"{path}: add a sample value for its parameter to the test"
        paths.append(path)
    return paths


def sign_in(driver: Any, base: str, token: str = TOKEN) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base}/login")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "sign-in").click()
    WebDriverWait(driver, 30).until(lambda d: d.current_url == f"{base}/")


def wait_until_listed(driver: Any, base: str, count: int) -> None:
    """The read models catch up in the background: the list fills within a few rounds."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def listed(d: Any) -> bool:
        d.get(f"{base}/workflows")
        return len(d.find_elements(By.CSS_SELECTOR, "#workflows tbody a")) == count

    WebDriverWait(driver, 30, poll_frequency=0.5).until(listed)
