"""The web dashboard in a real browser: sign in, open the workflows list, open a workflow page,
sign out and be refused — with no console error and no request outside the service
(tests/browser/quality.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.dashboard import sign_in, wait_until_listed
from tests.browser.quality import check_page
from tests.integration.web.test_pages import TOKEN

pytestmark = [pytest.mark.browser, pytest.mark.chaos]  # in `make chaos-ci`, not `make test`


def test_sign_in_browse_a_workflow_and_sign_out(
    browser: Any, dashboard: tuple[str, list[str]]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, ids = dashboard
    browser.get(f"{base}/workflows")
    assert browser.current_url == f"{base}/login"
    sign_in(browser, base)
    wait_until_listed(browser, base, len(ids))
    browser.find_element(By.LINK_TEXT, ids[2]).click()
    WebDriverWait(browser, 30).until(lambda driver: driver.find_elements(By.ID, "orders"))
    assert browser.find_element(By.ID, "workflow-status").text == "failed"
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.waterfall rect")) == 4  # the four steps
    assert TOKEN not in browser.page_source and TOKEN not in browser.current_url

    browser.find_element(By.ID, "logout").click()
    WebDriverWait(browser, 30).until(lambda driver: driver.current_url == f"{base}/login")
    browser.get(f"{base}/workflows/{ids[2]}")
    assert browser.current_url == f"{base}/login"  # refused: back to the sign-in page

    # the whole session: no console error, nothing outside 127.0.0.1; axe on the sign-in page
    assert check_page(browser).problems() == []
