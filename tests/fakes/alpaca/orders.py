"""The loopback's order book: each order's life as Alpaca lives it, in Alpaca's words.

An order placed in the session is `new` and fills by its symbol's `FillRule`; one placed outside
it is `accepted` and waits for the next open; a DAY order still open at the close of its session
is `expired`. A cancel is asynchronous: the order reads `pending_cancel` until its `CancelRule`
ends it `canceled`, or `filled` when a fill wins the race. Time is the world's clock; nothing here
waits — every change happens when an order is next looked at (`settle`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import Any

from shared import market_clock
from shared.broker.models import FINAL_BROKER_STATUSES

QUEUED = "accepted"
ROUTED = "new"
PENDING_CANCEL = "pending_cancel"


class FillMode(StrEnum):
    IMMEDIATE = "immediate"
    NEVER = "never"
    AFTER_READS = "after_reads"
    PARTIAL = "partial"
    ON_CANCEL = "on_cancel"


@dataclass(frozen=True)
class FillRule:
    """How a routed order of a symbol fills (only while the session is open). IMMEDIATE fills
    when routed; AFTER_READS on the `reads`-th read of the order; PARTIAL fills `fraction` when
    routed and then stalls; ON_CANCEL fills when a cancel arrives (the cancel then answers
    "already filled")."""

    mode: FillMode = FillMode.IMMEDIATE
    reads: int = 1
    fraction: Decimal = Decimal("0.5")


class CancelEnd(StrEnum):
    CANCELED = "canceled"
    FILLED = "filled"
    """A fill wins the race: the order fills completely while the cancel is pending."""


@dataclass(frozen=True)
class CancelRule:
    """How a cancel Alpaca took (204) ends: after `pending_s` seconds of the world's clock in
    `pending_cancel`, as `end`. The default ends at the first look after the 204, as most of
    Alpaca's cancels do."""

    pending_s: float = 0.0
    end: CancelEnd = CancelEnd.CANCELED


@dataclass
class LoopbackOrder:
    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal
    limit_price: Decimal | None
    status: str
    submitted_at: dt.datetime
    updated_at: dt.datetime
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    reads: int = 0
    cancel_asked_at: dt.datetime | None = None
    cancel_rule: CancelRule | None = None

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled_qty

    @property
    def is_open(self) -> bool:
        return self.status not in FINAL_BROKER_STATUSES


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def order_json(order: LoopbackOrder, asset_id: str) -> dict[str, Any]:
    """An order as Alpaca's API returns it."""
    return {
        "id": order.id,
        "client_order_id": order.client_order_id,
        "created_at": iso(order.submitted_at),
        "updated_at": iso(order.updated_at),
        "submitted_at": iso(order.submitted_at),
        "filled_at": iso(order.updated_at) if order.status == "filled" else None,
        "expired_at": iso(order.updated_at) if order.status == "expired" else None,
        "canceled_at": iso(order.updated_at) if order.status == "canceled" else None,
        "failed_at": None,
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "asset_id": asset_id,
        "symbol": order.symbol,
        "asset_class": "us_equity",
        "notional": None,
        "qty": str(order.qty),
        "filled_qty": str(order.filled_qty),
        "filled_avg_price": None if order.filled_avg_price is None else str(order.filled_avg_price),
        "order_class": "",
        "order_type": order.type,
        "type": order.type,
        "side": order.side,
        "time_in_force": order.time_in_force,
        "limit_price": None if order.limit_price is None else str(order.limit_price),
        "stop_price": None,
        "status": order.status,
        "extended_hours": False,
        "legs": None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
        "position_intent": "buy_to_open" if order.side == "buy" else "sell_to_close",
    }


