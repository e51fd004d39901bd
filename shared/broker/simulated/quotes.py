"""Prices of the simulated world, derived from the bar store
(docs/trading-rules.md, Simulated quotes).

last = the close of the symbol's latest bar dated on or before the simulated date; the quote
straddles it by the configured spread, rounded outwards to the cent. Under the `close` fill model
last is the close unrounded and the quote has no spread: bid = ask = last, the prices a backtest
trades at.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from shared.broker.simulated.scenario import QuoteShape
from shared.marketdata.bars import BarSnapshot
from shared.trading import Quote, QuoteSource

CENT = Decimal("0.01")
PRICE_PLACES = Decimal("0.0001")
BPS = Decimal(10_000)
QUOTE_SIZE = Decimal(100)
WIDE_SPREAD = Decimal("0.20")
STALE_AGE = dt.timedelta(minutes=10)


def last_price(
    bars: BarSnapshot, symbol: str, day: dt.date, *, exact: bool = False
) -> Decimal | None:
    """The close of `symbol`'s latest bar on or before `day` (to 4 decimals unless `exact`);
    None without one."""
    close = bars.close_on_or_before(symbol, day)
    if close is None or exact:
        return close
    return close.quantize(PRICE_PLACES)


def derived_quote(symbol: str, last: Decimal, spread_bps: Decimal, at: dt.datetime) -> Quote:
    half = spread_bps / BPS / 2
    return Quote(
        symbol=symbol,
        bid=(last * (1 - half)).quantize(CENT, rounding=ROUND_FLOOR),
        ask=(last * (1 + half)).quantize(CENT, rounding=ROUND_CEILING),
        bid_size=QUOTE_SIZE,
        ask_size=QUOTE_SIZE,
        as_of=at,
        source=QuoteSource.REST,
    )


def shaped_quote(quote: Quote, last: Decimal, shape: QuoteShape) -> Quote | None:
    """`quote` bent into the shape a test asked for."""
    if shape is QuoteShape.MISSING:
        return None
    if shape is QuoteShape.STALE:
        return quote.model_copy(update={"as_of": quote.as_of - STALE_AGE})
    if shape is QuoteShape.ONE_SIDED:
        return quote.model_copy(update={"bid": Decimal(0), "bid_size": Decimal(0)})
    if shape is QuoteShape.INVERTED:
        return quote.model_copy(update={"bid": quote.ask, "ask": quote.bid})
    if shape is QuoteShape.ZERO:
        return quote.model_copy(update={"bid": Decimal(0), "ask": Decimal(0)})
    half = WIDE_SPREAD / 2
    return quote.model_copy(
        update={
            "bid": (last * (1 - half)).quantize(CENT, rounding=ROUND_FLOOR),
            "ask": (last * (1 + half)).quantize(CENT, rounding=ROUND_CEILING),
        }
    )
