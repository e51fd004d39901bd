"""Account snapshots for planner tests, written the way a reader states them: qty @ price."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from services.portfolio.snapshot import AccountSnapshot
from shared.trading import Quote, QuoteSource

AS_OF = datetime(2026, 11, 26, 20, 45, tzinfo=UTC)


def quote(symbol: str, bid: Decimal | None, ask: Decimal | None) -> Quote:
    """A latest quote with only its sides given; an absent side is 0, as Alpaca reports it."""
    return Quote(
        symbol=symbol,
        bid=bid or Decimal(0),
        ask=ask or Decimal(0),
        bid_size=Decimal(0),
        ask_size=Decimal(0),
        as_of=AS_OF,
        source=QuoteSource.REST,
    )


def account(
    cash: str,
    held: dict[str, tuple[str, str]] | None = None,
    quoted: dict[str, str] | None = None,
    portfolio_value: str | None = None,
) -> AccountSnapshot:
    """`held` maps symbol → (qty, price); `quoted` adds prices of symbols not held.

    PV defaults to cash plus positions at their prices, as a consistent broker reports it.
    """
    held = held or {}
    prices = {symbol: Decimal(price) for symbol, (_, price) in held.items()}
    prices.update({symbol: Decimal(price) for symbol, price in (quoted or {}).items()})
    positions = {symbol: Decimal(qty) for symbol, (qty, _) in held.items()}
    equity = Decimal(cash) + sum(
        (positions[symbol] * prices[symbol] for symbol in positions), Decimal(0)
    )
    return AccountSnapshot(
        cash=Decimal(cash),
        portfolio_value=Decimal(portfolio_value) if portfolio_value is not None else equity,
        positions=positions,
        quotes={symbol: quote(symbol, price, price) for symbol, price in prices.items()},
    )


def weights(**by_symbol: str) -> dict[str, Decimal]:
    return {symbol: Decimal(weight) for symbol, weight in by_symbol.items()}
