"""Alpaca's SDK models into ours: orders (with the status map of trading spec §3.10), positions
and calendar sessions. Quantities and prices come as strings or floats and leave as `Decimal`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from alpaca.trading.models import Calendar as AlpacaCalendar
from alpaca.trading.models import Order as AlpacaOrder
from alpaca.trading.models import Position as AlpacaPosition

from shared.broker.models import Order, OrderStatus, OrderType, Position, TradingSession
from shared.trading import Side

NEW_YORK = ZoneInfo("America/New_York")

STATUS_MAP = {
    "new": OrderStatus.ACCEPTED,
    "accepted": OrderStatus.ACCEPTED,
    "pending_new": OrderStatus.ACCEPTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "replaced": OrderStatus.CANCELED,
    "expired": OrderStatus.REJECTED,
    "rejected": OrderStatus.REJECTED,
}


def decimal_or_none(value: str | float | int | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def enum_value(value: Any) -> str:
    return str(getattr(value, "value", value))


def order_from_alpaca(order: AlpacaOrder) -> Order:
    broker_status = enum_value(order.status)
    order_type = enum_value(order.order_type or order.type or "market")
    return Order(
        order_id=str(order.id),
        client_order_id=order.client_order_id,
        symbol=order.symbol or "",
        side=Side(enum_value(order.side or "buy").upper()),
        order_type=OrderType(order_type),
        qty=decimal_or_none(order.qty) or Decimal(0),
        limit_price=decimal_or_none(order.limit_price),
        status=STATUS_MAP.get(broker_status, OrderStatus.ACCEPTED),
        broker_status=broker_status,
        filled_qty=decimal_or_none(order.filled_qty) or Decimal(0),
        filled_avg_price=decimal_or_none(order.filled_avg_price),
        submitted_at=aware(order.submitted_at),
        updated_at=aware(order.updated_at),
    )


def position_from_alpaca(position: AlpacaPosition) -> Position:
    qty = Decimal(position.qty)
    return Position(
        symbol=position.symbol,
        qty=qty,
        qty_available=decimal_or_none(position.qty_available) if position.qty_available else qty,
        market_value=decimal_or_none(position.market_value) or Decimal(0),
        avg_entry_price=Decimal(position.avg_entry_price),
        current_price=decimal_or_none(position.current_price),
    )


def session_from_alpaca(day: AlpacaCalendar) -> TradingSession:
    return TradingSession(
        date=day.date,
        open=day.open.replace(tzinfo=NEW_YORK),
        close=day.close.replace(tzinfo=NEW_YORK),
    )
