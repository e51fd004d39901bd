"""The broker contract: what every `Broker` adapter must do, as one abstract test class.

To run it against an adapter, subclass `BrokerContract` in a `test_*.py` module (the class name
starting with `Test`) and provide two fixtures:

- `world` — a `BrokerWorld` for the adapter: seeds the account (cash, positions), the market
  (assets, quotes, trades), chooses how orders fill, and injects submission faults;
- `broker` — a connected `Broker` bound to that world's account, whose retry pauses do not wait.

`tests/integration/broker/test_alpaca.py` does this for the Alpaca adapter on the loopback server;
the simulated broker does the same with its own world.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from decimal import Decimal
from enum import StrEnum

from shared.broker import (
    Broker,
    OrderRequest,
    OrderStatus,
    OrderType,
)
from shared.trading import Side


class Fill(StrEnum):
    """How the world fills the orders of a symbol."""

    IMMEDIATE = "immediate"
    NEVER = "never"
    HALF = "half"
    ON_CANCEL = "on_cancel"


class SubmissionFault(StrEnum):
    RATE_LIMITED = "rate_limited"
    """The broker answers 429 (nothing is placed)."""
    TRANSIENT = "transient"
    """The broker fails with a 5xx (nothing is placed)."""
    RESPONSE_LOST = "response_lost"
    """The broker places the order, but its answer never reaches the caller (a timeout)."""


class BrokerWorld(ABC):
    """A test's handle on one adapter's account and market."""

    @abstractmethod
    def set_cash(self, cash: Decimal) -> None: ...

    @abstractmethod
    def set_position(self, symbol: str, qty: Decimal, avg_entry_price: Decimal) -> None: ...

    @abstractmethod
    def set_asset(
        self, symbol: str, *, tradable: bool = True, fractionable: bool = True
    ) -> None: ...

    @abstractmethod
    def set_quote(
        self,
        symbol: str,
        bid: Decimal,
        ask: Decimal,
        *,
        bid_size: Decimal = Decimal(100),
        ask_size: Decimal = Decimal(100),
    ) -> None: ...

    @abstractmethod
    def set_trade(self, symbol: str, price: Decimal) -> None: ...

    @abstractmethod
    def set_fill(self, symbol: str, fill: Fill) -> None: ...

    @abstractmethod
    def fail_next_submissions(self, fault: SubmissionFault, times: int = 1) -> None: ...

    @abstractmethod
    def submissions(self, client_order_id: str) -> int:
        """How many submissions under this client order id reached the order book."""


def _market(symbol: str, side: Side, qty: str, client_order_id: str) -> OrderRequest:
    return OrderRequest(
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        order_type=OrderType.MARKET,
        client_order_id=client_order_id,
    )


def _limit(symbol: str, side: Side, qty: str, price: str, client_order_id: str) -> OrderRequest:
    return OrderRequest(
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        order_type=OrderType.LIMIT,
        limit_price=Decimal(price),
        client_order_id=client_order_id,
    )


class BrokerContract:
    """Every test takes the subclass's `world` and `broker` fixtures (see the module docstring)."""

    # ------------------------------------------------------------------ account and positions

    async def test_account_reports_the_seeded_cash_as_equity_and_buying_power(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        world.set_cash(Decimal("50000"))

        account = await broker.get_account()

        assert account.account_id == broker.account_id
        assert account.cash == Decimal("50000")
        assert account.buying_power == Decimal("50000")
        assert account.equity == Decimal("50000")
        assert account.portfolio_value == account.equity

    async def test_positions_report_quantity_cost_and_market_value(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
        world.set_position("AAPL", Decimal("10"), Decimal("100"))

        [position] = await broker.get_positions()

        assert position.symbol == "AAPL"
        assert position.qty == Decimal("10")
        assert position.qty_available == Decimal("10")
        assert position.avg_entry_price == Decimal("100")
        assert position.current_price is not None
        assert Decimal("150.00") <= position.current_price <= Decimal("150.10")
        assert position.market_value == (position.qty * position.current_price).quantize(
            Decimal("0.01")
        )

    async def test_account_equity_includes_positions(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        world.set_cash(Decimal("1000"))
        world.set_quote("AAPL", Decimal("150.00"), Decimal("150.00"))
        world.set_position("AAPL", Decimal("10"), Decimal("100"))

        account = await broker.get_account()

        assert account.cash == Decimal("1000")
        assert account.equity == Decimal("2500")

    async def test_an_unknown_position_is_none(self, broker: Broker) -> None:
        assert await broker.get_position("NOPE") is None

    async def test_one_position_is_read_by_symbol(self, world: BrokerWorld, broker: Broker) -> None:
        world.set_quote("MSFT", Decimal("400"), Decimal("400.20"))
        world.set_position("MSFT", Decimal("3"), Decimal("390"))

        position = await broker.get_position("MSFT")

        assert position is not None
        assert (position.symbol, position.qty) == ("MSFT", Decimal("3"))

    async def test_asset_metadata_says_tradable_and_fractionable(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        world.set_asset("AAPL")
        world.set_asset("BRKA", fractionable=False)
        world.set_asset("GONE", tradable=False)

        aapl, brka, gone = [await broker.get_asset(s) for s in ("AAPL", "BRKA", "GONE")]

        assert aapl is not None and (aapl.tradable, aapl.fractionable) == (True, True)
        assert brka is not None and (brka.tradable, brka.fractionable) == (True, False)
        assert gone is not None and gone.tradable is False

    async def test_an_unknown_asset_is_none(self, broker: Broker) -> None:
        assert await broker.get_asset("NOPE") is None

    # ------------------------------------------------------------------ orders

    async def test_a_market_buy_fills_at_the_ask_and_moves_cash_into_a_position(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        world.set_cash(Decimal("10000"))
        world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))

        order = await broker.submit_order(_market("AAPL", Side.BUY, "10", "alc:w1:AAPL:b:1:1"))

        assert order.status is OrderStatus.FILLED
        assert order.client_order_id == "alc:w1:AAPL:b:1:1"
        assert order.filled_qty == Decimal("10")
        assert order.filled_avg_price == Decimal("150.10")
        account = await broker.get_account()
        assert account.cash == Decimal("10000") - Decimal("1501.00")
        position = await broker.get_position("AAPL")
        assert position is not None and position.qty == Decimal("10")

    async def test_a_fractional_quantity_fills_on_a_fractionable_asset(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        world.set_quote("SPY", Decimal("500.00"), Decimal("500.02"))

        order = await broker.submit_order(_market("SPY", Side.BUY, "0.123456", "alc:w1:SPY"))

        assert order.filled_qty == Decimal("0.123456")

    async def test_a_working_sell_is_open_and_holds_its_shares(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
        world.set_position("AAPL", Decimal("10"), Decimal("100"))
        world.set_fill("AAPL", Fill.NEVER)

        order = await broker.submit_order(
            _limit("AAPL", Side.SELL, "4", "160.00", "alc:w1:AAPL:s:1:1")
        )

        assert order.status is OrderStatus.ACCEPTED
        assert order.limit_price == Decimal("160.00")
        assert [o.order_id for o in await broker.get_open_orders()] == [order.order_id]
        position = await broker.get_position("AAPL")
        assert position is not None
        assert (position.qty, position.qty_available) == (Decimal("10"), Decimal("6"))

    async def test_an_order_is_read_by_id_and_by_client_order_id(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
        placed = await broker.submit_order(_market("AAPL", Side.BUY, "1", "alc:w1:AAPL:b:1:1"))

        by_id = await broker.get_order(placed.order_id)
        by_client_id = await broker.get_order_by_client_id("alc:w1:AAPL:b:1:1")

        assert by_id is not None and by_id.order_id == placed.order_id
        assert by_client_id is not None and by_client_id.order_id == placed.order_id

    async def test_an_absent_order_is_none(self, broker: Broker) -> None:
        assert await broker.get_order("00000000-0000-0000-0000-000000000000") is None
        assert await broker.get_order_by_client_id("alc:never-placed") is None

    async def test_submitting_a_client_order_id_again_returns_the_first_order(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
        world.set_fill("AAPL", Fill.NEVER)
        request = _limit("AAPL", Side.BUY, "2", "149.00", "alc:w1:AAPL:b:1:1")

        first = await broker.submit_order(request)
        second = await broker.submit_order(request)

        assert second.order_id == first.order_id
        assert len(await broker.get_open_orders()) == 1

    async def test_a_partial_fill_reports_the_filled_quantity(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
        world.set_fill("AAPL", Fill.HALF)

        order = await broker.submit_order(_market("AAPL", Side.BUY, "10", "alc:w1:AAPL:b"))

        assert order.status is OrderStatus.PARTIALLY_FILLED
        assert order.filled_qty == Decimal("5")
        assert order.remaining_qty == Decimal("5")

    async def test_the_latest_quote_carries_both_sides_sizes_and_time(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        world.set_quote(
            "AAPL", Decimal("150.00"), Decimal("150.10"), bid_size=Decimal(3), ask_size=Decimal(7)
        )

        quote = await broker.get_latest_quote("AAPL")

        assert quote is not None
        assert (quote.bid, quote.ask) == (Decimal("150.00"), Decimal("150.10"))
        assert (quote.bid_size, quote.ask_size) == (Decimal(3), Decimal(7))
        assert quote.as_of.tzinfo is not None

    async def test_a_one_sided_quote_is_returned_as_the_broker_gives_it(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        world.set_quote("THIN", Decimal("0"), Decimal("12.34"))

        quote = await broker.get_latest_quote("THIN")

        assert quote is not None and (quote.bid, quote.ask) == (Decimal(0), Decimal("12.34"))

    async def test_a_symbol_without_quotes_has_no_quote(self, broker: Broker) -> None:
        assert await broker.get_latest_quote("NOPE") is None

    async def test_the_latest_trade_carries_price_and_time(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        world.set_trade("AAPL", Decimal("150.05"))

        trade = await broker.get_latest_trade("AAPL")

        assert trade is not None and trade.price == Decimal("150.05")
        assert trade.timestamp.tzinfo is not None
        assert await broker.get_latest_trade("NOPE") is None

    async def test_the_clock_points_to_the_next_open_and_close(self, broker: Broker) -> None:
        clock = await broker.get_clock()

        assert clock.next_open > clock.now
        assert clock.next_close > clock.now
        assert clock.is_open == (clock.next_close < clock.next_open)

    async def test_the_calendar_skips_holidays_and_knows_early_closes(self, broker: Broker) -> None:
        sessions = await broker.get_calendar(dt.date(2026, 11, 23), dt.date(2026, 11, 27))

        assert [s.date.day for s in sessions] == [23, 24, 25, 27]
        friday = sessions[-1]
        assert friday.close - friday.open == dt.timedelta(hours=3, minutes=30)
        assert friday.open.utcoffset() == dt.timedelta(hours=-5)
