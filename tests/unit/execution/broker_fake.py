"""A hand-written in-memory `Broker` for the execution state machine's unit tests, with the
behaviours the tests need per symbol: how orders fill, faults on submission, buying power."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from shared.broker.errors import BrokerError, NotFoundError, TransientBrokerError
from shared.broker.models import (
    Account,
    Asset,
    CancelOutcome,
    CancelResult,
    MarketClock,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    PositionClose,
    Trade,
    TradingSession,
)
from shared.trading import Quote, QuoteSource, Side

NOW = dt.datetime(2026, 11, 25, 20, 45, tzinfo=dt.UTC)


class Fill(StrEnum):
    IMMEDIATE = "immediate"
    """Every order fills at once (a limit at its price, a market order at the quote)."""
    MARKET_ONLY = "market_only"
    """Limit orders rest until cancelled; market orders fill at once."""
    NEVER = "never"
    HALF_THEN_STALL = "half_then_stall"
    """The first order fills half at once and rests; later ones fill at once."""
    ON_CANCEL = "on_cancel"
    """Orders rest, then fill completely just before a cancel reaches them."""
    ALL_BUT_CRUMB = "all_but_crumb"
    """The first order fills all but 0.005 shares at once and rests."""


@dataclass
class FakeBroker:
    quotes: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    fills: dict[str, Fill] = field(default_factory=dict)
    positions: dict[str, Decimal] = field(default_factory=dict)
    buying_power: Decimal = Decimal("1000000")
    non_fractionable: set[str] = field(default_factory=set)
    no_quotes: set[str] = field(default_factory=set)
    """Symbols whose latest quote is missing (orders still fill at the `quotes` price)."""
    submit_faults: deque[BrokerError | str] = field(default_factory=deque)
    """Raised by the next submissions in turn; "lost" places the order and loses the answer."""
    orders: dict[str, Order] = field(default_factory=dict)
    submissions: list[str] = field(default_factory=list)
    account_reads: int = 0
    cancel_delays: dict[str, int] = field(default_factory=dict)
    """Per symbol, how many reads of an order a requested cancel takes to show (0: at once)."""
    pending_cancels: dict[str, int] = field(default_factory=dict)
    session_close: dt.datetime | None = NOW + dt.timedelta(minutes=15)
    """The close its clock reports (16:00 New York); None: the session is closed."""
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def account_id(self) -> str:
        return "default"

    async def get_account(self) -> Account:
        self.account_reads += 1
        return Account(
            account_id="default",
            cash=self.buying_power,
            buying_power=self.buying_power,
            equity=self.buying_power,
            portfolio_value=self.buying_power,
            status="ACTIVE",
        )

    async def get_positions(self) -> list[Position]:
        return [p for s in self.positions if (p := await self.get_position(s)) is not None]

    async def get_position(self, symbol: str) -> Position | None:
        qty = self.positions.get(symbol)
        if not qty:
            return None
        price = self._mid(symbol)
        return Position(
            symbol=symbol,
            qty=qty,
            qty_available=qty,
            market_value=qty * price,
            avg_entry_price=price,
            current_price=price,
        )

    async def get_open_orders(self) -> list[Order]:
        return [order for order in self.orders.values() if not order.is_terminal]

    async def get_asset(self, symbol: str) -> Asset | None:
        if symbol not in self.quotes:
            return None
        return Asset(symbol=symbol, tradable=True, fractionable=symbol not in self.non_fractionable)

    async def submit_order(self, request: OrderRequest) -> Order:
        self.submissions.append(request.client_order_id)
        fault = self.submit_faults.popleft() if self.submit_faults else None
        if isinstance(fault, BrokerError):
            raise fault
        existing = next(
            (o for o in self.orders.values() if o.client_order_id == request.client_order_id),
            None,
        )
        if existing is not None:
            return existing
        order = Order(
            order_id=f"ord-{next(self._ids)}",
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            order_type=request.order_type,
            qty=request.qty,
            limit_price=request.limit_price,
            status=OrderStatus.ACCEPTED,
            broker_status="accepted",
            filled_qty=Decimal(0),
            filled_avg_price=None,
            submitted_at=NOW,
            updated_at=NOW,
        )
        self.orders[order.order_id] = order
        behaviour = self.fills.get(request.symbol, Fill.IMMEDIATE)
        first = sum(1 for o in self.orders.values() if o.symbol == request.symbol) == 1
        if behaviour is Fill.IMMEDIATE or (
            behaviour is Fill.MARKET_ONLY and request.order_type is OrderType.MARKET
        ):
            order = self._fill(order, order.qty)
        elif behaviour is Fill.ALL_BUT_CRUMB and first:
            order = self._fill(order, order.qty - Decimal("0.005"))
        elif behaviour is Fill.HALF_THEN_STALL:
            order = self._fill(
                order, (order.qty / 2).quantize(Decimal("0.000001")) if first else order.qty
            )
        if fault == "lost":
            raise TransientBrokerError("submit: answer lost (timeout)", code="timeout")
        return order

    async def cancel_order(self, order_id: str) -> CancelResult:
        order = self.orders.get(order_id)
        if order is None:
            raise NotFoundError(f"no order {order_id}")
        if not order.is_terminal and self.fills.get(order.symbol) is Fill.ON_CANCEL:
            order = self._fill(order, order.qty - order.filled_qty)
        if order.is_terminal:
            return CancelResult(
                order_id=order_id,
                outcome=CancelOutcome.ALREADY_TERMINAL,
                terminal_state=order.broker_status,
            )
        delay = self.cancel_delays.get(order.symbol, 0)
        if delay > 0:
            self.pending_cancels.setdefault(order_id, delay)
        else:
            self._cancel_now(order)
        return CancelResult(order_id=order_id, outcome=CancelOutcome.REQUESTED)

    async def get_order(self, order_id: str) -> Order | None:
        if order_id in self.pending_cancels:
            self.pending_cancels[order_id] -= 1
            if self.pending_cancels[order_id] <= 0:
                del self.pending_cancels[order_id]
                self._cancel_now(self.orders[order_id])
        return self.orders.get(order_id)

    def _cancel_now(self, order: Order) -> None:
        if not order.is_terminal:
            self.orders[order.order_id] = order.model_copy(
                update={"status": OrderStatus.CANCELED, "broker_status": "canceled"}
            )

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        return next((o for o in self.orders.values() if o.client_order_id == client_order_id), None)

    async def close_all_positions(self) -> list[PositionClose]:
        raise NotImplementedError("execution never closes all positions")

    async def get_latest_quote(self, symbol: str) -> Quote | None:
        if symbol not in self.quotes or symbol in self.no_quotes:
            return None
        bid, ask = self.quotes[symbol]
        return Quote(
            symbol=symbol,
            bid=bid,
            ask=ask,
            bid_size=Decimal(100),
            ask_size=Decimal(100),
            as_of=NOW,
            source=QuoteSource.REST,
        )

    async def get_latest_trade(self, symbol: str) -> Trade | None:
        return None

    async def get_clock(self) -> MarketClock:
        if self.session_close is None:
            later = NOW + dt.timedelta(hours=17)
            return MarketClock(now=NOW, is_open=False, next_open=later, next_close=later)
        return MarketClock(
            now=NOW,
            is_open=True,
            next_open=NOW + dt.timedelta(days=1),
            next_close=self.session_close,
        )

    async def get_calendar(self, start: dt.date, end: dt.date) -> list[TradingSession]:
        return []

    def orders_of(self, symbol: str) -> list[Order]:
        return [order for order in self.orders.values() if order.symbol == symbol]

    def _mid(self, symbol: str) -> Decimal:
        bid, ask = self.quotes.get(symbol, (Decimal(1), Decimal(1)))
        return (bid + ask) / 2

    def _fill(self, order: Order, qty: Decimal) -> Order:
        bid, ask = self.quotes[order.symbol]
        price = order.limit_price or (ask if order.side is Side.BUY else bid)
        filled = order.filled_qty + qty
        previous = order.filled_qty * (order.filled_avg_price or Decimal(0))
        done = filled >= order.qty
        order = order.model_copy(
            update={
                "filled_qty": filled,
                "filled_avg_price": (previous + qty * price) / filled,
                "status": OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED,
                "broker_status": "filled" if done else "partially_filled",
            }
        )
        self.orders[order.order_id] = order
        signed = qty if order.side is Side.BUY else -qty
        self.positions[order.symbol] = self.positions.get(order.symbol, Decimal(0)) + signed
        return order
