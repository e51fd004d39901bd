"""The dashboard in front of the real system, in a real browser: `alchemiser serve web` beside
the four services (`alchemiser serve strategy|portfolio|execution|notify`, tests/e2e/cluster.py)
on the real RabbitMQ and PostgreSQL, the simulated broker standing at the start of the sample's
last close window, so the trigger is accepted. Sign in; start today's run with the overview's
button (confirmation and CSRF; the strategy service decides); watch the run's page turn
`completed` without a reload (server-sent events); click one of its orders through to the Why
page and find there the branches and indicator values of the run's recorded `SignalGenerated`;
open the report the real `alchemiser backtest` kept; sign out and be refused. Every page passes
the quality check (tests/browser/quality.py).

Bounded: each wait gives up after at most 120 s (a command after 120 s); about 80 s in all
on a loaded machine, most of it the five processes starting and the backtest."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from shared.events.signals import SignalGenerated
from tests.browser.dashboard import sign_in, wait_until_listed
from tests.browser.quality import PageQuality, check_page
from tests.browser.test_backtest_report import chart_pixels
from tests.e2e.cluster import TOKEN, Cluster, sample_bars
from tests.servers import SERVICES

pytestmark = [pytest.mark.browser, pytest.mark.chaos]  # in `make chaos-ci`, not `make test`

BACKTEST_START = "2024-06-03"
SLOW_BROKER = {"ALCHEMISER_SIM_LATENCY_MS": "300"}
"""Every broker call waits 0.3 s, so the run lasts several seconds even on a quiet machine and
the browser finds it running before it completes."""


@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_bars(tmp_path_factory.mktemp("sample-bars"))


def recorded_path(signal: SignalGenerated, symbol: str) -> tuple[list[str], list[str]]:
    """The branches and the indicator values (as the page prints a float) of every strategy
    that selected `symbol`, in the order the Why page lists them."""
    steps = [
        step
        for strategy in signal.strategies
        if strategy.allocation.get(symbol, 0) > 0
        for step in strategy.trace
    ]
    branches = [step.branch for step in steps if step.branch]
    return branches, [str(value) for step in steps for value in step.values.values()]


async def test_start_a_run_watch_it_finish_explain_an_order_and_open_a_backtest(
    browser: Any, tmp_path: Path, bars: Path
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    swapped = [StaleElementReferenceException]  # htmx replaces the body as the run moves on
    reports: list[PageQuality] = []

    async with Cluster(tmp_path, bars, SLOW_BROKER) as cluster:
        await cluster.start_all()
        cluster.start("web")
        await cluster.wait_ready("web")
        backtest = await cluster.alchemiser(
            "backtest", "--format", "json", "--start", BACKTEST_START
        )
        assert backtest.returncode == 0, backtest.stderr.decode()[-3000:]
        (kept,) = (tmp_path / "data" / "backtests").glob("*.html")
        base = cluster.url("web")

        browser.get(f"{base}/")
        assert browser.current_url == f"{base}/login"
        reports.append(check_page(browser))
        sign_in(browser, base, TOKEN)
        states = {
            service: browser.find_element(By.CSS_SELECTOR, f"#service-{service} .readiness")
            for service in SERVICES
        }
        assert all("ready" in e.get_attribute("class").split() for e in states.values()), {
            service: e.text for service, e in states.items()
        }
        reports.append(check_page(browser))

        browser.find_element(By.NAME, "confirm").click()
        browser.find_element(By.ID, "start-run").click()
        started = WebDriverWait(browser, 60).until(
            lambda driver: re.search(r"workflow (\S+) started \(running\)", driver.page_source)
        )
        workflow_id = started.group(1)
        reports.append(check_page(browser))
        wait_until_listed(browser, base, 1)
        reports.append(check_page(browser))

        browser.find_element(By.LINK_TEXT, workflow_id).click()
        first = WebDriverWait(browser, 30, ignored_exceptions=swapped).until(
            lambda driver: driver.find_element(By.ID, "workflow-status").text
        )
        assert first == "running"
        browser.execute_script("window.notReloaded = true;")
        seen_running = time.monotonic()
        WebDriverWait(browser, 120, poll_frequency=0.3, ignored_exceptions=swapped).until(
            lambda driver: driver.find_element(By.ID, "workflow-status").text == "completed"
        )
        assert browser.execute_script("return window.notReloaded === true;")  # the same page
        running_s = time.monotonic() - seen_running
        assert browser.current_url == f"{base}/workflows/{workflow_id}"
        reports.append(check_page(browser))

        order = WebDriverWait(browser, 30, ignored_exceptions=swapped).until(
            lambda driver: driver.find_element(By.CSS_SELECTOR, "#orders a.why")
        )
        symbol = order.text
        order.click()
        WebDriverWait(browser, 30).until(
            lambda driver: driver.current_url == f"{base}/workflows/{workflow_id}/why/{symbol}"
        )
        reports.append(check_page(browser))
        [signal] = [e for e in await cluster.events(workflow_id) if isinstance(e, SignalGenerated)]
        branches, values = recorded_path(signal, symbol)
        assert branches and values, f"{symbol}: no branch or value recorded to compare with"
        assert [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".branch")] == branches
        shown = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".indicator-value")]
        assert shown == values
        print(
            f"\n{workflow_id}: seen running, completed {running_s:.1f} s later on the same page; "
            f"why {symbol}: {len(branches)} branches, {len(values)} indicator values as recorded"
        )

        browser.find_element(By.LINK_TEXT, "Backtests").click()
        row = WebDriverWait(browser, 30).until(
            lambda driver: driver.find_element(By.XPATH, f"//tr[td/a[text()='{kept.stem}']]")
        )
        assert row.find_elements(By.TAG_NAME, "td")[1].text == BACKTEST_START
        reports.append(check_page(browser))
        row.find_element(By.LINK_TEXT, kept.stem).click()
        frame = WebDriverWait(browser, 30).until(
            lambda driver: driver.find_element(By.ID, "report")
        )
        assert frame.get_attribute("sandbox") == "allow-scripts"
        browser.switch_to.frame(frame)
        WebDriverWait(browser, 60).until(  # the report's own inline scripts drew its chart
            lambda driver: (chart_pixels(driver)["chart-equity"] or {}).get("drawn", 0) > 500
        )
        browser.switch_to.default_content()
        reports.append(check_page(browser))

        browser.find_element(By.ID, "logout").click()
        WebDriverWait(browser, 30).until(lambda driver: driver.current_url == f"{base}/login")
        browser.get(f"{base}/workflows/{workflow_id}")
        assert browser.current_url == f"{base}/login"  # refused: back to the sign-in page
        reports.append(check_page(browser))

    assert [problem for report in reports for problem in report.problems()] == []
