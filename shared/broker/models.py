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
    """Where an order stands, in our five words; the broker's own word is kept on the order as
    `broker_status` (docs/trading-rules.md, Alpaca statuses). `status_of` maps one to the
    other."""

    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"


TERMINAL_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED})

FINAL_BROKER_STATUSES: dict[str, OrderStatus] = {
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "replaced": OrderStatus.CANCELED,
    "expired": OrderStatus.REJECTED,
    "rejected": OrderStatus.REJECTED,
}
"""The broker's words after which nothing changes: Alpaca lets an order be cancelled until it is
filled, canceled or expired, and `rejected` and `replaced` end it too (the replacement carries
on). Every other word is open: `new`, `accepted` (queued outside the session), `pending_new`,
`accepted_for_bidding`, `partially_filled`, `pending_cancel` and `pending_replace` (a fill can
still win), `done_for_day` and `calculated` (done for today, not final), `stopped`, `held`,
`suspended`, and any word we do not know."""


def status_of(broker_status: str, filled_qty: Decimal, qty: Decimal) -> OrderStatus:
    """Our word for the broker's: final words map as listed in `FINAL_BROKER_STATUSES`; an open
    order is ACCEPTED, PARTIALLY_FILLED once anything filled, and FILLED once everything did
    (Alpaca reports `calculated` for an order filled today whose settlement is pending)."""
    word = broker_status.strip().lower()
    final = FINAL_BROKER_STATUSES.get(word)
    if final is not None:
        return final
    if qty > 0 and filled_qty >= qty:
        return OrderStatus.FILLED
    return OrderStatus.PARTIALLY_FILLED if filled_qty > 0 else OrderStatus.ACCEPTED


class Account(_Frozen):
    account_id: str
    cash: Decimal
    buying_power: Decimal
    equity: Decimal
    portfolio_value: Decimal
    status: str
    daytrading_buying_power: Decimal | None = Field(
        default=None,
        description="what the account may spend on day trades today; None when the broker "
        "reports none",
    )
    pattern_day_trader: bool = False
    daytrade_count: int = Field(default=0, description="day trades in the last five sessions")


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
    """A quantity-based DAY order; the client order id is what makes a retry safe
    (docs/trading-rules.md, Client order ids)."""

    symbol: str = Field(min_length=1, max_length=10)
    side: Side
    qty: Decimal = Field(gt=0)
    order_type: OrderType
    client_order_id: str = Field(
        min_length=1,
        description="its length, like the price's and quantity's precision, is the broker's rule "
        "(shared.broker.order_rules), checked where the order arrives",
    )
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
