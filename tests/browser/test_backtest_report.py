"""The backtest report in a real browser: Debian's headless Chromium, driven by Selenium through
Debian's chromedriver. The report is what `alchemiser backtest` writes for the shipped
production config over a year of the synthetic sample's bars. Every chart draws, the page logs
no console error, and the browser makes no request beyond the report file itself (the chart
library is inlined).

Needs /usr/bin/chromium and /usr/bin/chromedriver (`apt-get install -y chromium
chromium-driver`): skipped with that reason on a laptop without them, a failure under CI=true.
With ALCHEMISER_DOCS_SCREENSHOT=1 it also refreshes docs/backtest-report.png.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.backtest.backtest import SYNTHETIC_WARNING
from services.strategy.signals import load_strategy_set
from services.strategy.symphonies import bundled_config
from shared.marketdata.barstore import BarStore
from shared.marketdata.sample import SAMPLE_SOURCE, generate_sample, sample_sessions
from tests.browser.chromium import requests
from tests.cli import run_alchemiser

pytestmark = pytest.mark.browser

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "backtest-report.png"
CHARTS = ("chart-equity", "chart-drawdown", "chart-yearly", "chart-sharpe", "chart-allocation")

CHART_PIXELS = """
const element = document.getElementById(arguments[0]);
const canvas = element && element.querySelector("canvas");
if (!canvas) return null;
const context = canvas.getContext("2d");
const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
let drawn = 0;
for (let i = 0; i < pixels.length; i += 4) {
  const white = pixels[i] > 250 && pixels[i + 1] > 250 && pixels[i + 2] > 250;
  if (pixels[i + 3] > 0 && !white) drawn += 1;
}
return {width: canvas.width, height: canvas.height, drawn: drawn};
"""


SAMPLE_END = datetime(2024, 11, 27, tzinfo=UTC)
SAMPLE_SESSIONS = 620
"""Enough for the production config's longest history (360 sessions) and a year after it."""


def backtest_report(folder: Path) -> tuple[Path, list[str]]:
    """The report `alchemiser backtest` writes for the production config on the sample's bars
    (labelled synthetic in their store), and the run's data warnings."""
    tickers = load_strategy_set(bundled_config(), folder / "cache").tickers | {"SPY"}
    sessions = sample_sessions(SAMPLE_END)[-SAMPLE_SESSIONS:]
    BarStore(folder / "data").write(
        generate_sample(tickers, sessions), synthetic=True, source=SAMPLE_SOURCE
    )
    page = folder / "report.html"
    done = run_alchemiser(folder, "backtest", "--format", "json", "--report", page)
    assert done.returncode == 0, done.stderr[-3000:]
    return page, json.loads(done.stdout)["data_warnings"]


def chart_pixels(driver: Any) -> dict[str, dict[str, int] | None]:
    return {chart: driver.execute_script(CHART_PIXELS, chart) for chart in CHARTS}


def all_drawn(pixels: dict[str, dict[str, int] | None]) -> bool:
    return all(
        p is not None and p["width"] > 0 and p["height"] > 0 and p["drawn"] > 500
        for p in pixels.values()
    )


def test_report_draws_every_chart_offline_without_console_errors(
    browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page, data_warnings = backtest_report(tmp_path)
    assert "Synthetic sample data." in page.read_text(encoding="utf-8")
    assert data_warnings[0] == SYNTHETIC_WARNING
    assert any(warning.startswith("first usable date ") for warning in data_warnings)
    browser.get(page.as_uri())

    WebDriverWait(browser, 30).until(lambda driver: all_drawn(chart_pixels(driver)))
    browser.find_element(By.CSS_SELECTOR, "input[name=equity-scale][value=log]").click()
    WebDriverWait(browser, 30).until(lambda driver: all_drawn(chart_pixels(driver)))
    browser.find_element(By.CSS_SELECTOR, "input[name=equity-scale][value=linear]").click()
    WebDriverWait(browser, 30).until(lambda driver: all_drawn(chart_pixels(driver)))

    browser.save_screenshot(str(tmp_path / "report.png"))
    if os.environ.get("ALCHEMISER_DOCS_SCREENSHOT") == "1":
        browser.save_screenshot(str(DOCS_SCREENSHOT))

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    sent = requests(browser)
    assert {url for url, document in sent if document == page.as_uri()} == {page.as_uri()}
    assert [url for url, _ in sent if not url.startswith(("chrome:", "data:", "file:"))] == []
