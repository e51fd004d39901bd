"""The loopback's market: assets (tradable, fractionable), latest quotes and trades, daily bars,
and the prices an order is checked and filled at."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from shared.market_clock import NEW_YORK
from tests.fakes.alpaca.orders import LoopbackOrder, iso


@dataclass
class LoopbackAsset:
    tradable: bool = True
    fractionable: bool = True
    name: str = ""
    exchange: str = "NASDAQ"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def json(self, symbol: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "class": "us_equity",
            "exchange": self.exchange,
            "symbol": symbol,
            "name": self.name or symbol,
            "status": "active",
            "tradable": self.tradable,
            "marginable": True,
            "shortable": False,
            "easy_to_borrow": False,
            "fractionable": self.fractionable,
            "attributes": [],
        }


@dataclass
class LoopbackQuote:
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    timestamp: dt.datetime


@dataclass
class LoopbackTrade:
    price: Decimal
    size: Decimal
    timestamp: dt.datetime


@dataclass
class Market:
    assets: dict[str, LoopbackAsset] = field(default_factory=dict)
    quotes: dict[str, LoopbackQuote] = field(default_factory=dict)
    trades: dict[str, LoopbackTrade] = field(default_factory=dict)
    bars: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def asset(self, symbol: str) -> LoopbackAsset:
        return self.assets.get(symbol) or LoopbackAsset()

    def fractionable(self, symbol: str) -> bool:
        return self.asset(symbol).fractionable

    def price(self, symbol: str) -> Decimal | None:
        """The mid of a two-sided quote, its one priced side, else the last trade."""
        quote = self.quotes.get(symbol)
        if quote is not None and quote.bid > 0 and quote.ask > 0:
            return (quote.bid + quote.ask) / 2
        if quote is not None and max(quote.bid, quote.ask) > 0:
            return max(quote.bid, quote.ask)
        trade = self.trades.get(symbol)
        return None if trade is None else trade.price

    def touch(self, symbol: str, side: str) -> Decimal | None:
        """The far side for an order of `side`: the ask for a buy, the bid for a sell."""
        quote = self.quotes.get(symbol)
        if quote is None:
            return None
        price = quote.ask if side == "buy" else quote.bid
        return price if price > 0 else None

    def bid_ask(self, symbol: str) -> tuple[Decimal | None, Decimal | None]:
        quote = self.quotes.get(symbol)
        return (None, None) if quote is None else (quote.bid, quote.ask)

    def buy_price(self, order: LoopbackOrder) -> Decimal | None:
        """What a BUY holds of buying power per share: its limit, else the ask."""
        if order.limit_price is not None:
            return order.limit_price
        return self.touch(order.symbol, "buy") or self.price(order.symbol)

    def fill_price(self, order: LoopbackOrder) -> Decimal | None:
        """A market order fills at the touch; a limit at the touch when better, else at its
        limit."""
        touch = self.touch(order.symbol, order.side)
        if order.limit_price is None:
            return touch or self.price(order.symbol)
        if touch is None:
            return order.limit_price
        if order.side == "buy":
            return min(order.limit_price, touch)
        return max(order.limit_price, touch)

    def set_daily_bars(
        self, symbol: str, rows: list[tuple[dt.date, Decimal, Decimal, Decimal, Decimal, int]]
    ) -> None:
        self.bars[symbol] = [
            {
                "t": iso(dt.datetime.combine(day, dt.time(), tzinfo=NEW_YORK)),
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

    def quotes_json(self, symbols: list[str]) -> dict[str, Any]:
        return {
            s: {
                "t": iso(q.timestamp),
                "ax": "V",
                "ap": float(q.ask),
                "as": float(q.ask_size),
                "bx": "V",
                "bp": float(q.bid),
                "bs": float(q.bid_size),
                "c": ["R"],
                "z": "C",
            }
            for s, q in self.quotes.items()
            if s in symbols
        }

    def trades_json(self, symbols: list[str]) -> dict[str, Any]:
        return {
            s: {
                "t": iso(t.timestamp),
                "x": "V",
                "p": float(t.price),
                "s": float(t.size),
                "c": ["@"],
                "i": 1,
                "z": "C",
            }
            for s, t in self.trades.items()
            if s in symbols
        }

    def bars_json(self, symbols: list[str], begin: dt.datetime, finish: dt.datetime) -> Any:
        chosen = {}
        for symbol in symbols:
            rows = [
                bar
                for bar in self.bars.get(symbol, [])
                if begin <= dt.datetime.fromisoformat(bar["t"].replace("Z", "+00:00")) <= finish
            ]
            if rows:
                chosen[symbol] = rows
        return chosen
