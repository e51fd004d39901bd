"""Per-test departures from the plain simulated world (docs/trading-rules.md, Test scenarios): extra
or restricted assets, fixed or misshapen quotes, symbols whose orders rest or fill by halves,
slow cancels, the account's day-trading standing, and submission faults (429, 5xx, a lost
answer).

A `Scenario` belongs to one broker instance and is not stored: tests and chaos runs set it.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from shared.broker.order_rules import DayTrading
from shared.trading import Quote, QuoteSource


class QuoteShape(StrEnum):
    """How a symbol's quote departs from the derived bid/ask."""

    STALE = "stale"
    """Timestamped ten minutes before the simulated now."""
    ONE_SIDED = "one_sided"
    """No bid: bid and bid size are zero."""
    INVERTED = "inverted"
    """Bid above ask."""
    ZERO = "zero"
    """Bid and ask both zero."""
    WIDE = "wide"
    """A 20 % spread around the last price (over the 10 % that marks a quote suspicious)."""
    MISSING = "missing"
    """No quote at all."""


class SymbolFill(StrEnum):
    """How a symbol's orders fill, overriding `ALCHEMISER_SIM_FILL_MODEL`."""

    IMMEDIATE = "immediate"
    NEVER = "never"
    """Orders rest until cancelled (a passive limit that is never hit)."""
    HALF = "half"
    """Half the quantity (whole shares) fills at once; the rest never does."""
    ON_CANCEL = "on_cancel"
    """Orders rest, then fill completely just before a cancel reaches them ("already filled")."""


class CancelEnd(StrEnum):
    """How a cancel left pending ends."""

    CANCELED = "canceled"
    FILLED = "filled"
    """A fill wins the race: the order fills completely while the cancel is pending."""


@dataclass(frozen=True)
class SlowCancel:
    """A cancel the broker takes (REQUESTED) but leaves `pending_cancel` for `pending_s` seconds
    of the broker's clock, then ends as `end`."""

    pending_s: float
    end: CancelEnd = CancelEnd.CANCELED


class SubmissionFault(StrEnum):
    RATE_LIMITED = "rate_limited"
    """429: nothing is placed."""
    TRANSIENT = "transient"
    """5xx: nothing is placed."""
    RESPONSE_LOST = "response_lost"
    """The order is placed but the answer is lost (a timeout)."""


@dataclass(frozen=True)
class FixedQuote:
    bid: Decimal
    ask: Decimal
    bid_size: Decimal = Decimal(100)
    ask_size: Decimal = Decimal(100)

    def quote(self, symbol: str, as_of: dt.datetime) -> Quote:
        """The quote the broker answers with at `as_of`; its mid is also the symbol's last
        price."""
        return Quote(
            symbol=symbol,
            bid=self.bid,
            ask=self.ask,
            bid_size=self.bid_size,
            ask_size=self.ask_size,
            as_of=as_of,
            source=QuoteSource.REST,
        )


@dataclass
class Scenario:
    listed: set[str] = field(default_factory=set)
    """Assets known besides the bar store's symbols."""
    non_tradable: set[str] = field(default_factory=set)
    non_fractionable: set[str] = field(default_factory=set)
    quotes: dict[str, FixedQuote] = field(default_factory=dict)
    """Quotes given outright instead of derived from the bars."""
    trades: dict[str, Decimal] = field(default_factory=dict)
    """Last prices given outright (the latest trade and the mark of positions)."""
    quote_shapes: dict[str, QuoteShape] = field(default_factory=dict)
    fills: dict[str, SymbolFill] = field(default_factory=dict)
    cancels: dict[str, SlowCancel] = field(default_factory=dict)
    """Symbols whose cancels stay pending for a while (by default a cancel ends at once)."""
    day_trading: DayTrading = field(default_factory=DayTrading)
    """The account's pattern-day-trader flag, day-trade count, day-trading buying power (None:
    reported as the buying power) and previous-close equity (None: today's)."""
    settlement_reads: int = 0
    """Sell proceeds reach cash at the fill but buying power only after this many account
    reads (0: at once), to exercise the buying-power checks between the phases
    (docs/trading-rules.md, Settlement)."""
    faults: deque[SubmissionFault] = field(default_factory=deque)
    """Faults met by the next submissions, one each, in order."""

    def knows(self, symbol: str) -> bool:
        return symbol in self.listed or symbol in self.quotes or symbol in self.trades

    def fail_next_submissions(self, fault: SubmissionFault, times: int = 1) -> None:
        self.faults.extend([fault] * times)

    def next_fault(self) -> SubmissionFault | None:
        return self.faults.popleft() if self.faults else None
