"""The `browser` fixture: a fresh headless Chromium per test (tests/browser/chromium.py); the
`dashboard` fixture: the web dashboard over recorded runs (tests/browser/dashboard.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.chromium import chromium, require_browser
from tests.browser.dashboard import dashboard_over


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    require_browser()
    driver = chromium(tmp_path / "profile", "--disable-sync", "--window-size=1280,2400", logs=True)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    with dashboard_over(tmp_path) as served:
        yield served
