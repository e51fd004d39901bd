"""Debian's headless Chromium driven by Selenium through Debian's chromedriver, for the browser
tests (conftest.py's `browser` fixture): whether they are installed (skipped without them on a
laptop, a failure under CI=true) and the requests a page made.

Needs /usr/bin/chromium and /usr/bin/chromedriver (`apt-get install -y chromium
chromium-driver`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.servers import in_ci

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


HEADLESS_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--hide-scrollbars",
)
"""What Chromium needs headless, as root and on a closed network (no background traffic)."""


def chromium(profile: Path, *flags: str, logs: bool = False) -> Any:
    """A Selenium driver of Debian's Chromium with a fresh profile; `logs` keeps the browser's
    console and the DevTools network events for reading back."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*HEADLESS_FLAGS, *flags, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    if logs:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))


def require_browser() -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if not missing:
        return
    reason = (
        f"{' and '.join(missing)} missing; install with `apt-get install -y chromium "
        "chromium-driver`"
    )
    if in_ci():
        pytest.fail(f"{reason} (CI needs them)", pytrace=False)
    pytest.skip(reason)


def requests(driver: Any) -> list[tuple[str, str]]:
    """Every request the browser sent, as (URL, URL of the document that asked), from the
    DevTools Protocol's network events. Chromium's own start page appears here too, with
    chrome:// URLs; those never leave the browser."""
    sent = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            params = message["params"]
            sent.append((params["request"]["url"], params.get("documentURL", "")))
    return sent