@dataclass
class OrderBook:
    """Every order of the account, with the per-symbol rules a test sets. The market prices a
    fill (`fill_price`, None: no price, no fill) and the account books it (`book_fill`)."""

    fill_price: Callable[[LoopbackOrder], Decimal | None]
    book_fill: Callable[[LoopbackOrder, Decimal, Decimal], None]
    fractionable: Callable[[str], bool]
    orders: dict[str, LoopbackOrder] = field(default_factory=dict)
    creates: Counter[str] = field(default_factory=Counter)
    """Order creations per client order id that reached the book (duplicates included)."""
    default_fill: FillRule = FillRule()
    fills: dict[str, FillRule] = field(default_factory=dict)
    cancels: dict[str, CancelRule] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)
    """Symbols whose orders stay `accepted` (never routed) even in the session."""

    def __iter__(self) -> Iterator[LoopbackOrder]:
        return iter(self.orders.values())

    def rule(self, symbol: str) -> FillRule:
        return self.fills.get(symbol, self.default_fill)

    def by_client_id(self, client_order_id: str) -> LoopbackOrder | None:
        return next((o for o in self if o.client_order_id == client_order_id), None)

    def open_orders(self, symbol: str) -> list[LoopbackOrder]:
        return [o for o in self if o.is_open and o.symbol == symbol]

    def held_for_sale(self, symbol: str) -> Decimal:
        return sum((o.remaining for o in self.open_orders(symbol) if o.side == "sell"), Decimal(0))

    def new(
        self,
        *,
        symbol: str,
        side: str,
        order_type: str,
        qty: Decimal,
        limit_price: Decimal | None,
        now: dt.datetime,
        client_order_id: str | None = None,
        time_in_force: str = "day",
    ) -> LoopbackOrder:
        """Book an order that passed every check, queued or routed by the session, and let its
        fill rule act."""
        session_open = market_clock.is_open_at(now)
        order = LoopbackOrder(
            id=str(uuid.uuid4()),
            client_order_id=client_order_id or str(uuid.uuid4()),
            symbol=symbol,
            side=side,
            type=order_type,
            time_in_force=time_in_force,
            qty=qty,
            limit_price=limit_price,
            status=ROUTED if session_open and symbol not in self.held else QUEUED,
            submitted_at=now,
            updated_at=now,
        )
        self.orders[order.id] = order
        if order.status == ROUTED:
            self._on_routed(order, now)
        return order

    def fill(self, order: LoopbackOrder, qty: Decimal, now: dt.datetime) -> None:
        price = self.fill_price(order)
        if price is None or qty <= 0:
            return
        self.book_fill(order, qty, price)
        previous = order.filled_qty * (order.filled_avg_price or Decimal(0))
        order.filled_qty += qty
        order.filled_avg_price = (previous + qty * price) / order.filled_qty
        order.status = "filled" if order.remaining <= 0 else "partially_filled"
        order.updated_at = now

    def _on_routed(self, order: LoopbackOrder, now: dt.datetime) -> None:
        rule = self.rule(order.symbol)
        if rule.mode is FillMode.IMMEDIATE:
            self.fill(order, order.remaining, now)
        elif rule.mode is FillMode.PARTIAL:
            part = order.qty * rule.fraction
            if not self.fractionable(order.symbol) or order.qty == order.qty.to_integral_value():
                part = part.to_integral_value(rounding=ROUND_FLOOR)
            self.fill(order, part, now)

    def settle(self, order: LoopbackOrder, now: dt.datetime) -> None:
        """Bring an order up to `now`: a pending cancel ends when its time is up, a queued order
        is routed once the session has opened, a DAY order expires at its session's close."""
        if order.status == PENDING_CANCEL:
            self._end_cancel(order, now)
            return
        if not order.is_open or order.time_in_force != "day":
            return
        if now >= market_clock.next_close(order.submitted_at):
            order.status = "expired"
            order.updated_at = now
            return
        if (
            order.status == QUEUED
            and order.symbol not in self.held
            and market_clock.is_open_at(now)
        ):
            order.status = ROUTED
            order.updated_at = now
            self._on_routed(order, now)

    def read(self, order: LoopbackOrder, now: dt.datetime) -> None:
        """A read of the order by id or client order id (after `settle`): AFTER_READS counts
        it."""
        order.reads += 1
        rule = self.rule(order.symbol)
        if (
            rule.mode is FillMode.AFTER_READS
            and order.is_open
            and order.status not in (QUEUED, PENDING_CANCEL)
            and order.reads >= rule.reads
            and market_clock.is_open_at(now)
        ):
            self.fill(order, order.remaining, now)

    def ask_cancel(self, order: LoopbackOrder, now: dt.datetime) -> None:
        """A cancel Alpaca took: the order is `pending_cancel` until its rule ends it."""
        if order.status == PENDING_CANCEL:
            return
        order.status = PENDING_CANCEL
        order.cancel_asked_at = now
        order.cancel_rule = self.cancels.get(order.symbol, CancelRule())
        order.updated_at = now

    def _end_cancel(self, order: LoopbackOrder, now: dt.datetime) -> None:
        rule = order.cancel_rule or CancelRule()
        asked_at = order.cancel_asked_at or now
        if (now - asked_at).total_seconds() < rule.pending_s:
            return
        if rule.end is CancelEnd.FILLED and order.remaining > 0:
            self.fill(order, order.remaining, now)
            return
        order.status = "canceled"
        order.updated_at = now
