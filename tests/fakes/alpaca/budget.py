"""Every request the loopback receives, counted per API key whichever process sent it, and
Alpaca's per-key request budget: over it, a 429 with Alpaca's `X-RateLimit-*` headers.

Alpaca allows 200 requests a minute per key. The loopback counts always and refuses only when a
test sets a budget (`RateBudget`), usually scaled down (e.g. 20 per 6 s), because tests run a
day's work in seconds. Time here is real (monotonic) time: a budget is about how fast requests
really arrive, whatever the world's clock says.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

ALPACA_REQUESTS_PER_MIN = 200


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    key_id: str = ""
    at_s: float = 0.0
    """Monotonic seconds when it arrived."""


@dataclass(frozen=True)
class RateBudget:
    limit: int = ALPACA_REQUESTS_PER_MIN
    window_s: float = 60.0


def max_in_window(times_s: Iterable[float], window_s: float) -> int:
    """The most requests in any window of `window_s` seconds (a rolling window)."""
    ordered = sorted(times_s)
    most, first = 0, 0
    for last, at_s in enumerate(ordered):
        while at_s - ordered[first] >= window_s:
            first += 1
        most = max(most, last - first + 1)
    return most


@dataclass
class RequestLog:
    requests: list[RecordedRequest] = field(default_factory=list)
    budget: RateBudget | None = None

    def record(self, method: str, path: str, query: dict[str, str], key_id: str) -> None:
        self.requests.append(RecordedRequest(method, path, query, key_id, time.monotonic()))

    def calls(self, method: str, path: str) -> int:
        return sum(1 for r in self.requests if (r.method, r.path) == (method, path))

    def max_in_window(self, key_id: str, window_s: float) -> int:
        return max_in_window((r.at_s for r in self.requests if r.key_id == key_id), window_s)

    def headers(self, key_id: str) -> dict[str, str] | None:
        """Alpaca's rate headers for the request just recorded under `key_id`; None without a
        budget. `X-RateLimit-Reset` is the epoch second at which the oldest request counted
        leaves the window."""
        if self.budget is None:
            return None
        now_s = time.monotonic()
        window = [
            r.at_s
            for r in self.requests
            if r.key_id == key_id and now_s - r.at_s < self.budget.window_s
        ]
        reset_in_s = min(window) + self.budget.window_s - now_s if window else 0.0
        return {
            "X-RateLimit-Limit": str(self.budget.limit),
            "X-RateLimit-Remaining": str(max(self.budget.limit - len(window), 0)),
            "X-RateLimit-Reset": str(int(time.time() + reset_in_s) + 1),
        }

    def over_budget(self, key_id: str) -> bool:
        """Whether the request just recorded is beyond the budget of its window."""
        if self.budget is None:
            return False
        now_s = time.monotonic()
        counted = sum(
            1 for r in self.requests if r.key_id == key_id and now_s - r.at_s < self.budget.window_s
        )
        return counted > self.budget.limit
