"""One apprise URL of `ALCHEMISER_NOTIFY_URLS`: Telegram, Slack, Discord, Teams, ntfy and the
rest through one library made for it (docs/operations.md, Alerts). apprise is synchronous, so a
send runs in a worker thread under a timeout: a slow chat service never holds the event loop, and
so never the other channels."""

from __future__ import annotations

import asyncio
from collections import Counter

import apprise

from services.notify.channels.port import ChannelName, DeliveryError
from services.notify.rendering import RenderedReport

APPRISE_TIMEOUT_S = 20.0
"""Past this a send counts as failed; apprise's own socket timeouts (4 s to connect, 4 s to
read) normally end the thread well before."""


def redacted(url: str) -> str:
    """The URL as apprise prints it in privacy mode (tokens cut to their first and last
    character, passwords as `****`), without the query string, where headers (`+Name=`) and
    payload fields (`:name=`) may carry secrets too."""
    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        # Settings validation refuses such a URL at start; this only keeps the name safe.
        return url.partition("://")[0] + "://…"
    shown: str = plugin.url(privacy=True)  # type: ignore[no-untyped-call]  # apprise is untyped here
    return shown.partition("?")[0]


def targets(urls: list[str]) -> list[str]:
    """Each URL's redacted name, made unique with `#2`, `#3`… where two URLs hide to the same
    text, so every URL keeps its own `NotificationSent` (the key that says it was notified)."""
    names = [redacted(url) for url in urls]
    seen: Counter[str] = Counter()
    unique = []
    for name in names:
        seen[name] += 1
        unique.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return unique


class AppriseNotifier:
    def __init__(self, url: str, target: str, *, timeout_s: float = APPRISE_TIMEOUT_S) -> None:
        self._url = url
        self._target = target
        self._timeout_s = timeout_s

    @property
    def channel(self) -> ChannelName:
        return "apprise"

    @property
    def target(self) -> str:
        return self._target

    def _send_blocking(self, title: str, body: str) -> bool:
        # A plugin per send: several workflows' alerts may go out at once, each on its own thread.
        plugin = apprise.Apprise.instantiate(self._url)
        return plugin is not None and bool(plugin.notify(body=body, title=title))

    async def send(self, report: RenderedReport) -> None:
        try:
            delivered = await asyncio.wait_for(
                asyncio.to_thread(self._send_blocking, report.subject, report.summary),
                self._timeout_s,
            )
        except TimeoutError:
            raise DeliveryError(f"{self._target}: no answer within {self._timeout_s:g} s") from None
        if not delivered:
            raise DeliveryError(
                f"{self._target}: apprise could not deliver (its reason is in the notify "
                "service's log)"
            )
