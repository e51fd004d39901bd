"""The account as the planner sees it, and the checks that make it safe to plan from.

The snapshot is recorded on `RebalancePlanned` so a replay plans from exactly the same inputs;
that is why it holds raw quotes rather than prices: the mid rule below is part of planning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from shared.trading import Quote

CENT = Decimal("0.01")
QUOTE_FLOOR = Decimal("0.0001")


class PlanningError(Exception):
    """The plan cannot be made; the message names the symbol, field or value at fault."""


class InvalidPriceError(PlanningError):
    """A symbol to be planned has no usable quote (docs/trading-rules.md, Planning prices)."""

    def __init__(self, symbol: str, detail: str) -> None:
        super().__init__(f"Invalid price for {symbol}: {detail}")
        self.symbol = symbol


class InvalidSnapshotError(PlanningError):
    """The account reading is inconsistent: a short position or negative equity."""


class NonPositiveCashError(PlanningError):
    """Cash is zero or negative and the liquidation switch is off
    (docs/trading-rules.md, Non-positive cash)."""

    def __init__(self, cash: Decimal) -> None:
        super().__init__(
            f"cash is {format_dollars(cash)} and liquidation on non-positive cash is off; "
            "deposit cash or set ALCHEMISER_LIQUIDATE_ON_NON_POSITIVE_CASH=true to close "
            "every position first"
        )
        self.cash = cash


@dataclass(frozen=True)
class AccountSnapshot:
    """Cash, broker equity, position quantities (`qty`, not `qty_available`) and quotes."""

    cash: Decimal
    portfolio_value: Decimal
    positions: Mapping[str, Decimal]
    quotes: Mapping[str, Quote]


def format_dollars(amount: Decimal) -> str:
    return f"${amount.quantize(CENT)}"


def mid_price(symbol: str, quote: Quote | None) -> Decimal:
    """The price a symbol is planned at: the quote's mid, once the quote is checked usable.

    A side of exactly 0 is how Alpaca reports "no bid/ask", so it counts as absent and the
    quote is checked with it mirrored; a negative side is present and refused.
    """
    if quote is None:
        raise InvalidPriceError(symbol, "no quote; check that the symbol is listed and trading")
    bid, ask = quote.bid, quote.ask
    if not bid and not ask:
        raise InvalidPriceError(symbol, "the quote has neither bid nor ask")
    bid, ask = bid or ask, ask or bid
    if bid <= QUOTE_FLOOR or ask <= QUOTE_FLOOR:
        raise InvalidPriceError(symbol, f"bid={bid} ask={ask}; both sides must exceed 0.0001")
    if ask < bid - QUOTE_FLOOR:
        raise InvalidPriceError(symbol, f"bid={bid} ask={ask}; the quote is crossed")
    mid = quote.mid()
    assert mid is not None, "both sides were checked positive"
    return mid


def held_quantities(snapshot: AccountSnapshot) -> dict[str, Decimal]:
    """Positions with a non-zero quantity; a short position stops planning
    (docs/trading-rules.md, Account reading)."""
    held: dict[str, Decimal] = {}
    for symbol, qty in snapshot.positions.items():
        if qty < 0:
            raise InvalidSnapshotError(
                f"position {symbol} has qty {qty}: short positions are not supported; "
                "close the short position before rebalancing"
            )
        if qty > 0:
            held[symbol] = qty
    return held


def check_account(snapshot: AccountSnapshot) -> None:
    """Cash first, then equity (docs/trading-rules.md, Account reading): the planner's formulas
    assume PV ≥ 0."""
    if snapshot.cash <= 0:
        raise NonPositiveCashError(snapshot.cash)
    check_equity(snapshot)


def check_equity(snapshot: AccountSnapshot) -> None:
    """The planner's formulas assume PV ≥ 0."""
    if snapshot.portfolio_value < 0:
        raise InvalidSnapshotError(
            f"portfolio_value is {format_dollars(snapshot.portfolio_value)}: negative equity "
            "cannot be rebalanced; check the account at the broker"
        )
