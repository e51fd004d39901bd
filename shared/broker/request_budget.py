"""Alpaca's request budget (docs/trading-rules.md, Request budget).

Alpaca allows 200 requests a minute per API key, counted across every process that uses the key.
`ALCHEMISER_ALPACA_REQUESTS_PER_MIN` (180: room for a person's dashboard and clock skew) is split
by a fixed rule between the processes that call Alpaca: strategy 25 % (the live prices of every
strategy symbol), portfolio 25 % (the account and a quote per planned symbol), execution 50 %
(every order's quote, submission, polls and cancels). A process without a service of its own
(`alchemiser data fetch`) takes the strategy's share; an embedded process holds all three, one
per service.

Each process limits itself with aiolimiter's leaky bucket, sized so that no rolling window of
the budget's length holds more than its share: at most half the share at once, the other half
spread over the window (a bucket of capacity C leaking at r admits at most C + r·T requests in
any window T).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from aiolimiter import AsyncLimiter

from shared.settings import Settings

MINUTE_S = 60.0
POLLING_SHARE = 0.5
"""The part of execution's share its polling may use; submissions, cancels and quotes get the
rest."""


class BudgetShare(StrEnum):
    STRATEGY = "strategy"
    PORTFOLIO = "portfolio"
    EXECUTION = "execution"


SHARE_PERCENT = {BudgetShare.STRATEGY: 25, BudgetShare.PORTFOLIO: 25, BudgetShare.EXECUTION: 50}


@dataclass(frozen=True)
class RequestBudget:
    """`requests` in any rolling `window_s` (a minute in production; tests shrink the window)."""

    requests: int
    window_s: float = MINUTE_S

    @classmethod
    def share_of(cls, total: int, share: BudgetShare, window_s: float = MINUTE_S) -> RequestBudget:
        return cls(max(total * SHARE_PERCENT[share] // 100, 2), window_s)

    @classmethod
    def from_settings(cls, settings: Settings, share: BudgetShare) -> RequestBudget:
        return cls.share_of(settings.alpaca_requests_per_min, share)

    def limiter(self) -> AsyncLimiter:
        """One per process and share, shared by every broker instance of that process (a new
        limiter starts empty and would allow a second burst)."""
        burst = self.requests // 2
        return AsyncLimiter(burst, burst * self.window_s / (self.requests - burst))

    def poll_interval_s(self, live_chains: int) -> float:
        """How often each of `live_chains` working chains may poll so that polling alone uses
        at most POLLING_SHARE of this budget."""
        return max(live_chains, 1) * self.window_s / (self.requests * POLLING_SHARE)
