"""What a broker tells us and what we ask of it, in our own terms (never an SDK's types).

Every adapter (Alpaca, the simulated world) translates into these, so the portfolio and execution
services read one shape whatever the broker. Money, prices and quantities are `Decimal`; every
timestamp is timezone-aware.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from shared.trading import Side

CLIENT_ORDER_ID_MAX_LENGTH = 128


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OrderType(StrEnum):
    """This system places MARKET and LIMIT orders only; the rest describe foreign open orders."""

    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TRAILING_STOP = "trailing_stop"


class OrderStatus(StrEnum):
    """The finalisation map of trading spec §3.10 (the broker's own word is kept on the order).

    new / accepted / pending_new and anything unknown are ACCEPTED (still working); `expired` is
    REJECTED. `replaced` is CANCELED: the order stopped working and its replacement carries on.
    """

    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"


TERMINAL_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED})


class Account(_Frozen):
    account_id: str
    cash: Decimal
    buying_power: Decimal
    equity: Decimal
    portfolio_value: Decimal
    status: str


class Position(_Frozen):
    symbol: str
    qty: Decimal
    qty_available: Decimal = Field(description="qty minus shares held by open sell orders")
    market_value: Decimal
    avg_entry_price: Decimal
    current_price: Decimal | None


class Asset(_Frozen):
    symbol: str
    tradable: bool
    fractionable: bool
    name: str | None = None
    exchange: str | None = None


class OrderRequest(_Frozen):
    """A quantity-based DAY order; the client order id is what makes a retry safe (§1.5)."""

    symbol: str = Field(min_length=1, max_length=10)
    side: Side
    qty: Decimal = Field(gt=0)
    order_type: OrderType
    client_order_id: str = Field(min_length=1, max_length=CLIENT_ORDER_ID_MAX_LENGTH)
    limit_price: Decimal | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _limit_price_iff_limit(self) -> OrderRequest:
        if self.order_type not in (OrderType.MARKET, OrderType.LIMIT):
            raise ValueError(
                f"order {self.client_order_id}: order_type {self.order_type.value} is not placed "
                "by this system; use market or limit"
            )
        if self.order_type is OrderType.LIMIT and self.limit_price is None:
            raise ValueError(
                f"order {self.client_order_id}: a limit order needs limit_price; "
                "give one or use order_type=market"
            )
        if self.order_type is OrderType.MARKET and self.limit_price is not None:
            raise ValueError(
                f"order {self.client_order_id}: a market order takes no limit_price; "
                "drop it or use order_type=limit"
            )
        return self


class Order(_Frozen):
    order_id: str
    client_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    qty: Decimal
    limit_price: Decimal | None
    status: OrderStatus
    broker_status: str = Field(description="the broker's own status word, e.g. pending_new")
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    submitted_at: AwareDatetime
    updated_at: AwareDatetime

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def remaining_qty(self) -> Decimal:
        return max(self.qty - self.filled_qty, Decimal(0))


class CancelOutcome(StrEnum):
    REQUESTED = "requested"
    """The broker took the cancel; read the order to see it end (it may still fill first)."""
    ALREADY_TERMINAL = "already_terminal"
    """The order had already ended (`terminal_state` says how): nothing was cancelled."""


class CancelResult(_Frozen):
    order_id: str
    outcome: CancelOutcome
    terminal_state: str | None = None


class PositionClose(_Frozen):
    """One position of a close-all: the closing order, or why the broker refused it."""

    symbol: str
    order: Order | None
    error: str | None = None


class Trade(_Frozen):
    symbol: str
    price: Decimal
    size: Decimal
    timestamp: AwareDatetime


class MarketClock(_Frozen):
    now: AwareDatetime
    is_open: bool
    next_open: AwareDatetime
    next_close: AwareDatetime


class TradingSession(_Frozen):
    """One session of the exchange calendar; `date` is the exchange's local date."""

    date: dt.date
    open: AwareDatetime
    close: AwareDatetime


class DailyBar(_Frozen):
    """One adjusted daily bar; `date` is the session date in New York."""

    date: dt.date
    symbol: str
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
