"""A loopback Alpaca: the subset of Alpaca's Trading and Market Data REST APIs that alpaca-py
calls for our adapter, in Alpaca's paths, JSON shapes, status codes and error codes.

It runs with uvicorn in a background thread on 127.0.0.1 (random port) and keeps one account's
state: cash, positions, assets, orders, quotes, trades, daily bars, clock and calendar. Orders fill
by a `FillRule` (immediately, never, after N reads, partially, or racing a cancel); faults are
injected per method and path (429 with Retry-After, 500 with an HTML body, a hang past the client
timeout, or a request that is processed but whose answer is lost).

Tests seed and inspect it from their own thread; every touch of the state holds one lock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import exchange_calendars
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

NEW_YORK = ZoneInfo("America/New_York")
TERMINAL = frozenset({"filled", "canceled", "expired", "rejected", "replaced"})
CENT = Decimal("0.01")


class FillMode(StrEnum):
    IMMEDIATE = "immediate"
    NEVER = "never"
    AFTER_READS = "after_reads"
    PARTIAL = "partial"
    ON_CANCEL = "on_cancel"


@dataclass(frozen=True)
class FillRule:
    """How an order of a symbol fills. IMMEDIATE fills on submission; AFTER_READS on the
    `reads`-th read of the order; PARTIAL fills `fraction` on submission and then stalls;
    ON_CANCEL fills when a cancel arrives (the cancel then answers "already filled")."""

    mode: FillMode = FillMode.IMMEDIATE
    reads: int = 1
    fraction: Decimal = Decimal("0.5")


class FaultKind(StrEnum):
    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    HANG = "hang"
    LOSE_RESPONSE = "lose_response"
    ANSWER = "answer"


@dataclass
class Fault:
    """The next `times` calls of `method path` answer with this fault instead of normally.

    RATE_LIMIT sends `Retry-After: retry_after_s` and/or Alpaca's `X-RateLimit-Reset` (now +
    `reset_in_s`, epoch seconds) when those are set. SERVER_ERROR answers 500 with `body` (an
    HTML page). HANG waits `hang_s` and answers 504 without doing anything; LOSE_RESPONSE does
    the work (an order is accepted and filled) and then waits `hang_s` before answering, so a
    client with a shorter timeout never sees the answer. ANSWER replies `status` with `body`
    as JSON, for any other error Alpaca can give."""

    method: str
    path: str
    kind: FaultKind
    times: int = 1
    retry_after_s: int | None = 1
    reset_in_s: int | None = None
    hang_s: float = 1.0
    status: int = 500
    body: str = (
        "<html><head><title>500 Internal Server Error</title></head>"
        "<body><h1>Internal Server Error</h1></body></html>"
    )


@dataclass
class _Order:
    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    qty: Decimal
    limit_price: Decimal | None
    status: str
    submitted_at: dt.datetime
    updated_at: dt.datetime
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    reads: int = 0

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled_qty

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL


@dataclass
class _Holding:
    qty: Decimal
    avg_entry_price: Decimal


@dataclass
class _Asset:
    tradable: bool = True
    fractionable: bool = True
    name: str = ""
    exchange: str = "NASDAQ"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class _Quote:
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    timestamp: dt.datetime


@dataclass
class _Trade:
    price: Decimal
    size: Decimal
    timestamp: dt.datetime


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]


@functools.cache
def _new_york_stock_exchange() -> exchange_calendars.ExchangeCalendar:
    return exchange_calendars.get_calendar("XNYS")


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_EVEN))


def _error(status: int, code: int, message: str, **fields: Any) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, **fields}, status_code=status)


class AlpacaWorld:
    """The state of one loopback Alpaca account and its market."""

    def __init__(self, *, key_id: str, secret_key: str, cash: Decimal) -> None:
        self.key_id = key_id
        self.secret_key = secret_key
        self.account_id = str(uuid.uuid4())
        self.lock = threading.RLock()
        self.cash = cash
        self.holdings: dict[str, _Holding] = {}
        self.assets: dict[str, _Asset] = {}
        self.quotes: dict[str, _Quote] = {}
        self.trades: dict[str, _Trade] = {}
        self.bars: dict[str, list[dict[str, Any]]] = {}
        self.orders: dict[str, _Order] = {}
        self.default_fill = FillRule()
        self.fills: dict[str, FillRule] = {}
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.order_creates: Counter[str] = Counter()
        self.now: dt.datetime | None = None
        self.proceeds_delay_reads = 0
        self.unsettled: list[list[Any]] = []

    # ------------------------------------------------------------------ seeding (test thread)

    def set_cash(self, cash: Decimal) -> None:
        with self.lock:
            self.cash = cash

    def set_asset(
        self, symbol: str, *, tradable: bool = True, fractionable: bool = True, name: str = ""
    ) -> None:
        with self.lock:
            self.assets[symbol] = _Asset(tradable=tradable, fractionable=fractionable, name=name)

    def set_quote(
        self,
        symbol: str,
        bid: Decimal,
        ask: Decimal,
        *,
        bid_size: Decimal = Decimal(100),
        ask_size: Decimal = Decimal(100),
        timestamp: dt.datetime | None = None,
    ) -> None:
        """Any quote on demand: stale (old timestamp), one-sided (a side at 0), inverted, wide."""
        with self.lock:
            self.quotes[symbol] = _Quote(bid, ask, bid_size, ask_size, timestamp or self.moment())
            self.assets.setdefault(symbol, _Asset())

    def set_trade(self, symbol: str, price: Decimal, *, size: Decimal = Decimal(100)) -> None:
        with self.lock:
            self.trades[symbol] = _Trade(price, size, self.moment())

    def set_position(self, symbol: str, qty: Decimal, avg_entry_price: Decimal) -> None:
        with self.lock:
            self.holdings[symbol] = _Holding(qty, avg_entry_price)
            self.assets.setdefault(symbol, _Asset())

    def set_daily_bars(
        self, symbol: str, rows: list[tuple[dt.date, Decimal, Decimal, Decimal, Decimal, int]]
    ) -> None:
        """Rows of (session date, open, high, low, close, volume)."""
        with self.lock:
            self.bars[symbol] = [
                {
                    "t": _iso(dt.datetime.combine(day, dt.time(), tzinfo=NEW_YORK)),
                    "o": float(o),
                    "h": float(h),
                    "l": float(low),
                    "c": float(c),
                    "v": volume,
                    "n": 1,
                    "vw": float(c),
                }
                for day, o, h, low, c, volume in rows
            ]

    def set_fill(self, rule: FillRule, symbol: str | None = None) -> None:
        with self.lock:
            if symbol is None:
                self.default_fill = rule
            else:
                self.fills[symbol] = rule

    def inject(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def set_now(self, now: dt.datetime) -> None:
        with self.lock:
            self.now = now

    def delay_sell_proceeds(self, account_reads: int) -> None:
        """Sell proceeds reach buying power only on the `account_reads`-th account read after the
        fill (cash moves at once), to exercise the buying-power checks between the phases."""
        with self.lock:
            self.proceeds_delay_reads = account_reads

    def end_order(self, client_order_id: str, status: str) -> None:
        """The broker ends a working order by itself: `expired`, `canceled` or `rejected`."""
        with self.lock:
            order = next(o for o in self.orders.values() if o.client_order_id == client_order_id)
            order.status = status
            order.updated_at = self.moment()

    def creates(self, client_order_id: str) -> int:
        """How many order creations for this client order id reached the order book."""
        with self.lock:
            return self.order_creates[client_order_id]

    def calls(self, method: str, path: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if (r.method, r.path) == (method, path))

    # ------------------------------------------------------------------ derived figures

    def moment(self) -> dt.datetime:
        return self.now or dt.datetime.now(dt.UTC)

    def price(self, symbol: str) -> Decimal | None:
        quote = self.quotes.get(symbol)
        if quote is not None and quote.bid > 0 and quote.ask > 0:
            return (quote.bid + quote.ask) / 2
        if quote is not None and max(quote.bid, quote.ask) > 0:
            return max(quote.bid, quote.ask)
        trade = self.trades.get(symbol)
        return None if trade is None else trade.price

    def held_for_orders(self, symbol: str) -> Decimal:
        return sum(
            (
                o.remaining
                for o in self.orders.values()
                if o.is_open and o.symbol == symbol and o.side == "sell"
            ),
            Decimal(0),
        )

    def buying_power(self) -> Decimal:
        reserved = sum((amount for amount, _reads in self.unsettled), Decimal(0))
        for order in self.orders.values():
            if order.is_open and order.side == "buy":
                reserved += order.remaining * (self.buy_price(order) or Decimal(0))
        return self.cash - reserved

    def market_value(self, symbol: str) -> Decimal:
        holding = self.holdings[symbol]
        return holding.qty * (self.price(symbol) or holding.avg_entry_price)

    def equity(self) -> Decimal:
        return self.cash + sum((self.market_value(s) for s in self.holdings), Decimal(0))

    def buy_price(self, order: _Order) -> Decimal | None:
        if order.limit_price is not None:
            return order.limit_price
        quote = self.quotes.get(order.symbol)
        return quote.ask if quote is not None and quote.ask > 0 else self.price(order.symbol)

    def fill_price(self, order: _Order) -> Decimal | None:
        quote = self.quotes.get(order.symbol)
        touch = None
        if quote is not None:
            touch = quote.ask if order.side == "buy" else quote.bid
            touch = touch if touch > 0 else None
        if order.limit_price is None:
            return touch or self.price(order.symbol)
        if touch is None:
            return order.limit_price
        return (
            min(order.limit_price, touch) if order.side == "buy" else max(order.limit_price, touch)
        )

    def rule(self, symbol: str) -> FillRule:
        return self.fills.get(symbol, self.default_fill)

    # ------------------------------------------------------------------ order book

    def fill(self, order: _Order, qty: Decimal) -> None:
        price = self.fill_price(order)
        if price is None or qty <= 0:
            return
        notional = qty * price
        holding = self.holdings.get(order.symbol)
        if order.side == "buy":
            self.cash -= notional
            if holding is None:
                self.holdings[order.symbol] = _Holding(qty, price)
            else:
                total = holding.qty + qty
                holding.avg_entry_price = (holding.qty * holding.avg_entry_price + notional) / total
                holding.qty = total
        else:
            self.cash += notional
            if self.proceeds_delay_reads > 0:
                self.unsettled.append([notional, self.proceeds_delay_reads])
            if holding is not None:
                holding.qty -= qty
                if holding.qty <= 0:
                    del self.holdings[order.symbol]
        previous = order.filled_qty * (order.filled_avg_price or Decimal(0))
        order.filled_qty += qty
        order.filled_avg_price = (previous + notional) / order.filled_qty
        order.status = "filled" if order.remaining <= 0 else "partially_filled"
        order.updated_at = self.moment()

    def on_submit(self, order: _Order) -> None:
        rule = self.rule(order.symbol)
        if rule.mode is FillMode.IMMEDIATE:
            self.fill(order, order.qty)
        elif rule.mode is FillMode.PARTIAL:
            part = order.qty * rule.fraction
            asset = self.assets.get(order.symbol)
            if asset is None or not asset.fractionable:
                part = part.to_integral_value(rounding="ROUND_FLOOR")
            self.fill(order, part)

    def on_read(self, order: _Order) -> None:
        order.reads += 1
        rule = self.rule(order.symbol)
        if rule.mode is FillMode.AFTER_READS and order.is_open and order.reads >= rule.reads:
            self.fill(order, order.remaining)

    def refuse(
        self, symbol: str, side: str, qty: Decimal, price: Decimal | None
    ) -> JSONResponse | None:
        """Alpaca's refusals for a new order, in Alpaca's order of checks."""
        asset = self.assets.get(symbol)
        if asset is None:
            return _error(422, 42210000, f'asset "{symbol}" not found')
        if not asset.tradable:
            return _error(422, 42210000, f"asset {symbol} is not tradable")
        if qty <= 0:
            return _error(422, 40010001, "qty must be > 0")
        if not asset.fractionable and qty != qty.to_integral_value():
            return _error(
                422,
                42210000,
                f"fractional orders are not supported for {symbol}: asset is not fractionable",
            )
        if side == "buy":
            cost = qty * (price or Decimal(0))
            if cost > self.buying_power():
                return _error(
                    403,
                    40310000,
                    "insufficient buying power",
                    buying_power=_money(self.buying_power()),
                    cost_basis=_money(cost),
                )
        else:
            holding = self.holdings.get(symbol)
            held = self.held_for_orders(symbol)
            existing = holding.qty if holding else Decimal(0)
            available = existing - held
            if qty > available:
                return _error(
                    403,
                    40310000,
                    "insufficient qty available for order "
                    f"(requested: {qty}, available: {available})",
                    available=str(available),
                    existing_qty=str(existing),
                    held_for_orders=str(held),
                    symbol=symbol,
                )
        return None

    def order_json(self, order: _Order) -> dict[str, Any]:
        asset = self.assets.get(order.symbol, _Asset())
        return {
            "id": order.id,
            "client_order_id": order.client_order_id,
            "created_at": _iso(order.submitted_at),
            "updated_at": _iso(order.updated_at),
            "submitted_at": _iso(order.submitted_at),
            "filled_at": _iso(order.updated_at) if order.status == "filled" else None,
            "expired_at": None,
            "canceled_at": _iso(order.updated_at) if order.status == "canceled" else None,
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": asset.id,
            "symbol": order.symbol,
            "asset_class": "us_equity",
            "notional": None,
            "qty": str(order.qty),
            "filled_qty": str(order.filled_qty),
            "filled_avg_price": None
            if order.filled_avg_price is None
            else str(order.filled_avg_price),
            "order_class": "",
            "order_type": order.type,
            "type": order.type,
            "side": order.side,
            "time_in_force": "day",
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

    def position_json(self, symbol: str) -> dict[str, Any]:
        holding = self.holdings[symbol]
        asset = self.assets.get(symbol, _Asset())
        current = self.price(symbol) or holding.avg_entry_price
        cost_basis = holding.qty * holding.avg_entry_price
        market_value = self.market_value(symbol)
        return {
            "asset_id": asset.id,
            "symbol": symbol,
            "exchange": asset.exchange,
            "asset_class": "us_equity",
            "asset_marginable": False,
            "avg_entry_price": str(holding.avg_entry_price),
            "qty": str(holding.qty),
            "qty_available": str(holding.qty - self.held_for_orders(symbol)),
            "side": "long",
            "market_value": _money(market_value),
            "cost_basis": _money(cost_basis),
            "unrealized_pl": _money(market_value - cost_basis),
            "unrealized_plpc": "0",
            "unrealized_intraday_pl": "0",
            "unrealized_intraday_plpc": "0",
            "current_price": str(current),
            "lastday_price": str(current),
            "change_today": "0",
        }

    def new_order(self, body: dict[str, Any]) -> _Order:
        now = self.moment()
        return _Order(
            id=str(uuid.uuid4()),
            client_order_id=str(body.get("client_order_id") or uuid.uuid4()),
            symbol=str(body["symbol"]),
            side=str(body["side"]),
            type=str(body["type"]),
            qty=Decimal(str(body["qty"])),
            limit_price=None
            if body.get("limit_price") is None
            else Decimal(str(body["limit_price"])),
            status="new",
            submitted_at=now,
            updated_at=now,
        )

    # ------------------------------------------------------------------ clock and calendar

    def sessions(
        self, start: dt.date, end: dt.date
    ) -> list[tuple[dt.date, dt.datetime, dt.datetime]]:
        schedule = _new_york_stock_exchange().schedule.loc[start.isoformat() : end.isoformat()]
        return [
            (label.date(), opened.to_pydatetime(), closed.to_pydatetime())
            for label, opened, closed in zip(
                schedule.index, schedule["open"], schedule["close"], strict=True
            )
        ]

    def clock(self) -> dict[str, Any]:
        now = self.moment()
        today = now.astimezone(NEW_YORK).date()
        sessions = self.sessions(today - dt.timedelta(days=1), today + dt.timedelta(days=10))
        is_open = any(opened <= now < closed for _, opened, closed in sessions)
        next_open = next(opened for _, opened, _closed in sessions if opened > now)
        next_close = next(closed for _, _opened, closed in sessions if closed > now)
        return {
            "timestamp": now.astimezone(NEW_YORK).isoformat(),
            "is_open": is_open,
            "next_open": next_open.astimezone(NEW_YORK).isoformat(),
            "next_close": next_close.astimezone(NEW_YORK).isoformat(),
        }


def build_app(world: AlpacaWorld) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def auth_and_faults(request: Request, call_next: Any) -> Response:
        with world.lock:
            world.requests.append(
                RecordedRequest(request.method, request.url.path, dict(request.query_params))
            )
            fault = next(
                (
                    f
                    for f in world.faults
                    if f.times > 0 and (f.method, f.path) == (request.method, request.url.path)
                ),
                None,
            )
            if fault is not None:
                fault.times -= 1
        if (
            request.headers.get("APCA-API-KEY-ID") != world.key_id
            or request.headers.get("APCA-API-SECRET-KEY") != world.secret_key
        ):
            return _error(401, 40110000, "request is not authorized")
        if fault is None:
            response: Response = await call_next(request)
            return response
        if fault.kind is FaultKind.RATE_LIMIT:
            headers = {"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0"}
            if fault.retry_after_s is not None:
                headers["Retry-After"] = str(fault.retry_after_s)
            if fault.reset_in_s is not None:
                headers["X-RateLimit-Reset"] = str(int(time.time()) + fault.reset_in_s)
            return JSONResponse(
                {"code": 42910000, "message": "rate limit exceeded"},
                status_code=429,
                headers=headers,
            )
        if fault.kind is FaultKind.ANSWER:
            return Response(fault.body, status_code=fault.status, media_type="application/json")
        if fault.kind is FaultKind.SERVER_ERROR:
            return HTMLResponse(fault.body, status_code=500)
        if fault.kind is FaultKind.HANG:
            await asyncio.sleep(fault.hang_s)
            return HTMLResponse("<html><body>504 Gateway Time-out</body></html>", status_code=504)
        response = await call_next(request)
        await asyncio.sleep(fault.hang_s)
        return response

    @app.get("/v2/account")
    async def account() -> dict[str, Any]:
        with world.lock:
            for pending in world.unsettled:
                pending[1] -= 1
            world.unsettled = [pending for pending in world.unsettled if pending[1] > 0]
            equity = world.equity()
            return {
                "id": world.account_id,
                "account_number": "PA0000LOOPBACK",
                "status": "ACTIVE",
                "crypto_status": "ACTIVE",
                "currency": "USD",
                "cash": _money(world.cash),
                "buying_power": _money(world.buying_power()),
                "regt_buying_power": _money(world.buying_power()),
                "non_marginable_buying_power": _money(world.buying_power()),
                "portfolio_value": _money(equity),
                "equity": _money(equity),
                "last_equity": _money(equity),
                "long_market_value": _money(equity - world.cash),
                "short_market_value": "0",
                "multiplier": "1",
                "pattern_day_trader": False,
                "trading_blocked": False,
                "transfers_blocked": False,
                "account_blocked": False,
                "shorting_enabled": False,
                "created_at": "2024-01-02T14:30:00Z",
            }

    @app.get("/v2/positions")
    async def positions() -> list[dict[str, Any]]:
        with world.lock:
            return [world.position_json(symbol) for symbol in sorted(world.holdings)]

    @app.get("/v2/positions/{symbol}")
    async def position(symbol: str) -> Any:
        with world.lock:
            if symbol not in world.holdings:
                return _error(404, 40410000, "position does not exist")
            return world.position_json(symbol)

    @app.delete("/v2/positions")
    async def close_all(request: Request) -> Any:
        cancel = request.query_params.get("cancel_orders", "").lower() == "true"
        with world.lock:
            if cancel:
                for order in world.orders.values():
                    if order.is_open:
                        order.status = "canceled"
                        order.updated_at = world.moment()
            results = []
            for symbol in sorted(world.holdings):
                holding = world.holdings[symbol]
                body = {"symbol": symbol, "side": "sell", "type": "market", "qty": str(holding.qty)}
                refusal = world.refuse(symbol, "sell", holding.qty, None)
                if refusal is not None:
                    refused = json.loads(bytes(refusal.body))
                    results.append(
                        {"symbol": symbol, "status": refusal.status_code, "body": refused}
                    )
                    continue
                order = world.new_order(body)
                world.orders[order.id] = order
                world.on_submit(order)
                results.append(
                    {
                        "symbol": symbol,
                        "status": 200,
                        "order_id": order.id,
                        "body": world.order_json(order),
                    }
                )
            return JSONResponse(results, status_code=207)

    @app.get("/v2/assets/{symbol}")
    async def asset(symbol: str) -> Any:
        with world.lock:
            found = world.assets.get(symbol)
            if found is None:
                return _error(404, 40410000, "asset not found")
            return {
                "id": found.id,
                "class": "us_equity",
                "exchange": found.exchange,
                "symbol": symbol,
                "name": found.name or symbol,
                "status": "active",
                "tradable": found.tradable,
                "marginable": True,
                "shortable": False,
                "easy_to_borrow": False,
                "fractionable": found.fractionable,
                "attributes": [],
            }

    @app.post("/v2/orders")
    async def submit(request: Request) -> Any:
        body = await request.json()
        with world.lock:
            client_order_id = body.get("client_order_id")
            if client_order_id:
                world.order_creates[client_order_id] += 1
                if any(o.client_order_id == client_order_id for o in world.orders.values()):
                    return _error(422, 40010001, "client_order_id must be unique")
            if body.get("type") not in ("market", "limit") or body.get("time_in_force") != "day":
                return _error(422, 40010001, "only market and limit DAY orders are supported here")
            if body.get("type") == "limit" and body.get("limit_price") is None:
                return _error(422, 40010001, "limit_price is required for limit orders")
            qty = Decimal(str(body.get("qty", "0")))
            order = world.new_order(body)
            price = world.buy_price(order) if order.side == "buy" else None
            refusal = world.refuse(order.symbol, order.side, qty, price)
            if refusal is not None:
                return refusal
            world.orders[order.id] = order
            world.on_submit(order)
            return world.order_json(order)

    @app.get("/v2/orders")
    async def list_orders(request: Request) -> list[dict[str, Any]]:
        status = request.query_params.get("status", "open")
        with world.lock:
            chosen = [
                o
                for o in world.orders.values()
                if status == "all" or (o.is_open if status == "open" else not o.is_open)
            ]
            chosen.sort(key=lambda o: o.submitted_at, reverse=True)
            return [world.order_json(o) for o in chosen]

    @app.delete("/v2/orders")
    async def cancel_all() -> Any:
        with world.lock:
            results = []
            for order in world.orders.values():
                if order.is_open:
                    order.status = "canceled"
                    order.updated_at = world.moment()
                    results.append({"id": order.id, "status": 200, "body": None})
            return JSONResponse(results, status_code=207)

    @app.get("/v2/orders:by_client_order_id")
    async def by_client_id(client_order_id: str) -> Any:
        with world.lock:
            order = next(
                (o for o in world.orders.values() if o.client_order_id == client_order_id), None
            )
            if order is None:
                return _error(404, 40410000, "order not found")
            world.on_read(order)
            return world.order_json(order)

    @app.get("/v2/orders/{order_id}")
    async def get_order(order_id: str) -> Any:
        with world.lock:
            order = world.orders.get(order_id)
            if order is None:
                return _error(404, 40410000, "order not found")
            world.on_read(order)
            return world.order_json(order)

    @app.delete("/v2/orders/{order_id}")
    async def cancel(order_id: str) -> Any:
        with world.lock:
            order = world.orders.get(order_id)
            if order is None:
                return _error(404, 40410000, "order not found")
            if order.is_open and world.rule(order.symbol).mode is FillMode.ON_CANCEL:
                world.fill(order, order.remaining)
            if not order.is_open:
                return _error(422, 42210000, f'order is already in "{order.status}" state')
            order.status = "canceled"
            order.updated_at = world.moment()
            return Response(status_code=204)

    @app.get("/v2/clock")
    async def clock() -> dict[str, Any]:
        with world.lock:
            return world.clock()

    @app.get("/v2/calendar")
    async def calendar(start: dt.date, end: dt.date) -> list[dict[str, Any]]:
        with world.lock:
            sessions = world.sessions(start, end)
        return [
            {
                "date": day.isoformat(),
                "open": opened.astimezone(NEW_YORK).strftime("%H:%M"),
                "close": closed.astimezone(NEW_YORK).strftime("%H:%M"),
                "session_open": "0400",
                "session_close": "2000",
                "settlement_date": day.isoformat(),
            }
            for day, opened, closed in sessions
        ]

    @app.get("/v2/stocks/quotes/latest")
    async def latest_quotes(symbols: str) -> dict[str, Any]:
        with world.lock:
            found = {s: world.quotes[s] for s in symbols.split(",") if s in world.quotes}
            return {
                "quotes": {
                    s: {
                        "t": _iso(q.timestamp),
                        "ax": "V",
                        "ap": float(q.ask),
                        "as": float(q.ask_size),
                        "bx": "V",
                        "bp": float(q.bid),
                        "bs": float(q.bid_size),
                        "c": ["R"],
                        "z": "C",
                    }
                    for s, q in found.items()
                }
            }

    @app.get("/v2/stocks/trades/latest")
    async def latest_trades(symbols: str) -> dict[str, Any]:
        with world.lock:
            found = {s: world.trades[s] for s in symbols.split(",") if s in world.trades}
            return {
                "trades": {
                    s: {
                        "t": _iso(t.timestamp),
                        "x": "V",
                        "p": float(t.price),
                        "s": float(t.size),
                        "c": ["@"],
                        "i": 1,
                        "z": "C",
                    }
                    for s, t in found.items()
                }
            }

    @app.get("/v2/stocks/bars")
    async def bars(symbols: str, start: str, end: str) -> dict[str, Any]:
        begin = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
        finish = dt.datetime.fromisoformat(end.replace("Z", "+00:00"))
        with world.lock:
            chosen = {}
            for symbol in symbols.split(","):
                rows = [
                    bar
                    for bar in world.bars.get(symbol, [])
                    if begin <= dt.datetime.fromisoformat(bar["t"].replace("Z", "+00:00")) <= finish
                ]
                if rows:
                    chosen[symbol] = rows
            return {"bars": chosen, "next_page_token": None}

    return app


class AlpacaLoopback:
    """Serves an `AlpacaWorld` on 127.0.0.1 (random port) from a background thread."""

    def __init__(self, world: AlpacaWorld) -> None:
        self.world = world
        config = uvicorn.Config(
            build_app(world),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, name="alpaca-loopback", daemon=True
        )

    @property
    def base_url(self) -> str:
        port = self._server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the loopback Alpaca server did not start within 10 s")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


@contextmanager
def running_alpaca(
    *,
    key_id: str = "PKLOOPBACKKEY0001",
    secret_key: str = "loopback-secret-0001",
    cash: Decimal = Decimal(100000),
) -> Iterator[AlpacaLoopback]:
    loopback = AlpacaLoopback(AlpacaWorld(key_id=key_id, secret_key=secret_key, cash=cash))
    loopback.start()
    try:
        yield loopback
    finally:
        loopback.stop()
