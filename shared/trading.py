"""The trading words every part of the system shares: the side of an order and a top-of-book
quote with its mid. Events, broker adapters, planning, execution and replay all use these, so
a rule such as "the mid of a one-sided quote is its priced side" lives in one place."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from shared.fields import Money, NonNegativeMoney, Symbol, UtcDatetime

_ZERO = Decimal(0)
_TWO = Decimal(2)


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class QuoteSource(StrEnum):
    STREAM = "stream"
    REST = "rest"
    """The broker's latest-quote request; every broker adapter answers with this source."""


class Quote(BaseModel):
    """A top-of-book quote as the broker gave it. A side the feed did not give is 0 (as Alpaca
    reports it); a side is kept as reported, even negative, because whether a quote is usable is
    a rule of planning and pricing, not of the data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: Symbol
    bid: Money
    ask: Money
    bid_size: NonNegativeMoney
    ask_size: NonNegativeMoney
    as_of: UtcDatetime
    source: QuoteSource

    def mid(self) -> Decimal | None:
        """Half-way between bid and ask when both are priced, else the one priced side; None
        when neither side is priced. (The numbers are decimals made once, not ints converted at
        each call: a backtest prices every symbol of every session of every run.)"""
        bid, ask = self.bid, self.ask
        if bid > _ZERO and ask > _ZERO:
            return (bid + ask) / _TWO
        side = max(bid, ask)
        return side if side > _ZERO else None


FLAT_QUOTE_SIZE = Decimal(100)


def flat_quote(symbol: str, price: Decimal, as_of: datetime) -> Quote:
    """A quote without a spread, bid = ask = `price`: how the simulated world's `close` fill
    model and a backtest quote a session's close."""
    return Quote(
        symbol=symbol,
        bid=price,
        ask=price,
        bid_size=FLAT_QUOTE_SIZE,
        ask_size=FLAT_QUOTE_SIZE,
        as_of=as_of,
        source=QuoteSource.REST,
    )
