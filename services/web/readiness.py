"""The four services' readiness on the overview: each one's `/readyz`, polled with a short
timeout and remembered for a few seconds, so a page never waits on a slow or stopped service
for longer than one poll, and most pages not at all (docs/web.md, Pages).

The embedded dashboard (`alchemiser web`) has no services to ask: `alchemiser run` runs them in
its own process, so it shows them as not running as services.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from shared.settings import Settings

POLL_TIMEOUT_S = 0.5
FRESH_S = 5.0
"""How long a poll's answers stand before a page asks again (in the background)."""
EMBEDDED = "embedded: not running as services"


@dataclass(frozen=True)
class Readiness:
    service: str
    url: str
    ready: bool | None
    """None: not asked (the embedded dashboard)."""
    detail: str


SETTINGS = (
    ("strategy", "ALCHEMISER_STRATEGY_URL"),
    ("portfolio", "ALCHEMISER_PORTFOLIO_URL"),
    ("execution", "ALCHEMISER_EXECUTION_URL"),
    ("notify", "ALCHEMISER_NOTIFY_SERVICE_URL"),
)


def service_urls(settings: Settings) -> dict[str, str]:
    return {
        "strategy": settings.strategy_url,
        "portfolio": settings.portfolio_url,
        "execution": settings.execution_url,
        "notify": settings.notify_service_url,
    }


class ReadinessProbe:
    """The latest answers of the services' `/readyz`. The first page waits for one poll; a
    later page gets the answers on hand, and starts a new poll in the background once they are
    older than FRESH_S."""

    def __init__(
        self,
        urls: dict[str, str] | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._urls = urls
        self._clock = clock
        self._tls = ssl.create_default_context()
        """Made once: building it is most of a new client's cost, every FRESH_S."""
        self._answers: list[Readiness] | None = None
        self._polled_at = 0.0
        self._polling: asyncio.Task[None] | None = None

    async def states(self) -> list[Readiness]:
        if self._urls is None:
            return [Readiness(name, "", None, EMBEDDED) for name, _ in SETTINGS]
        stale = self._clock() - self._polled_at >= FRESH_S
        if stale and (self._polling is None or self._polling.done()):
            self._polling = asyncio.create_task(self._poll(self._urls))
        if self._answers is None and self._polling is not None:
            await asyncio.shield(self._polling)
        return self._answers or []

    async def _poll(self, urls: dict[str, str]) -> None:
        async with httpx.AsyncClient(timeout=POLL_TIMEOUT_S, verify=self._tls) as client:
            answers = await asyncio.gather(
                *(_ask(client, name, urls[name].rstrip("/"), setting) for name, setting in SETTINGS)
            )
        self._answers, self._polled_at = list(answers), self._clock()


async def _ask(client: httpx.AsyncClient, service: str, base: str, setting: str) -> Readiness:
    try:
        response = await client.get(f"{base}/readyz")
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        return Readiness(
            service, base, False, f"unreachable ({type(error).__name__}); check {setting}"
        )
    if response.status_code == 200:
        return Readiness(service, base, True, "ready")
    try:
        reason = str(response.json().get("reason", response.text))
    except ValueError:
        reason = response.text[:200]
    return Readiness(service, base, False, f"not ready ({response.status_code}): {reason}")
