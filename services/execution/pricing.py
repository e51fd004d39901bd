"""Limit pricing: which quote to trust, the first limit price, and the re-peg price.

Trading spec §3.5-3.7. Prices are cents, quantised half-even; every function is pure so the
execution state machine can recompute a price from its recorded quote on replay.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from shared.trading import Quote, QuoteSource, Side

CENT = Decimal("0.01")
TICK = CENT
ANCHOR_OFFSET = CENT
REPEG_MIN_IMPROVEMENT = Decimal("0.02")
SUSPICIOUS_SPREAD = Decimal("0.10")
IMBALANCE_LIMIT = Decimal("0.2")
LARGE_ORDER_RATIO = Decimal("0.8")
MEDIUM_ORDER_RATIO = Decimal("0.3")
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


def is_suspicious(quote: Quote) -> bool:
    """The §3.5 step 2 checks: negative, sub-cent, inverted, or a spread over 10 % of the ask."""
    bid, ask = quote.bid, quote.ask
    if bid < 0 or ask < 0 or 0 < bid < CENT or 0 < ask < CENT:
        return True
    if bid > 0 and ask > 0:
        return ask < bid or (ask - bid) / ask > SUSPICIOUS_SPREAD
    return False


def choose_quote(
    stream: Quote | None, rest: Quote | None, now: datetime, max_age_s: float
) -> Quote | None:
    """Pick the quote to price from (§3.5): REST by default, a stream quote only when better.

    The stream quote wins when it is valid, newer than the REST quote and at most `max_age_s`
    old; a suspicious one still yields to a sane REST quote.
    """
    if (
        stream is None
        or not is_valid_quote(stream)
        or (now - stream.as_of).total_seconds() > max_age_s
        or (rest is not None and stream.as_of <= rest.as_of)
    ):
        return rest
    if is_suspicious(stream) and rest is not None and not is_suspicious(rest):
        return rest
    return stream


def initial_limit_price(side: Side, quote: Quote, qty: Decimal) -> Decimal | None:
    """The first limit price (§3.6): sizes-aware from a stream quote, inside-spread from REST.

    None means no positive side to price from, so the order goes to the market path.
    """
    if quote.bid <= 0 and quote.ask <= 0:
        return None
    if quote.source is QuoteSource.STREAM:
        return stream_limit_price(side, quote, qty)
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
    return at_least_a_cent(cents(price))


def stream_limit_price(side: Side, quote: Quote, qty: Decimal) -> Decimal:
    """§3.6 A: step towards the far side as the order eats more of the displayed size.

    The BUY ratio uses `bid_size` and the SELL ratio `ask_size`, as the spec (and the reference)
    define it. Both sides are priced so a SELL is never priced below the BUY.
    """
    buy = stream_buy_price(quote, qty)
    sell = max(stream_sell_price(quote, qty), buy)
    return buy if side is Side.BUY else sell


def book_imbalance(quote: Quote) -> Decimal:
    total = quote.ask_size + quote.bid_size
    return (quote.ask_size - quote.bid_size) / total if total else Decimal(0)


def size_steps(qty: Decimal, displayed_size: Decimal) -> int:
    ratio = qty / max(displayed_size, Decimal(1))
    if ratio > LARGE_ORDER_RATIO:
        return 2
    return 1 if ratio > MEDIUM_ORDER_RATIO else 0


def stream_buy_price(quote: Quote, qty: Decimal) -> Decimal:
    price = quote.bid + TICK * size_steps(qty, quote.bid_size)
    if book_imbalance(quote) < -IMBALANCE_LIMIT:
        price = min(price + TICK, quote.ask - TICK)
    return at_least_a_cent(cents(price))


def stream_sell_price(quote: Quote, qty: Decimal) -> Decimal:
    price = quote.ask - TICK * size_steps(qty, quote.ask_size)
    if book_imbalance(quote) > IMBALANCE_LIMIT:
        price = max(price - TICK, quote.bid + TICK)
    return at_least_a_cent(cents(price))


def at_least_a_cent(price: Decimal) -> Decimal:
    return price if price > 0 else CENT


def repeg_price(
    side: Side,
    anchor: Decimal | None,
    quote: Quote,
    price_history: Sequence[Decimal],
) -> Decimal | None:
    """The crossing re-peg price of §3.7 step 4.4; None means stop tracking, no re-peg.

    Half-way from the anchor to the far side, but at least 0.02 through it, so the re-peg is
    expected to fill. The candidate is quantised before it is compared with the price history
    (which holds cent prices), so a repeated price is caught even when the midpoint had more
    digits than a cent; the bump repeats until the price is new, where the spec bumps once
    (the same with one re-peg, and never a repeated price with more).
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
    if price <= 0:
        price = anchor if anchor is not None and anchor > CENT else CENT
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
    """Whether what is left of an order is too small to chase (§3.7 step 4.2, §8 #24).

    A fractionable remainder is worth less than the minimum notional; a whole-share (or unknown)
    remainder rounds to no share. Without a price a fractionable remainder is chased unless it
    is empty, since its worth is unknown.
    """
    if fractionable:
        if price is None:
            return remaining <= 0
        return cents(remaining * price) < min_notional_usd
    return remaining.quantize(Decimal(1), rounding=ROUND_HALF_EVEN) <= 0


INSUFFICIENT_QTY = re.compile(r"insufficient qty available", re.IGNORECASE)
AVAILABLE_QTY = re.compile(r"available\"?\s*:\s*\"?(-?\d+(?:\.\d+)?)", re.IGNORECASE)


class InsufficientQtyAction(StrEnum):
    RETRY = "retry"
    COMPLETE = "complete"
    FAIL = "fail"


@dataclass(frozen=True)
class InsufficientQtyDecision:
    action: InsufficientQtyAction
    qty: Decimal | None = None


def is_insufficient_qty(message: str) -> bool:
    return INSUFFICIENT_QTY.search(message) is not None


def after_insufficient_qty(message: str) -> InsufficientQtyDecision:
    """What a re-peg does after "insufficient qty available … available: n" (§3.7 step 4.5).

    n ≤ 0.01 means the rest was sold meanwhile (complete); otherwise retry once with n; a
    message without a readable n fails the re-peg.
    """
    match = AVAILABLE_QTY.search(message) if is_insufficient_qty(message) else None
    if match is None:
        return InsufficientQtyDecision(InsufficientQtyAction.FAIL)
    available = Decimal(match.group(1))
    if available <= EXHAUSTED_QTY:
        return InsufficientQtyDecision(InsufficientQtyAction.COMPLETE, available)
    return InsufficientQtyDecision(InsufficientQtyAction.RETRY, available)
