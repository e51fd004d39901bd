"""Today's provisional bar (docs/strategy-language.md, Provisional bar): during the session the
strategy decides on today's prices — the latest trade, or the quote mid when there is no trade — as
Composer does."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from decimal import Decimal

from shared.broker.port import Broker

MAX_CONCURRENT_LOOKUPS = 16


class LivePriceError(Exception):
    """A symbol has neither a trade nor a usable quote; the message names it."""


async def live_prices(broker: Broker, symbols: Collection[str]) -> dict[str, Decimal]:
    """The live price of every symbol; any symbol without one fails the lot."""
    gate = asyncio.Semaphore(MAX_CONCURRENT_LOOKUPS)

    async def price_of(symbol: str) -> tuple[str, Decimal | None]:
        async with gate:
            trade = await broker.get_latest_trade(symbol)
            if trade is not None and trade.price > 0:
                return symbol, trade.price
            quote = await broker.get_latest_quote(symbol)
        if quote is None:
            return symbol, None
        sides = [side for side in (quote.bid, quote.ask) if side > 0]
        return symbol, (sum(sides, Decimal(0)) / len(sides)) if sides else None

    found = dict(await asyncio.gather(*(price_of(symbol) for symbol in sorted(symbols))))
    missing = sorted(symbol for symbol, price in found.items() if price is None)
    if missing:
        raise LivePriceError(
            f"no live trade or quote for {', '.join(missing)}; the provisional bar needs one "
            "per symbol (check the market data feed, or run outside the session)"
        )
    return {symbol: price for symbol, price in found.items() if price is not None}
