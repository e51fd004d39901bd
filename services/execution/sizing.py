"""From a plan item's dollars to a share quantity, and the checks before an order is sent.

Sizing, the pre-flight checks, what a chain may still ask for after partial fills, and the
market-path buying-power check. The plan holds dollars; shares are decided here against the quote
of the moment, so a quantity that the broker would refuse (zero, more than is available, fractional
for a whole-share asset) is caught before it reaches the broker. The rules:
docs/trading-rules.md, Sizing / Pre-flight checks / Partial fills / Market path.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from shared.broker import order_rules
from shared.trading import Side

SHARE_STEP = Decimal("0.000001")
WHOLE_SHARE = Decimal(1)
CENT = Decimal("0.01")

NO_PRICE = "no price"
BELOW_MIN_NOTIONAL = "skipped: estimated notional below minimum"
ROUNDS_TO_ZERO = "quantity rounds to zero"


@dataclass(frozen=True)
class AssetInfo:
    """Broker asset metadata; `None` in its place means the lookup failed or is unknown."""

    tradable: bool
    fractionable: bool


class SizingOutcome(StrEnum):
    SIZED = "sized"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class SizedOrder:
    """A quantity to order, or why none is: a skip is not placed, a failure counts as placed."""

    outcome: SizingOutcome
    qty: Decimal
    reason: str | None = None


def is_liquidation(side: Side, target_weight: Decimal) -> bool:
    """A SELL down to a target weight of 0 closes the position: it sells every share held,
    whatever the price."""
    return side is Side.SELL and target_weight == 0


def size_order(
    *,
    side: Side,
    trade_amount: Decimal,
    liquidation: bool,
    price: Decimal | None,
    position_qty: Decimal | None,
    qty_available: Decimal | None,
    asset: AssetInfo | None,
    min_notional_usd: Decimal,
) -> SizedOrder:
    """Size one plan item (docs/trading-rules.md, Sizing).

    `liquidation` is a SELL whose target weight is 0: it sells exactly the whole position
    whatever the price. Every SELL is capped at `qty_available` (shares not held by other open
    orders), so a price drop since planning cannot over-sell. `price` is the mid of the
    execution quote.
    """
    fractionable = asset is not None and asset.fractionable
    if side is Side.SELL and liquidation:
        return _exact_exit(position_qty, qty_available)
    else:
        if side is Side.BUY and fractionable:
            estimated_notional = abs(trade_amount) if price else Decimal(0)
            if estimated_notional < min_notional_usd:
                return SizedOrder(SizingOutcome.SKIPPED, Decimal(0), BELOW_MIN_NOTIONAL)
        if not price or price <= 0:
            return SizedOrder(SizingOutcome.FAILED, Decimal(0), NO_PRICE)
        raw_qty = abs(trade_amount) / price
    qty = round_quantity(raw_qty, fractionable)
    if side is Side.SELL and qty_available is not None and qty > qty_available:
        qty = truncate_quantity(qty_available, fractionable)
    if qty <= 0:
        return SizedOrder(SizingOutcome.SKIPPED, Decimal(0), ROUNDS_TO_ZERO)
    return SizedOrder(SizingOutcome.SIZED, qty)


def _exact_exit(position_qty: Decimal | None, qty_available: Decimal | None) -> SizedOrder:
    """A position whose target is zero is sold in full: the exact quantity held (capped at what
    open orders leave available), fractional or not, never rounded or floored; a fractional
    holding the broker will not take as an order is closed by the chain instead
    (docs/trading-rules.md, Sizing)."""
    qty = position_qty if position_qty is not None else Decimal(0)
    if qty_available is not None and qty > qty_available:
        qty = qty_available
    if qty <= 0:
        return SizedOrder(SizingOutcome.SKIPPED, Decimal(0), ROUNDS_TO_ZERO)
    return SizedOrder(SizingOutcome.SIZED, qty)


def under_broker_minimum(qty: Decimal, price: Decimal | None) -> bool:
    """A fractional order worth under $1 at the price the broker values it at (its limit, else
    the far side of the quote), which Alpaca refuses; unknown without a price, so then the
    broker has the last word."""
    return (
        order_rules.is_fractional(qty)
        and price is not None
        and price > 0
        and qty * price < order_rules.MINIMUM_NOTIONAL
    )


def round_quantity(qty: Decimal, fractionable: bool) -> Decimal:
    """Six decimals half-even for a fractionable asset; otherwise (or unknown) whole shares down."""
    if fractionable:
        return qty.quantize(SHARE_STEP, rounding=ROUND_HALF_EVEN)
    return qty.quantize(WHOLE_SHARE, rounding=ROUND_FLOOR)


def truncate_quantity(qty: Decimal, fractionable: bool) -> Decimal:
    """Round towards zero, for caps that must never be exceeded."""
    step = SHARE_STEP if fractionable else WHOLE_SHARE
    return qty.quantize(step, rounding=ROUND_DOWN)


class PreflightCode(StrEnum):
    NOT_TRADABLE = "NOT_TRADABLE"
    ZERO_QUANTITY_AFTER_ROUNDING = "ZERO_QUANTITY_AFTER_ROUNDING"
    INVALID_QUANTITY = "INVALID_QUANTITY"


@dataclass(frozen=True)
class PreflightResult:
    """`qty` is the quantity to send (floored for a whole-share asset).

    `asset_unknown` flags an order allowed without checks because the asset lookup failed;
    the caller logs it as a warning.
    """

    valid: bool
    qty: Decimal
    code: PreflightCode | None = None
    message: str | None = None
    asset_unknown: bool = False


def preflight(symbol: str, qty: Decimal, asset: AssetInfo | None) -> PreflightResult:
    """The table of docs/trading-rules.md, Pre-flight checks, checked on both the limit and the
    market path.

    Beyond the table, a quantity ≤ 0 is refused even when the asset is unknown: such an order
    can only be a bug, and the broker would reject it anyway.
    """
    if qty <= 0:
        return PreflightResult(
            valid=False,
            qty=qty,
            code=PreflightCode.INVALID_QUANTITY,
            message=f"quantity {qty} for {symbol} must be positive",
            asset_unknown=asset is None,
        )
    if asset is None:
        return PreflightResult(valid=True, qty=qty, asset_unknown=True)
    if not asset.tradable:
        return PreflightResult(
            valid=False,
            qty=qty,
            code=PreflightCode.NOT_TRADABLE,
            message=f"asset {symbol} is not tradable",
        )
    if asset.fractionable:
        return PreflightResult(valid=True, qty=qty)
    whole = qty.quantize(WHOLE_SHARE, rounding=ROUND_FLOOR)
    if whole <= 0:
        return PreflightResult(
            valid=False,
            qty=whole,
            code=PreflightCode.ZERO_QUANTITY_AFTER_ROUNDING,
            message=f"quantity {qty} for {symbol} floors to 0 whole shares and {symbol} "
            "is not fractionable",
        )
    return PreflightResult(valid=True, qty=whole)


def remaining_quantity(requested: Decimal, filled_total: Decimal) -> Decimal:
    """What a re-peg or market order of a chain may still ask for
    (docs/trading-rules.md, Partial fills).

    `filled_total` is the cumulative fill of every order in the chain, so the chain never asks
    for more than was requested, whatever each child order reports.
    """
    return max(requested - filled_total, Decimal(0))


def spendable_buying_power(
    buying_power: Decimal, daytrading_buying_power: Decimal | None, pattern_day_trader: bool
) -> Decimal:
    """What a BUY may spend (docs/trading-rules.md, Market path): on a margin account the smaller
    of the buying power and the day-trading buying power, since Alpaca refuses a pattern day
    trader's BUY beyond the latter. A day-trading buying power of 0 on an account not flagged
    as a pattern day trader is a cash account's (it cannot day-trade on margin) and is not a
    limit; a flagged account's 0 is."""
    if daytrading_buying_power is None:
        return buying_power
    if daytrading_buying_power > 0 or pattern_day_trader:
        return min(buying_power, daytrading_buying_power)
    return buying_power


def market_buy_shortfall(
    symbol: str, qty: Decimal, mid: Decimal | None, buying_power: Decimal
) -> str | None:
    """The market-path BUY check (docs/trading-rules.md, Market path): the failure text, or None
    when affordable.

    Without a price the cost is unknown, so the check is skipped and the broker has the last
    word.
    """
    if mid is None:
        return None
    estimated_cost = (qty * mid).quantize(CENT, rounding=ROUND_HALF_EVEN)
    if buying_power >= estimated_cost:
        return None
    return (
        f"insufficient buying power for {symbol}: estimated cost=${estimated_cost}, "
        f"available=${buying_power.quantize(CENT, rounding=ROUND_HALF_EVEN)}"
    )
