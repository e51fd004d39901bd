"""`OrdersPreviewed`: what a dry run's execution would have sent, recorded instead of sending it
(docs/trading-rules.md, Dry runs / Event payloads)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, Self
from uuid import UUID

from pydantic import Field, model_validator

from shared.events.envelope import Event, Frozen
from shared.events.ids import CLIENT_ORDER_ID_LENGTH
from shared.events.market import OpenOrder
from shared.events.trades import SkippedItem
from shared.events.types import Money, PositiveMoney, Symbol
from shared.trading import Quote, Side


class PreviewedOrder(Frozen):
    """One chain's first order as execution sized and priced it, at the point where a real run
    records its intent and then submits it."""

    symbol: Symbol
    side: Side
    trade_amount: Money
    """The plan item's dollars (+ buy / − sell)."""
    qty: PositiveMoney
    order_type: Literal["MARKET", "LIMIT"]
    limit_price: PositiveMoney | None = None
    estimated_notional: PositiveMoney | None = None
    """qty × the limit price, else × the quote's mid; None for a market order without a quote."""
    quote: Quote | None = None
    """The quote the order was sized and priced from; None when it was priced from the last
    trade or goes to market without one."""
    client_order_id: str = Field(min_length=1, max_length=CLIENT_ORDER_ID_LENGTH)
    """The id the order would have been sent under (the dry run's own workflow id is hashed in,
    so it never matches a real run's)."""
    closes_position: bool = False
    """A full exit the broker would take only as its close-position call."""

    @model_validator(mode="after")
    def _limit_price_matches_order_type(self) -> Self:
        if (self.order_type == "LIMIT") != (self.limit_price is not None):
            raise ValueError("limit_price is set exactly for a LIMIT order")
        return self


class OrdersPreviewed(Event):
    """The end of a dry run's execution: every order it would have sent, the items it would have
    skipped (with the reason) and the open orders it would have met; nothing was sent, cancelled
    or closed at the broker."""

    event_type: Literal["OrdersPreviewed"] = "OrdersPreviewed"
    schema_version: Literal[1] = 1
    plan_id: UUID
    orders: tuple[PreviewedOrder, ...] = ()
    skipped: tuple[SkippedItem, ...] = ()
    """Items that would not have been sent: sizing skipped them, pre-flight refused them, or no
    price or buying power was had."""
    stale_orders: tuple[OpenOrder, ...] = ()
    """This system's orders of earlier workflows that a real run would cancel first."""
    foreign_open_orders: tuple[OpenOrder, ...] = ()

    @property
    def estimated_total(self) -> Decimal:
        """Σ of the orders' estimated notionals (a market order without a quote counts 0)."""
        return sum((order.estimated_notional or Decimal(0) for order in self.orders), Decimal(0))
