"""Per-order events of the execution state machine
(docs/trading-rules.md, Event payloads / Execution state machine). The intent (`OrderRequested`) is
recorded before the broker is called, under a deterministic `client_order_id`, so a restart can look
the order up instead of placing it twice."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from shared.events.envelope import Event
from shared.events.ids import RECORDED_CLIENT_ORDER_ID_LENGTH
from shared.events.types import (
    NonEmptyStr,
    NonNegativeMoney,
    PositiveMoney,
    Symbol,
)
from shared.trading import Quote, Side


class OrderEvent(Event):
    """Fields every per-order event carries; not an event type of its own."""

    client_order_id: str = Field(min_length=1, max_length=RECORDED_CLIENT_ORDER_ID_LENGTH)
    symbol: Symbol
    side: Side
    phase: Side
    attempt: int = Field(ge=1)
    broker_order_id: NonEmptyStr | None = None


class OrderRequested(OrderEvent):
    event_type: Literal["OrderRequested"] = "OrderRequested"
    schema_version: Literal[1] = 1
    qty: PositiveMoney
    order_type: Literal["MARKET", "LIMIT"]
    limit_price: PositiveMoney | None = None
    reason: Literal["initial", "repeg", "escalation", "fallback", "residual"]
    quote: Quote | None = None
    """The quote the price came from; None on the market path when no quote was had."""

    @model_validator(mode="after")
    def _limit_price_matches_order_type(self) -> Self:
        if self.order_type == "LIMIT" and self.limit_price is None:
            raise ValueError("limit_price is required for a LIMIT order")
        if self.order_type == "MARKET" and self.limit_price is not None:
            raise ValueError("limit_price must be empty for a MARKET order")
        return self


class OrderSubmitted(OrderEvent):
    event_type: Literal["OrderSubmitted"] = "OrderSubmitted"
    schema_version: Literal[1] = 1
    status: NonEmptyStr
    """The broker's status on acceptance (e.g. `new`, `accepted`)."""


class OrderFilled(OrderEvent):
    event_type: Literal["OrderFilled"] = "OrderFilled"
    schema_version: Literal[1] = 1
    filled_qty: PositiveMoney
    avg_fill_price: PositiveMoney
    complete: bool


class OrderCancelled(OrderEvent):
    event_type: Literal["OrderCancelled"] = "OrderCancelled"
    schema_version: Literal[1] = 1
    filled_qty: NonNegativeMoney
    reason: Literal["repeg", "escalation", "expired", "broker", "leftover", "close"]


class OrderRejected(OrderEvent):
    event_type: Literal["OrderRejected"] = "OrderRejected"
    schema_version: Literal[1] = 1
    reason: NonEmptyStr
    broker_code: str | None = None
    retryable: bool
