"""Screenshots of the web dashboard's pages for docs/dashboard.md (`make docs`):
`docs/dashboard-<page>.png`.

The data is a real embedded run: in a scratch folder, `alchemiser run` twice for account
`default` on the labelled synthetic sample (the first run buys the targets, the second finds
them held; each mailed to a local SMTP sink, so the workflow page shows the email as sent),
`alchemiser backtest` of the bundled config (its report kept under the data dir)
and `alchemiser replay --save` of the first run, then `alchemiser web` over that store, signed
in with a throw-away token, and each page shot by Debian's headless Chromium through
chromedriver (Selenium, a development dependency), with a fresh profile and no background
networking. The simulated clock and the sample make the runs the same each time; only
workflow ids and timestamps differ.

Needs /usr/bin/chromium and /usr/bin/chromedriver (`apt-get install -y chromium
chromium-driver`); without them the script says so and writes nothing.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.browser.chromium import CHROMEDRIVER, CHROMIUM, chromium

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "docs-screenshot-token-not-a-secret"
WIDTH = 1280


SMTP_PORT: list[int] = []
"""The SMTP sink's port, once it listens."""


def environment(folder: Path) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("ALCHEMISER_")}
    mail = (
        {
            "ALCHEMISER_SMTP_HOST": "127.0.0.1",
            "ALCHEMISER_SMTP_PORT": str(SMTP_PORT[0]),
            "ALCHEMISER_SMTP_STARTTLS": "false",
        }
        if SMTP_PORT
        else {}
    )
    return {
        **inherited,
        **mail,
        "PYTHONPATH": str(ROOT),
        "ALCHEMISER_DATA_DIR": str(folder / "data"),
        "ALCHEMISER_API_TOKEN": TOKEN,
    }


@contextmanager
def smtp_sink() -> Iterator[None]:
    """An SMTP server on a free 127.0.0.1 port accepting and dropping every message (aiosmtpd,
    a development dependency)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    SMTP_PORT.append(port)
    try:
        yield
    finally:
        SMTP_PORT.clear()
        controller.stop()


def alchemiser(folder: Path, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=folder,
        env=environment(folder),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"alchemiser {' '.join(args)} failed:\n{done.stderr[-3000:]}")


@contextmanager
def dashboard(folder: Path) -> Iterator[str]:
    """`alchemiser web` on a free port until the block ends; its base URL once /readyz is 200."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "web", "--port", str(port)],
        cwd=folder,
        env=environment(folder),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("alchemiser web did not become ready") from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def browser(profile: Path) -> Any:
    return chromium(profile, f"--window-size={WIDTH},900")


def shoot(driver: Any, url: str, name: str) -> Path:
    """The whole page, 1280 px wide, through the DevTools Protocol (beyond the viewport)."""
    driver.set_window_size(WIDTH, 900)
    driver.get(url)
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    # a frame below the viewport is not painted into the capture: make the viewport the page
    driver.set_window_size(WIDTH, int(metrics["height"]) + 200)
    time.sleep(1)
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": WIDTH, "height": metrics["height"], "scale": 1},
        },
    )
    path = ROOT / "docs" / f"dashboard-{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def first_link(driver: Any, prefix: str) -> str:
    """The first link of the page shown to a page under `prefix`."""
    from selenium.webdriver.common.by import By

    for link in driver.find_elements(By.CSS_SELECTOR, "main a"):
        href = link.get_attribute("href") or ""
        if prefix in href and not href.endswith(prefix):
            return str(href)
    raise SystemExit(f"no link to {prefix}… on {driver.current_url}")


def main() -> int:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        print(
            f"no dashboard screenshots: {' and '.join(missing)} missing; install with "
            "`apt-get install -y chromium chromium-driver` and run `make docs` again",
            file=sys.stderr,
        )
        return 1
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        with smtp_sink():
            alchemiser(folder, "run")
            alchemiser(folder, "run")
        alchemiser(folder, "backtest", "--format", "json")
        with dashboard(folder) as base:
            driver = browser(folder / "profile")
            try:
                written = [shoot(driver, f"{base}/login", "login")]
                driver.find_element(By.ID, "token").send_keys(TOKEN)
                driver.find_element(By.ID, "sign-in").click()

                def both_listed(d: Any) -> bool:
                    d.get(f"{base}/workflows")
                    return len(d.find_elements(By.CSS_SELECTOR, "#workflows tbody a")) == 2

                WebDriverWait(driver, 60, poll_frequency=0.5).until(both_listed)
                first = driver.find_elements(By.CSS_SELECTOR, "#workflows tbody a")[-1]
                workflow = first.get_attribute("href")
                written.append(shoot(driver, f"{base}/", "overview"))
                written.append(shoot(driver, f"{base}/workflows", "workflows"))
                written.append(shoot(driver, workflow, "workflow"))
                why = driver.find_elements(By.CSS_SELECTOR, "a.why")[0].get_attribute("href")
                written.append(shoot(driver, why, "why"))
                written.append(shoot(driver, f"{base}/strategies", "strategies"))
                strategy = first_link(driver, "/strategies/")
                written.append(shoot(driver, strategy, "strategy"))
                written.append(shoot(driver, f"{base}/backtests", "backtests"))
                written.append(shoot(driver, first_link(driver, "/backtests/"), "backtest"))
                # last: the replay records its re-driven workflow under an account of its own
                alchemiser(folder, "replay", "--workflow", workflow.rsplit("/", 1)[1], "--save")
                written.append(shoot(driver, f"{base}/replays", "replays"))
                written.append(shoot(driver, first_link(driver, "/replays/"), "replay"))
            finally:
                driver.quit()
    for path in written:
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
