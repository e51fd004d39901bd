"""Account and market facts captured inside events: quotes, positions, open orders. Recorded so
that a replay plans and prices from exactly what the live run saw (trading spec §1.3)."""

from __future__ import annotations

from decimal import Decimal

from shared.events.envelope import Frozen
from shared.events.types import (
    Money,
    NonEmptyStr,
    NonNegativeMoney,
    PositiveMoney,
    Symbol,
    UtcDatetime,
)
from shared.trading import Quote, Side


class PositionSnapshot(Frozen):
    symbol: Symbol
    qty: Money
    price: NonNegativeMoney
    """The price the plan valued the position at."""
    market_value: Money


class OpenOrder(Frozen):
    """An order open at the broker; `own` when its client order id carries this system's `alc:`
    prefix (§1.5), foreign otherwise (left alone and reported, §3.2)."""

    broker_order_id: NonEmptyStr
    client_order_id: str | None = None
    symbol: Symbol
    side: Side
    qty: PositiveMoney
    filled_qty: NonNegativeMoney = Decimal(0)
    status: NonEmptyStr
    own: bool


class AccountSnapshot(Frozen):
    cash: Money
    portfolio_value: NonNegativeMoney
    buying_power: Money | None = None
    positions: tuple[PositionSnapshot, ...] = ()
    quotes: tuple[Quote, ...] = ()
    as_of: UtcDatetime
