"""The fill models of the simulated world, `ALCHEMISER_SIM_FILL_MODEL`
(docs/trading-rules.md, Fill models): pure decisions over one order, so every run of a test
fills the same way."""

from __future__ import annotations

import hashlib
from decimal import ROUND_FLOOR, Decimal

from shared.broker.models import OrderType
from shared.trading import Quote, Side

WHOLE_SHARE = Decimal(1)
HALF = Decimal("0.5")
AVERAGE_EXPONENT = -6
AVERAGE_PLACES = Decimal(1).scaleb(AVERAGE_EXPONENT)
_HASH_SPACE = Decimal(2**64)


def rejected_by_rate(client_order_id: str, reject_rate: Decimal) -> bool:
    """Whether the `reject-rate` model refuses this submission: a hash of the client order id
    read as a fraction in [0, 1), below the rate. The same id is always judged the same."""
    digest = hashlib.sha256(client_order_id.encode("utf-8")).digest()
    return Decimal(int.from_bytes(digest[:8], "big")) / _HASH_SPACE < reject_rate


def partial_fill_qty(remaining_qty: Decimal, fraction: Decimal) -> Decimal:
    """What one poll fills under the `partial` model: `fraction` of the remainder in whole
    shares, and the whole remainder once that rounds to nothing, so every order ends."""
    qty = (remaining_qty * fraction).quantize(WHOLE_SHARE, rounding=ROUND_FLOOR)
    return remaining_qty if qty <= 0 else min(qty, remaining_qty)


def average_price(total_value: Decimal, qty: Decimal) -> Decimal:
    """Value per share, exact when it divides out (600.30), else to a millionth of a dollar."""
    average = total_value / qty
    exponent = average.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= AVERAGE_EXPONENT:
        return average
    return average.quantize(AVERAGE_PLACES)


def market_price(side: Side, quote: Quote | None, last: Decimal) -> Decimal:
    """Where a market order fills: the ask for a BUY, the bid for a SELL; the last price when
    that side of the quote is missing or zero."""
    if quote is None:
        return last
    side_price = quote.ask if side is Side.BUY else quote.bid
    return side_price if side_price > 0 else last


def fill_price(
    order_type: OrderType,
    side: Side,
    limit_price: Decimal | None,
    quote: Quote | None,
    last: Decimal,
) -> Decimal:
    """A limit fills at its limit price, a market order at the quote."""
    if order_type is OrderType.LIMIT and limit_price is not None:
        return limit_price
    return market_price(side, quote, last)


def touch_fill_price(
    order_type: OrderType,
    side: Side,
    limit_price: Decimal | None,
    quote: Quote | None,
    last: Decimal,
) -> Decimal | None:
    """Where the `touch` model fills an order at once, or None when it works unfilled.

    A market order, and a limit at or past its own side's touch (a BUY at or above the bid, a
    SELL at or below the ask), fill at the far touch: the ask for a BUY, the bid for a SELL. A
    limit inside the spread therefore fills at once but beyond its limit: the simulated market
    stands still, so it cannot trade through a passive order; it charges at once what such an
    order pays in a real market — the price moving against it — so a trade never shows a gain
    against positions valued at the last price, which lies between bid and ask. A limit further
    out (a BUY below the bid) waits for a market that never moves, and expires at the close."""
    far = market_price(side, quote, last)
    if order_type is not OrderType.LIMIT or limit_price is None:
        return far
    near = far if quote is None else quote.bid if side is Side.BUY else quote.ask
    near = near if near > 0 else far
    reaches = limit_price >= near if side is Side.BUY else limit_price <= near
    return far if reaches else None
