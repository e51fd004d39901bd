"""The state of one loopback Alpaca account and its market, and what Alpaca does with each
request, in Alpaca's words, status codes and error bodies.

New orders pass Alpaca's rule table (`shared.broker.order_rules`, the same table the simulated
broker applies), then buying power or the quantity available. Tests seed and inspect the world
from their own thread and the server answers from its thread; every touch holds `lock`.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from shared import market_clock
from shared.broker import order_rules
from shared.broker.models import OrderType
from shared.trading import Side
from tests.fakes.alpaca.account import Holding, LoopbackAccount, money
from tests.fakes.alpaca.budget import RateBudget, RecordedRequest, RequestLog
from tests.fakes.alpaca.faults import Fault
from tests.fakes.alpaca.market import LoopbackAsset, LoopbackQuote, LoopbackTrade, Market
from tests.fakes.alpaca.orders import (
    PENDING_CANCEL,
    CancelRule,
    FillMode,
    FillRule,
    LoopbackOrder,
    OrderBook,
    order_json,
)
from tests.fakes.clock import IN_SESSION, ControlledClock

NEW_YORK = market_clock.NEW_YORK
ORDER_TYPES = ("market", "limit")
TIMES_IN_FORCE = ("day", "gtc")
LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 500
FULL = Decimal(100)


class Refused(Exception):
    """Alpaca's answer to a request it refuses: an HTTP status and its JSON body."""

    def __init__(self, status: int, code: int, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"code": code, "message": message, **fields}


