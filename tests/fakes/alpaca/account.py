"""The loopback's one account: cash, positions, sell proceeds that reach buying power late, and
the day-trading figures Alpaca reports (day-trading buying power, the pattern-day-trader flag,
the day-trade count)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from shared.broker.order_rules import DayTrading

CENT = Decimal("0.01")


def money(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_EVEN))


@dataclass
class Holding:
    qty: Decimal
    avg_entry_price: Decimal


@dataclass
class Unsettled:
    amount: Decimal
    reads_left: int


@dataclass
class LoopbackAccount:
    cash: Decimal
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    holdings: dict[str, Holding] = field(default_factory=dict)
    proceeds_delay_reads: int = 0
    unsettled: list[Unsettled] = field(default_factory=list)
    day_trading: DayTrading = field(default_factory=DayTrading)
    buys_today: dict[str, dt.date] = field(default_factory=dict)
    """The New York date of each symbol's latest BUY fill: a SELL that day is a day trade."""

    def book(self, symbol: str, side: str, qty: Decimal, price: Decimal, day: dt.date) -> None:
        """A fill of `qty` at `price` moves cash and the position (sell proceeds reach buying
        power late when a test asks)."""
        notional = qty * price
        holding = self.holdings.get(symbol)
        if side == "buy":
            self.cash -= notional
            self.buys_today[symbol] = day
            if holding is None:
                self.holdings[symbol] = Holding(qty, price)
            else:
                total = holding.qty + qty
                holding.avg_entry_price = (holding.qty * holding.avg_entry_price + notional) / total
                holding.qty = total
            return
        self.cash += notional
        if self.proceeds_delay_reads > 0:
            self.unsettled.append(Unsettled(notional, self.proceeds_delay_reads))
        if holding is not None:
            holding.qty -= qty
            if holding.qty <= 0:
                del self.holdings[symbol]

    def unsettled_proceeds(self) -> Decimal:
        return sum((u.amount for u in self.unsettled), Decimal(0))

    def count_read(self) -> None:
        """An account read brings late proceeds one read closer to buying power."""
        for pending in self.unsettled:
            pending.reads_left -= 1
        self.unsettled = [u for u in self.unsettled if u.reads_left > 0]

    def account_json(self, buying_power: Decimal, equity: Decimal) -> dict[str, Any]:
        standing = self.day_trading
        day_trading_power = (
            buying_power
            if standing.daytrading_buying_power is None
            else standing.daytrading_buying_power
        )
        last_equity = equity if standing.last_equity is None else standing.last_equity
        return {
            "id": self.id,
            "account_number": "PA0000LOOPBACK",
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
            "currency": "USD",
            "cash": money(self.cash),
            "buying_power": money(buying_power),
            "regt_buying_power": money(buying_power),
            "daytrading_buying_power": money(day_trading_power),
            "non_marginable_buying_power": money(buying_power),
            "portfolio_value": money(equity),
            "equity": money(equity),
            "last_equity": money(last_equity),
            "long_market_value": money(equity - self.cash),
            "short_market_value": "0",
            "multiplier": "1",
            "pattern_day_trader": standing.pattern_day_trader,
            "daytrade_count": standing.daytrade_count,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "shorting_enabled": False,
            "created_at": "2024-01-02T14:30:00Z",
        }
