"""What every dashboard page must pass in a real browser, as one reusable check (the browser
tests call `check_page` on each page they open):

- no console error: the browser log (`goog:loggingPrefs` "browser") holds no SEVERE entry;
- no request leaves 127.0.0.1: every request the page made, read from the DevTools Protocol's
  `Network.requestWillBeSent` events in the "performance" log, goes to the loopback host;
- no serious or critical accessibility violation: axe-core (vendored, tests/browser/vendor)
  injected into the page, `axe.run` over the whole document.

Which requests are the page's: an event that names a frame (`frameId`) or a document load
(`loaderId`) comes from the page or a frame of it; the browser's own background fetches
(component updates, safe browsing...) carry neither and are not the page's doing. With
`--disable-background-networking` there should be none, but they are left out rather than
failing a page for them. Of the page's requests, those whose scheme never leaves the browser
(`data:`, `blob:`, `about:`, `chrome:`, `chrome-extension:`, `devtools:`) are not network
requests; every other one must be to host 127.0.0.1 (`localhost` is not accepted: it may
resolve elsewhere).

Reading a log drains it, so each check sees only what happened since the previous one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
LOCAL_SCHEMES = {"data", "blob", "about", "chrome", "chrome-extension", "devtools"}
BLOCKING_IMPACTS = {"serious", "critical"}

RUN_AXE = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ["violations"]})
  .then(results => done({violations: results.violations.map(v => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5)}))}))
  .catch(error => done({error: String(error)}));
"""


@dataclass
class PageQuality:
    url: str
    console_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)
    violations: list[dict[str, Any]] = field(default_factory=list)
    """Every axe violation, with its impact; only serious and critical ones fail a page."""

    @property
    def blocking(self) -> list[dict[str, Any]]:
        return [v for v in self.violations if v["impact"] in BLOCKING_IMPACTS]

    def problems(self) -> list[str]:
        return [
            *(f"{self.url}: console error: {line}" for line in self.console_errors),
            *(f"{self.url}: request outside 127.0.0.1: {url}" for url in self.outside_requests),
            *(
                f"{self.url}: axe {v['impact']} {v['id']} ({v['help']}) at {v['nodes']}"
                for v in self.blocking
            ),
        ]


def page_requests(performance_log: list[dict[str, Any]]) -> list[str]:
    """The URLs the page (or a frame of it) asked for, from the "performance" log's entries."""
    urls = []
    for entry in performance_log:
        message = json.loads(entry["message"])["message"]
        if message["method"] != "Network.requestWillBeSent":
            continue
        params = message["params"]
        if params.get("frameId") or params.get("loaderId"):
            urls.append(params["request"]["url"])
    return urls


def leaves_the_machine(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme not in LOCAL_SCHEMES and parts.hostname != "127.0.0.1"


def check_page(driver: Any, *, error_page: bool = False) -> PageQuality:
    """The current page's quality since the last check (or since the browser started).

    `error_page`: the page is meant to answer an error status (the 404 of an unknown workflow,
    the 409 of a refused start), which Chromium logs as a SEVERE "network" entry naming the
    page's URL; that one entry is then expected. Any other network failure, and every script
    error, still counts."""
    report = PageQuality(driver.current_url)
    report.console_errors = [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE"
        and not (
            error_page
            and entry.get("source") == "network"
            and entry["message"].startswith(f"{report.url} ")
        )
    ]
    report.outside_requests = [
        url for url in page_requests(driver.get_log("performance")) if leaves_the_machine(url)
    ]
    if not driver.execute_script("return typeof axe !== 'undefined'"):
        # WebDriver's scripts run outside the page's Content-Security-Policy.
        driver.execute_script(AXE.read_text(encoding="utf-8"))
    driver.set_script_timeout(60)
    result = driver.execute_async_script(RUN_AXE)
    assert "error" not in result, f"{report.url}: axe failed: {result.get('error')}"
    report.violations = result["violations"]
    return report
