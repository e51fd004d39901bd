"""`TradeExecuted`: the outcome of both phases, one result per plan item (trading spec §1.3,
§3.13)."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import Field

from shared.events.envelope import Event, Frozen
from shared.events.market import OpenOrder
from shared.events.types import (
    Money,
    NonEmptyStr,
    NonNegativeMoney,
    OrderType,
    PositiveMoney,
    Symbol,
    UtcDatetime,
)
from shared.trading import Side


class OrderAttempt(Frozen):
    kind: Literal["limit", "repeg", "market"]
    limit_price: PositiveMoney | None = None
    broker_order_id: str | None = None
    status: NonEmptyStr


class OrderResult(Frozen):
    symbol: Symbol
    action: Side
    trade_amount: Money
    """Dollars asked by the plan item."""
    shares: NonNegativeMoney
    """Quantity asked."""
    price: PositiveMoney | None = None
    """Average fill price if known, else the working limit price."""
    order_id: str | None = None
    """Broker id of the last order in the chain."""
    success: bool
    error_message: str | None = None
    timestamp: UtcDatetime
    order_type: OrderType
    filled_at: UtcDatetime | None = None
    client_order_id: str | None = None
    requested_qty: NonNegativeMoney
    filled_qty: NonNegativeMoney
    avg_fill_price: PositiveMoney | None = None
    final_status: NonEmptyStr
    attempts: tuple[OrderAttempt, ...] = ()


class SkippedItem(Frozen):
    symbol: Symbol
    action: Side
    reason: NonEmptyStr


class ExecutionData(Frozen):
    plan_id: UUID
    orders_placed: int = Field(ge=0)
    orders_succeeded: int = Field(ge=0)
    total_trade_value: Money
    execution_timestamp: UtcDatetime
    success: bool
    """The raw classifier flag; the workflow verdict is `TradeExecuted.success`."""
    orders: tuple[OrderResult, ...] = ()


class TradeExecuted(Event):
    event_type: Literal["TradeExecuted"] = "TradeExecuted"
    schema_version: Literal[1] = 1
    success: bool
    orders_placed: int = Field(ge=0)
    orders_succeeded: int = Field(ge=0)
    failure_reason: str | None = None
    failed_symbols: tuple[Symbol, ...] = ()
    execution_data: ExecutionData
    skipped: tuple[SkippedItem, ...] = ()
    stale_orders_cancelled: tuple[OpenOrder, ...] = ()
    foreign_open_orders: tuple[OpenOrder, ...] = ()
