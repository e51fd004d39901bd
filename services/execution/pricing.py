"""Limit pricing: which quote is usable, the first limit price, and the re-peg price.

Rules: docs/trading-rules.md, Quotes / Limit pricing / Re-pegging. Prices are cents,
quantised half-even; every function is pure so the execution state machine can recompute a price
from its recorded quote on replay.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal

from shared.trading import Quote, Side

CENT = Decimal("0.01")
ANCHOR_OFFSET = CENT
REPEG_MIN_IMPROVEMENT = Decimal("0.02")
EXHAUSTED_QTY = CENT


def cents(price: Decimal) -> Decimal:
    return price.quantize(CENT, rounding=ROUND_HALF_EVEN)


def rest_quote(quote: Quote) -> Quote | None:
    """The broker's latest quote with a one-sided quote mirrored (its one side on both sides);
    a quote with no side is no quote."""
    present = [side for side in (quote.bid, quote.ask) if side > 0]
    if not present:
        return None
    return quote.model_copy(
        update={
            "bid": quote.bid if quote.bid > 0 else present[0],
            "ask": quote.ask if quote.ask > 0 else present[0],
        }
    )


def usable_quote(quote: Quote | None) -> Quote | None:
    """The broker's latest quote as execution prices from it: a one-sided quote mirrored, and
    None unless the result is valid."""
    mirrored = rest_quote(quote) if quote is not None else None
    return mirrored if mirrored is not None and is_valid_quote(mirrored) else None


def is_valid_quote(quote: Quote) -> bool:
    """Some side is positive and, when both are, the book is not crossed."""
    if quote.bid <= 0 and quote.ask <= 0:
        return False
    return not (quote.bid > 0 and quote.ask > 0 and quote.bid > quote.ask)


def initial_limit_price(side: Side, quote: Quote) -> Decimal | None:
    """The first limit price (docs/trading-rules.md, Limit pricing): one cent inside the touch.

    None means no positive side to price from, so the order goes to the market path. A price
    that comes out at or below zero (a quote under a cent) is returned as it is: the quote is
    bad and the caller asks again, it never becomes a $0.01 limit.
    """
    if quote.bid <= 0 and quote.ask <= 0:
        return None
    return rest_limit_price(side, quote)


def rest_limit_price(side: Side, quote: Quote) -> Decimal:
    """The price from a REST quote: one cent inside the touch, never past the mid of a two-sided
    quote, never crossing the far side."""
    bid, ask = quote.bid, quote.ask
    mid = quote.mid() if bid > 0 and ask > 0 else None
    if side is Side.BUY:
        price = bid + ANCHOR_OFFSET
        if ask > 0 and price >= ask:
            price = max(ask - ANCHOR_OFFSET, bid)
        if mid is not None:
            price = min(price, mid)
    else:
        price = ask - ANCHOR_OFFSET
        if bid > 0 and price <= bid:
            price = min(ask, bid + ANCHOR_OFFSET)
        if mid is not None:
            price = max(price, mid)
    return cents(price)


def last_trade_limit_price(price: Decimal) -> Decimal | None:
    """The limit price from the last trade, when the quote gave none worth sending: the trade
    price to the cent; None when that is not positive."""
    limit = cents(price)
    return limit if limit > 0 else None


def repeg_price(
    side: Side,
    anchor: Decimal | None,
    quote: Quote,
    price_history: Sequence[Decimal],
) -> Decimal | None:
    """The crossing re-peg price (docs/trading-rules.md, Re-pegging); None means stop tracking, no
    re-peg.

    Half-way from the anchor to the far side, but at least 0.02 through it, so the re-peg is
    expected to fill. The candidate is quantised before it is compared with the price history
    (which holds cent prices), so a repeated price is caught even when the midpoint had more
    digits than a cent; the bump repeats until the price is new rather than bumping once (the
    same with one re-peg, and never a repeated price with more;
    docs/decisions.md, "Re-peg prices are rounded before the duplicate-price check").
    """
    if side is Side.BUY:
        price = (
            anchor + (quote.ask - anchor) / 2 if anchor is not None else quote.ask - ANCHOR_OFFSET
        )
        price = cents(max(price, quote.ask + REPEG_MIN_IMPROVEMENT))
        while price in price_history:
            price += REPEG_MIN_IMPROVEMENT
    else:
        price = (
            anchor + (quote.bid - anchor) / 2 if anchor is not None else quote.bid + ANCHOR_OFFSET
        )
        price = cents(min(price, quote.bid - REPEG_MIN_IMPROVEMENT))
        while price in price_history and price > 0:
            price -= REPEG_MIN_IMPROVEMENT
    if price <= 0 and anchor is not None:
        price = anchor
    return price if price > CENT else None


def remainder_reference_price(side: Side, quote: Quote | None) -> Decimal | None:
    """The price a remainder is valued at, to judge whether it is worth chasing: the side we
    would trade against, else the quote's mid."""
    if quote is None:
        return None
    if is_valid_quote(quote):
        far_side = quote.ask if side is Side.BUY else quote.bid
        if far_side > 0:
            return far_side
    return quote.mid()


def remaining_is_negligible(
    remaining: Decimal,
    fractionable: bool,
    price: Decimal | None,
    min_notional_usd: Decimal,
) -> bool:
    """Whether what is left of an order is too small to chase (docs/trading-rules.md, Remainders).

    A fractionable remainder is worth less than the minimum notional; a whole-share (or unknown)
    remainder rounds to no share. Without a price a fractionable remainder is chased unless it
    is empty, since its worth is unknown.
    """
    if fractionable:
        if price is None:
            return remaining <= 0
        return cents(remaining * price) < min_notional_usd
    return remaining.quantize(Decimal(1), rounding=ROUND_HALF_EVEN) <= 0
