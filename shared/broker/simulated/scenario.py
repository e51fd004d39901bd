"""Per-test departures from the plain simulated world (trading spec §6.2): extra or restricted
assets, fixed or misshapen quotes, symbols whose orders rest or fill by halves, and submission
faults (429, 5xx, a lost answer).

A `Scenario` belongs to one broker instance and is not stored: tests and chaos runs set it.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

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
    settlement_reads: int = 0
    """Sell proceeds reach cash at the fill but buying power only after this many account
    reads (0: at once), to exercise the buying-power checks between the phases (§3.11)."""
    faults: deque[SubmissionFault] = field(default_factory=deque)
    """Faults met by the next submissions, one each, in order."""

    def knows(self, symbol: str) -> bool:
        return symbol in self.listed or symbol in self.quotes or symbol in self.trades

    def fail_next_submissions(self, fault: SubmissionFault, times: int = 1) -> None:
        self.faults.extend([fault] * times)

    def next_fault(self) -> SubmissionFault | None:
        return self.faults.popleft() if self.faults else None