class AlpacaWorld:
    """One account at the loopback Alpaca: tests seed it and read it back (`set_*`, `creates`,
    `calls`, `max_in_window`); the server answers each request from it (`*_json`, `submit`,
    `cancel`, `close_position`), raising `Refused` with Alpaca's answer."""

    def __init__(
        self,
        *,
        key_id: str,
        secret_key: str,
        cash: Decimal,
        clock: ControlledClock | None = None,
    ) -> None:
        self.key_id = key_id
        self.secret_key = secret_key
        self.lock = threading.RLock()
        self.clock = clock or ControlledClock(IN_SESSION)
        self.account = LoopbackAccount(cash)
        self.market = Market()
        self.book = OrderBook(
            fill_price=self.market.fill_price,
            book_fill=self._book_fill,
            fractionable=self.market.fractionable,
        )
        self.faults: list[Fault] = []
        self.log = RequestLog()
        self.latency_s = 0.0

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.log.requests

    @property
    def orders(self) -> dict[str, LoopbackOrder]:
        return self.book.orders

    # ------------------------------------------------------------------ seeding (test thread)

    def set_cash(self, cash: Decimal) -> None:
        with self.lock:
            self.account.cash = cash

    def set_asset(
        self, symbol: str, *, tradable: bool = True, fractionable: bool = True, name: str = ""
    ) -> None:
        with self.lock:
            self.market.assets[symbol] = LoopbackAsset(tradable, fractionable, name)

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
            self.market.quotes[symbol] = LoopbackQuote(
                bid, ask, bid_size, ask_size, timestamp or self.clock()
            )
            self.market.assets.setdefault(symbol, LoopbackAsset())

    def set_trade(self, symbol: str, price: Decimal, *, size: Decimal = Decimal(100)) -> None:
        with self.lock:
            self.market.trades[symbol] = LoopbackTrade(price, size, self.clock())

    def set_position(self, symbol: str, qty: Decimal, avg_entry_price: Decimal) -> None:
        with self.lock:
            self.account.holdings[symbol] = Holding(qty, avg_entry_price)
            self.market.assets.setdefault(symbol, LoopbackAsset())

    def set_daily_bars(
        self, symbol: str, rows: list[tuple[dt.date, Decimal, Decimal, Decimal, Decimal, int]]
    ) -> None:
        """Rows of (session date, open, high, low, close, volume)."""
        with self.lock:
            self.market.set_daily_bars(symbol, rows)

    def set_fill(self, rule: FillRule, symbol: str | None = None) -> None:
        with self.lock:
            if symbol is None:
                self.book.default_fill = rule
            else:
                self.book.fills[symbol] = rule

    def set_cancel(self, symbol: str, rule: CancelRule) -> None:
        """Cancels of `symbol` stay `pending_cancel` for `rule.pending_s`, then end as
        `rule.end` (a fill racing the cancel when FILLED)."""
        with self.lock:
            self.book.cancels[symbol] = rule

    def hold_accepted(self, symbol: str) -> None:
        """Orders of `symbol` stay `accepted`, never routed, even in the session."""
        with self.lock:
            self.book.held.add(symbol)

    def set_day_trading(self, standing: order_rules.DayTrading) -> None:
        with self.lock:
            self.account.day_trading = standing

    def set_rate_limit(self, budget: RateBudget | None) -> None:
        """Refuse requests over `budget` per key with 429 (None: count only)."""
        with self.lock:
            self.log.budget = budget

    def set_latency(self, latency_s: float) -> None:
        """Every answer waits `latency_s` first."""
        with self.lock:
            self.latency_s = latency_s

    def inject(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def set_now(self, now: dt.datetime) -> None:
        """Stop the clock at `now` (use `clock` to let it run or to advance it)."""
        self.clock.set(now)

    def delay_sell_proceeds(self, account_reads: int) -> None:
        """Sell proceeds reach buying power only on the `account_reads`-th account read after the
        fill (cash moves at once), to exercise the buying-power checks between the phases."""
        with self.lock:
            self.account.proceeds_delay_reads = account_reads

    def set_status(self, client_order_id: str, status: str) -> None:
        """The broker moves an order by itself: to `expired`, `rejected`, `done_for_day`,
        `calculated`, `pending_replace`, ..."""
        with self.lock:
            order = self.book.by_client_id(client_order_id)
            assert order is not None, f"no order {client_order_id}"
            order.status = status
            order.updated_at = self.clock()

    def creates(self, client_order_id: str) -> int:
        """How many order creations for this client order id reached the order book."""
        with self.lock:
            return self.book.creates[client_order_id]

    def calls(self, method: str, path: str) -> int:
        with self.lock:
            return self.log.calls(method, path)

    def max_in_window(self, key_id: str, window_s: float) -> int:
        """The most requests made with `key_id` in any `window_s`-second window, from every
        process that used the key."""
        with self.lock:
            return self.log.max_in_window(key_id, window_s)

    # ------------------------------------------------------------------ figures

    def buying_power(self) -> Decimal:
        reserved = self.account.unsettled_proceeds()
        for order in self.book:
            if order.is_open and order.side == "buy":
                reserved += order.remaining * (self.market.buy_price(order) or Decimal(0))
        return self.account.cash - reserved

    def market_value(self, symbol: str) -> Decimal:
        holding = self.account.holdings[symbol]
        return holding.qty * (self.market.price(symbol) or holding.avg_entry_price)

    def equity(self) -> Decimal:
        return self.account.cash + sum(
            (self.market_value(s) for s in self.account.holdings), Decimal(0)
        )

    def _book_fill(self, order: LoopbackOrder, qty: Decimal, price: Decimal) -> None:
        day = self.clock().astimezone(NEW_YORK).date()
        self.account.book(order.symbol, order.side, qty, price, day)

    def settle(self) -> None:
        """Bring every order up to the clock (routed at the open, expired at the close, a
        pending cancel ended) before a request is answered, as time passes at Alpaca whether
        anyone asks or not."""
        now = self.clock()
        for order in self.book:
            self.book.settle(order, now)

    # ------------------------------------------------------------------ answers (server thread)

    def account_json(self) -> dict[str, Any]:
        self.account.count_read()
        return self.account.account_json(self.buying_power(), self.equity())

    def position_json(self, symbol: str) -> dict[str, Any]:
        holding = self.account.holdings.get(symbol)
        if holding is None:
            raise Refused(404, 40410000, "position does not exist")
        asset = self.market.asset(symbol)
        current = self.market.price(symbol) or holding.avg_entry_price
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
            "qty_available": str(holding.qty - self.book.held_for_sale(symbol)),
            "side": "long",
            "market_value": money(market_value),
            "cost_basis": money(cost_basis),
            "unrealized_pl": money(market_value - cost_basis),
            "unrealized_plpc": "0",
            "unrealized_intraday_pl": "0",
            "unrealized_intraday_plpc": "0",
            "current_price": str(current),
            "lastday_price": str(current),
            "change_today": "0",
        }

    def order_json(self, order: LoopbackOrder) -> dict[str, Any]:
        return order_json(order, self.market.asset(order.symbol).id)

    def read_order(self, order: LoopbackOrder | None) -> dict[str, Any]:
        if order is None:
            raise Refused(404, 40410000, "order not found")
        self.book.read(order, self.clock())
        return self.order_json(order)

    def list_orders(self, query: Mapping[str, str]) -> list[dict[str, Any]]:
        """GET /v2/orders: `status` open (default), closed or all; `symbols` (comma-separated),
        `side`, `after`/`until` (submission time, exclusive), `direction` (desc by default),
        `limit` (50 by default, at most 500)."""
        status = query.get("status", "open")
        symbols = set(query["symbols"].split(",")) if query.get("symbols") else None
        after, until = _timestamp(query.get("after")), _timestamp(query.get("until"))
        chosen = []
        for order in self.book:
            if status != "all" and order.is_open != (status == "open"):
                continue
            if symbols is not None and order.symbol not in symbols:
                continue
            if query.get("side") and order.side != query["side"]:
                continue
            if after is not None and order.submitted_at <= after:
                continue
            if until is not None and order.submitted_at >= until:
                continue
            chosen.append(order)
        chosen.sort(key=lambda o: o.submitted_at, reverse=query.get("direction", "desc") == "desc")
        limit = min(int(query.get("limit", LIST_LIMIT_DEFAULT)), LIST_LIMIT_MAX)
        return [self.order_json(o) for o in chosen[:limit]]

    def submit(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /v2/orders."""
        client_order_id = body.get("client_order_id")
        if client_order_id:
            self.book.creates[client_order_id] += 1
            if self.book.by_client_id(client_order_id) is not None:
                raise Refused(422, 40010001, "client_order_id must be unique")
        order_type, time_in_force = body.get("type"), body.get("time_in_force")
        if order_type not in ORDER_TYPES or time_in_force not in TIMES_IN_FORCE:
            raise Refused(
                422, 40010001, "only market and limit orders, day or gtc, are supported here"
            )
        limit_price = _decimal(body.get("limit_price"), "limit_price")
        if order_type == "limit" and limit_price is None:
            raise Refused(422, 40010001, "limit orders require a limit price")
        if order_type == "market" and limit_price is not None:
            raise Refused(422, 40010001, "market orders require no stop or limit price")
        symbol, side = str(body["symbol"]), str(body["side"])
        qty = _decimal(body.get("qty"), "qty") or Decimal(0)
        self._check(
            symbol=symbol,
            side=side,
            qty=qty,
            order_type=str(order_type),
            limit_price=limit_price,
            client_order_id=client_order_id or "",
            time_in_force=str(time_in_force),
        )
        order = self.book.new(
            symbol=symbol,
            side=side,
            order_type=str(order_type),
            qty=qty,
            limit_price=limit_price,
            now=self.clock(),
            client_order_id=client_order_id,
            time_in_force=str(time_in_force),
        )
        return self.order_json(order)

    def cancel(self, order_id: str) -> None:
        """DELETE /v2/orders/{id}: taken (204) and ended later, or refused if already ended."""
        order = self.book.orders.get(order_id)
        if order is None:
            raise Refused(404, 40410000, "order not found")
        now = self.clock()
        if order.is_open and self.book.rule(order.symbol).mode is FillMode.ON_CANCEL:
            self.book.fill(order, order.remaining, now)
        if not order.is_open:
            raise Refused(422, 42210000, f'order is already in "{order.status}" state')
        if order.status == "pending_replace":
            raise Refused(422, 42210000, "order is pending replace and cannot be canceled")
        self.book.ask_cancel(order, now)

    def cancel_all(self) -> list[dict[str, Any]]:
        results = []
        for order in list(self.book):
            if order.is_open and order.status != PENDING_CANCEL:
                self.book.ask_cancel(order, self.clock())
                results.append({"id": order.id, "status": 200, "body": None})
        return results

    def close_position(
        self, symbol: str, qty: str | None = None, percentage: str | None = None
    ) -> dict[str, Any]:
        """DELETE /v2/positions/{symbol}: a market DAY sell of the whole holding, of `qty`
        shares, or of `percentage` of it (fractional only if the holding is), under a client
        order id of Alpaca's own."""
        holding = self.account.holdings.get(symbol)
        if holding is None:
            raise Refused(404, 40410000, "position does not exist")
        if qty is not None and percentage is not None:
            raise Refused(422, 40010001, "qty and percentage cannot be given together")
        amount = holding.qty
        if qty is not None:
            amount = _decimal(qty, "qty") or Decimal(0)
        elif percentage is not None:
            share = _decimal(percentage, "percentage") or Decimal(0)
            if not Decimal(0) < share <= FULL:
                raise Refused(422, 40010001, "percentage must be between 0 and 100")
            whole = holding.qty == holding.qty.to_integral_value()
            places = Decimal(1) if whole else Decimal("1E-9")
            amount = (holding.qty * share / FULL).quantize(places, rounding=ROUND_DOWN)
            amount = Decimal(format(amount.normalize(), "f"))
        if amount <= 0:
            raise Refused(422, 40010001, "qty must be > 0")
        self._check(
            symbol=symbol,
            side="sell",
            qty=amount,
            order_type="market",
            limit_price=None,
            client_order_id="",
            time_in_force="day",
            closes_position=True,
        )
        order = self.book.new(
            symbol=symbol,
            side="sell",
            order_type="market",
            qty=amount,
            limit_price=None,
            now=self.clock(),
        )
        return self.order_json(order)

    def close_all(self, cancel_orders: bool) -> list[dict[str, Any]]:
        if cancel_orders:
            for order in list(self.book):
                if order.is_open:
                    order.status = "canceled"
                    order.updated_at = self.clock()
        results: list[dict[str, Any]] = []
        for symbol in sorted(self.account.holdings):
            try:
                body = self.close_position(symbol)
            except Refused as refused:
                results.append({"symbol": symbol, "status": refused.status, "body": refused.body})
            else:
                results.append(
                    {"symbol": symbol, "status": 200, "order_id": body["id"], "body": body}
                )
        return results

    def clock_json(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "timestamp": now.astimezone(NEW_YORK).isoformat(),
            "is_open": market_clock.is_open_at(now),
            "next_open": market_clock.next_open(now).astimezone(NEW_YORK).isoformat(),
            "next_close": market_clock.next_close(now).astimezone(NEW_YORK).isoformat(),
        }

    def calendar_json(self, start: dt.date, end: dt.date) -> list[dict[str, Any]]:
        return [
            {
                "date": day.isoformat(),
                "open": market_clock.session_open(day).astimezone(NEW_YORK).strftime("%H:%M"),
                "close": market_clock.session_close(day).astimezone(NEW_YORK).strftime("%H:%M"),
                "session_open": "0400",
                "session_close": "2000",
                "settlement_date": day.isoformat(),
            }
            for day in market_clock.sessions_between(start, end)
        ]

    # ------------------------------------------------------------------ checks

    def _check(
        self,
        *,
        symbol: str,
        side: str,
        qty: Decimal,
        order_type: str,
        limit_price: Decimal | None,
        client_order_id: str,
        time_in_force: str,
        closes_position: bool = False,
    ) -> None:
        """Alpaca's refusals for a new order, in Alpaca's order: the asset, the rule table,
        then buying power or the quantity available."""
        asset = self.market.assets.get(symbol)
        if asset is None:
            raise Refused(422, 42210000, f'asset "{symbol}" not found')
        if not asset.tradable:
            raise Refused(422, 42210000, f"asset {symbol} is not tradable")
        if qty <= 0:
            raise Refused(422, 40010001, "qty must be > 0")
        bid, ask = self.market.bid_ask(symbol)
        now = self.clock()
        today = now.astimezone(NEW_YORK).date()
        open_orders = self.book.open_orders(symbol)
        refusal = order_rules.refusal(
            order_rules.NewOrder(
                symbol=symbol,
                side=Side(side.upper()),
                qty=qty,
                order_type=OrderType(order_type),
                limit_price=limit_price,
                client_order_id=client_order_id,
                fractionable=asset.fractionable,
                bid=bid,
                ask=ask,
                equity=self.equity(),
                open_orders=[
                    order_rules.OpenOrder(o.id, Side(o.side.upper()), OrderType(o.type))
                    for o in open_orders
                ],
                bought_today=self.account.buys_today.get(symbol) == today
                or any(o.side == "buy" for o in open_orders),
                day_trading=self.account.day_trading,
                time_in_force=time_in_force,
                closes_position=closes_position,
            )
        )
        if refusal is not None:
            raise Refused(refusal.http_status, refusal.code, refusal.message, **refusal.fields)
        if side == "buy":
            price = limit_price or self.market.touch(symbol, "buy") or self.market.price(symbol)
            cost = qty * (price or Decimal(0))
            if cost > self.buying_power():
                raise Refused(
                    403,
                    40310000,
                    "insufficient buying power",
                    buying_power=money(self.buying_power()),
                    cost_basis=money(cost),
                )
            return
        holding = self.account.holdings.get(symbol)
        held = self.book.held_for_sale(symbol)
        existing = holding.qty if holding else Decimal(0)
        available = existing - held
        if qty > available:
            raise Refused(
                403,
                40310000,
                f"insufficient qty available for order (requested: {qty}, available: {available})",
                available=str(available),
                existing_qty=str(existing),
                held_for_orders=str(held),
                symbol=symbol,
            )


def _decimal(value: Any, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise Refused(422, 40010001, f"invalid {name}") from None


def _timestamp(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
