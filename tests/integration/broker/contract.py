"""The broker contract: what every `Broker` adapter must do, as one abstract test class.

To run it against an adapter, subclass `BrokerContract` in a `test_*.py` module (the class name
starting with `Test`) and provide two fixtures:

- `world` — a `BrokerWorld` for the adapter: seeds the account (cash, positions, day-trading
  standing), the market (assets, quotes, trades), chooses how orders fill and how cancels end,
  moves the clock the broker reads (starting at `START`, a Tuesday morning in the session), and
  injects submission faults;
- `broker` — a connected `Broker` bound to that world's account, whose retry pauses do not wait.

The order-acceptance rules are checked table-driven from `RULE_CASES`: each adapter must refuse
each case with the same error class, rule, status and code (Alpaca's answers, which
`tests/integration/broker/test_alpaca.py` also checks on the wire).

`tests/integration/broker/test_alpaca.py` does this for the Alpaca adapter on the loopback server;
the simulated broker does the same with its own world.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

import pytest

from shared.broker import (
    Broker,
    BrokerError,
    CancelOutcome,
    InvalidOrderError,
    OrderRequest,
    OrderStatus,
    OrderType,
)
from shared.broker.errors import DayTradingBuyingPowerError, PatternDayTraderError, WashTradeError
from shared.broker.order_rules import DayTrading, OrderRule
from shared.market_clock import NEW_YORK
from shared.trading import Side
from tests.fakes.clock import IN_SESSION

START = IN_SESSION
"""Where every world's clock starts: a Tuesday morning, the session open."""
AFTER_THE_CLOSE = dt.datetime(2026, 11, 24, 16, 30, tzinfo=NEW_YORK)
NEXT_OPEN = dt.datetime(2026, 11, 25, 9, 30, tzinfo=NEW_YORK)


class Fill(StrEnum):
    """How the world fills the orders of a symbol."""

    IMMEDIATE = "immediate"
    NEVER = "never"
    HALF = "half"
    ON_CANCEL = "on_cancel"


class CancelEnd(StrEnum):
    """How a cancel the broker left pending ends."""

    CANCELED = "canceled"
    FILLED = "filled"


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
    def set_cancel(self, symbol: str, pending_s: float, end: CancelEnd) -> None:
        """Cancels of `symbol` stay `pending_cancel` for `pending_s` seconds, then end."""

    @abstractmethod
    def set_day_trading(self, standing: DayTrading) -> None: ...

    @abstractmethod
    def set_now(self, moment: dt.datetime) -> None:
        """Stop the broker's clock at `moment`."""

    @abstractmethod
    def advance(self, seconds: float) -> None:
        """Move the broker's clock on."""

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


def _no_setup(world: BrokerWorld) -> None:
    return None


@dataclass(frozen=True)
class RuleCase:
    """An order one of Alpaca's order-acceptance rules refuses, and Alpaca's exact answer."""

    id: str
    rule: OrderRule
    error: type[BrokerError]
    http_status: int
    code: str
    message: str
    request: OrderRequest
    setup: Callable[[BrokerWorld], None] = _no_setup
    before: tuple[OrderRequest, ...] = field(default=())
    """Orders placed through the broker first."""


def rule_market(world: BrokerWorld) -> None:
    """AAPL (fractionable, ~$150), BRKB (whole shares only, ~$400) and PENNY (~$0.50)."""
    world.set_cash(Decimal("100000"))
    world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
    world.set_asset("BRKB", fractionable=False)
    world.set_quote("BRKB", Decimal("400.00"), Decimal("400.20"))
    world.set_quote("PENNY", Decimal("0.50"), Decimal("0.51"))


def _resting_sell(world: BrokerWorld) -> None:
    world.set_position("AAPL", Decimal("10"), Decimal("140"))
    world.set_fill("AAPL", Fill.NEVER)


def _three_day_trades_under_25k(world: BrokerWorld) -> None:
    world.set_day_trading(DayTrading(daytrade_count=3, last_equity=Decimal("20000")))


def _pattern_day_trader_with_1000(world: BrokerWorld) -> None:
    world.set_day_trading(
        DayTrading(pattern_day_trader=True, daytrading_buying_power=Decimal("1000"))
    )


RULE_CASES = [
    RuleCase(
        "client-order-id-over-128",
        OrderRule.CLIENT_ORDER_ID_LENGTH,
        InvalidOrderError,
        422,
        "40010001",
        "client_order_id must be no more than 128 characters",
        _market("AAPL", Side.BUY, "1", "alc:" + "x" * 125),
    ),
    RuleCase(
        "qty-with-10-decimals",
        OrderRule.QTY_DECIMALS,
        InvalidOrderError,
        422,
        "40010001",
        "qty must have at most 9 decimal places",
        _market("AAPL", Side.BUY, "0.0100000001", "alc:w1:AAPL:b:1:1"),
    ),
    RuleCase(
        "sub-penny-limit-over-1-dollar",
        OrderRule.SUB_PENNY_LIMIT_PRICE,
        InvalidOrderError,
        422,
        "42210000",
        "invalid limit_price 150.105. sub-penny increment does not fulfill minimum pricing "
        "criteria",
        _limit("AAPL", Side.BUY, "1", "150.105", "alc:w1:AAPL:b:1:1"),
    ),
    RuleCase(
        "limit-under-1-dollar-with-5-decimals",
        OrderRule.SUB_PENNY_LIMIT_PRICE,
        InvalidOrderError,
        422,
        "42210000",
        "invalid limit_price 0.50005. sub-penny increment does not fulfill minimum pricing "
        "criteria",
        _limit("PENNY", Side.BUY, "10", "0.50005", "alc:w1:PENNY:b:1:1"),
    ),
    RuleCase(
        "fractional-qty-of-a-whole-share-asset",
        OrderRule.FRACTIONABLE,
        InvalidOrderError,
        422,
        "42210000",
        "requested asset is not fractionable",
        _market("BRKB", Side.BUY, "0.5", "alc:w1:BRKB:b:1:1"),
    ),
    RuleCase(
        "fractional-order-under-1-dollar",
        OrderRule.MINIMUM_NOTIONAL,
        InvalidOrderError,
        403,
        "40310000",
        "cost basis must be >= minimal amount of order 1",
        _market("AAPL", Side.BUY, "0.005", "alc:w1:AAPL:b:1:1"),
    ),
    RuleCase(
        "buy-while-a-sell-is-open",
        OrderRule.WASH_TRADE,
        WashTradeError,
        403,
        "40310000",
        "potential wash trade detected. use complex orders",
        _market("AAPL", Side.BUY, "1", "alc:w1:AAPL:b:1:1"),
        _resting_sell,
        (_limit("AAPL", Side.SELL, "5", "160.00", "alc:w1:AAPL:s:1:1"),),
    ),
    RuleCase(
        "fourth-day-trade-under-25k",
        OrderRule.PATTERN_DAY_TRADER,
        PatternDayTraderError,
        403,
        "40310100",
        "trade denied due to pattern day trading protection",
        _market("AAPL", Side.SELL, "2", "alc:w1:AAPL:s:1:1"),
        _three_day_trades_under_25k,
        (_market("AAPL", Side.BUY, "2", "alc:w0:AAPL:b:1:1"),),
    ),
    RuleCase(
        "buy-over-day-trading-buying-power",
        OrderRule.DAY_TRADING_BUYING_POWER,
        DayTradingBuyingPowerError,
        403,
        "40310000",
        "insufficient day trading buying power",
        _market("AAPL", Side.BUY, "10", "alc:w1:AAPL:b:1:1"),
        _pattern_day_trader_with_1000,
    ),
]

EDGE_ORDERS = [
    _market("AAPL", Side.BUY, "1", "alc:" + "x" * 124),
    _market("AAPL", Side.BUY, "0.010000001", "alc:w1:AAPL:b:9-decimals"),
    _limit("AAPL", Side.BUY, "1", "150.10", "alc:w1:AAPL:b:cents"),
    _limit("PENNY", Side.BUY, "10", "0.5001", "alc:w1:PENNY:b:hundredths-of-a-cent"),
    _market("AAPL", Side.BUY, "0.0067", "alc:w1:AAPL:b:just-over-a-dollar"),
    _market("BRKB", Side.BUY, "2", "alc:w1:BRKB:b:whole-shares"),
]
"""Orders just inside every rule: each is accepted."""


class BrokerContract:
    """Every test takes the subclass's `world` and `broker` fixtures (see the module docstring)."""

    # ------------------------------------------------------------------ Alpaca's order rules

    @pytest.mark.parametrize("case", RULE_CASES, ids=lambda case: case.id)
    async def test_each_order_rule_refuses_as_alpaca_does(
        self, world: BrokerWorld, broker: Broker, case: RuleCase
    ) -> None:
        rule_market(world)
        case.setup(world)
        for order in case.before:
            await broker.submit_order(order)

        with pytest.raises(BrokerError) as refused:
            await broker.submit_order(case.request)

        error = refused.value
        assert type(error) is case.error
        assert (error.rule, error.http_status, error.code) == (
            case.rule.value,
            case.http_status,
            case.code,
        )
        assert error.retryable is False
        assert case.message in str(error)
        assert await broker.get_order_by_client_id(case.request.client_order_id) is None

    async def test_orders_just_inside_every_rule_are_accepted(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        rule_market(world)
        world.set_day_trading(DayTrading(daytrade_count=2, last_equity=Decimal("20000")))
        world.set_position("AAPL", Decimal("10"), Decimal("140"))

        placed = [await broker.submit_order(order) for order in EDGE_ORDERS]
        sold_today = await broker.submit_order(
            _market("AAPL", Side.SELL, "1", "alc:w1:AAPL:s:third-day-trade")
        )

        assert all(order.status is OrderStatus.FILLED for order in [*placed, sold_today])

    async def test_a_pattern_day_traders_figures_are_on_the_account(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        world.set_cash(Decimal("50000"))
        plain = await broker.get_account()
        world.set_day_trading(
            DayTrading(
                pattern_day_trader=True, daytrade_count=4, daytrading_buying_power=Decimal("4000")
            )
        )

        flagged = await broker.get_account()

        assert (plain.daytrading_buying_power, plain.pattern_day_trader) == (
            Decimal("50000"),
            False,
        )
        assert plain.daytrade_count == 0
        assert (flagged.daytrading_buying_power, flagged.pattern_day_trader) == (
            Decimal("4000"),
            True,
        )
        assert flagged.daytrade_count == 4

    # ------------------------------------------------------------------ the session

    async def test_an_order_after_the_close_is_queued_and_fills_at_the_next_open(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
        world.set_now(AFTER_THE_CLOSE)

        queued = await broker.submit_order(_market("AAPL", Side.BUY, "3", "alc:w1:AAPL:b:1:1"))
        still_queued = await broker.get_order(queued.order_id)
        world.set_now(NEXT_OPEN + dt.timedelta(minutes=1))
        opened = await broker.get_order(queued.order_id)

        assert (queued.status, queued.broker_status, queued.filled_qty) == (
            OrderStatus.ACCEPTED,
            "accepted",
            Decimal(0),
        )
        assert still_queued is not None and still_queued.broker_status == "accepted"
        assert opened is not None and opened.status is OrderStatus.FILLED
        assert opened.filled_qty == Decimal("3")

    async def test_a_day_order_still_open_at_the_close_expires(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
        world.set_fill("AAPL", Fill.NEVER)
        order = await broker.submit_order(
            _limit("AAPL", Side.BUY, "1", "140.00", "alc:w1:AAPL:b:1:1")
        )

        world.set_now(AFTER_THE_CLOSE)
        ended = await broker.get_order(order.order_id)

        assert ended is not None and (ended.status, ended.broker_status) == (
            OrderStatus.REJECTED,
            "expired",
        )

    # ------------------------------------------------------------------ cancels

    async def test_a_cancel_is_pending_before_the_order_ends_canceled(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
        world.set_fill("AAPL", Fill.NEVER)
        world.set_cancel("AAPL", 20, CancelEnd.CANCELED)
        order = await broker.submit_order(
            _limit("AAPL", Side.BUY, "2", "149.00", "alc:w1:AAPL:b:1:1")
        )

        result = await broker.cancel_order(order.order_id)
        pending = await broker.get_order(order.order_id)
        still_open = [o.order_id for o in await broker.get_open_orders()]
        world.advance(20)
        ended = await broker.get_order(order.order_id)

        assert result.outcome is CancelOutcome.REQUESTED
        assert pending is not None and pending.broker_status == "pending_cancel"
        assert pending.status is OrderStatus.ACCEPTED and not pending.is_terminal
        assert still_open == [order.order_id]
        assert ended is not None and (ended.status, ended.broker_status) == (
            OrderStatus.CANCELED,
            "canceled",
        )

    async def test_a_fill_can_win_the_race_with_a_pending_cancel(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
        world.set_fill("AAPL", Fill.NEVER)
        world.set_cancel("AAPL", 20, CancelEnd.FILLED)
        order = await broker.submit_order(
            _limit("AAPL", Side.BUY, "2", "150.10", "alc:w1:AAPL:b:1:1")
        )

        result = await broker.cancel_order(order.order_id)
        pending = await broker.get_order(order.order_id)
        world.advance(20)
        ended = await broker.get_order(order.order_id)
        position = await broker.get_position("AAPL")

        assert result.outcome is CancelOutcome.REQUESTED
        assert pending is not None and pending.broker_status == "pending_cancel"
        assert ended is not None and ended.status is OrderStatus.FILLED
        assert ended.filled_qty == Decimal("2")
        assert position is not None and position.qty == Decimal("2")

    # ------------------------------------------------------------------ closing a position

    @pytest.mark.parametrize(
        ("symbol", "fractionable", "held"),
        [("BRKB", False, "0.3"), ("SPY", True, "7.2273576")],
        ids=["fractional-holding-of-a-whole-share-asset", "fractional-holding"],
    )
    async def test_closing_a_position_sells_exactly_what_is_held(
        self, world: BrokerWorld, broker: Broker, symbol: str, fractionable: bool, held: str
    ) -> None:
        world.set_asset(symbol, fractionable=fractionable)
        world.set_quote(symbol, Decimal("400.00"), Decimal("400.20"))
        world.set_position(symbol, Decimal(held), Decimal("390"))

        order = await broker.close_position(symbol)

        assert order is not None
        assert (order.symbol, order.side, order.order_type) == (symbol, Side.SELL, OrderType.MARKET)
        assert order.qty == Decimal(held)
        assert not order.client_order_id.startswith("alc:")
        filled = await broker.get_order(order.order_id)
        assert filled is not None and filled.status is OrderStatus.FILLED
        assert await broker.get_position(symbol) is None

    async def test_a_fractional_holding_of_a_whole_share_asset_cannot_be_sold_as_an_order(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        world.set_asset("BRKB", fractionable=False)
        world.set_quote("BRKB", Decimal("400.00"), Decimal("400.20"))
        world.set_position("BRKB", Decimal("0.3"), Decimal("390"))

        with pytest.raises(InvalidOrderError) as refused:
            await broker.submit_order(_market("BRKB", Side.SELL, "0.3", "alc:w1:BRKB:s:1:1"))

        assert refused.value.rule == OrderRule.FRACTIONABLE.value

    async def test_closing_a_position_not_held_is_none(self, broker: Broker) -> None:
        assert await broker.close_position("NOPE") is None

    async def test_a_close_after_the_close_is_queued_until_the_next_open(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        world.set_quote("SPY", Decimal("400.00"), Decimal("400.20"))
        world.set_position("SPY", Decimal("7.2273576"), Decimal("390"))
        world.set_now(AFTER_THE_CLOSE)

        order = await broker.close_position("SPY")
        held_overnight = await broker.get_position("SPY")
        world.set_now(NEXT_OPEN + dt.timedelta(minutes=1))
        filled = await broker.get_order(order.order_id if order else "")

        assert order is not None and order.broker_status == "accepted"
        assert held_overnight is not None and held_overnight.qty_available == Decimal(0)
        assert filled is not None and filled.status is OrderStatus.FILLED
        assert await broker.get_position("SPY") is None

    async def test_a_symbols_recent_orders_find_the_close_positions_order(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        world.set_quote("SPY", Decimal("400.00"), Decimal("400.20"))
        world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
        world.set_position("SPY", Decimal("5.5"), Decimal("390"))
        earlier = await broker.submit_order(_market("SPY", Side.SELL, "1", "alc:w0:SPY:s:1:1"))
        world.advance(60)
        since = (await broker.get_clock()).now - dt.timedelta(seconds=1)
        await broker.submit_order(_market("AAPL", Side.BUY, "1", "alc:w1:AAPL:b:1:1"))
        world.advance(1)
        closed = await broker.close_position("SPY")

        recent = await broker.get_orders("SPY", since)
        everything = await broker.get_orders("SPY", since - dt.timedelta(hours=1))

        assert closed is not None
        assert [o.order_id for o in recent] == [closed.order_id]
        assert [o.order_id for o in everything] == [closed.order_id, earlier.order_id]
        assert recent[0].status is OrderStatus.FILLED

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

    async def test_the_clock_closes_early_on_an_early_close(
        self, world: BrokerWorld, broker: Broker
    ) -> None:
        world.set_now(dt.datetime(2026, 11, 27, 10, 0, tzinfo=NEW_YORK))
        morning = await broker.get_clock()
        world.set_now(dt.datetime(2026, 11, 27, 13, 0, tzinfo=NEW_YORK))
        at_the_close = await broker.get_clock()

        assert morning.is_open is True
        assert morning.now == dt.datetime(2026, 11, 27, 10, 0, tzinfo=NEW_YORK)
        assert morning.next_close == dt.datetime(2026, 11, 27, 13, 0, tzinfo=NEW_YORK)
        assert at_the_close.is_open is False
        assert at_the_close.next_open == dt.datetime(2026, 11, 30, 9, 30, tzinfo=NEW_YORK)

    async def test_the_calendar_skips_holidays_and_knows_early_closes(self, broker: Broker) -> None:
        sessions = await broker.get_calendar(dt.date(2026, 11, 23), dt.date(2026, 11, 27))

        assert [s.date.day for s in sessions] == [23, 24, 25, 27]
        friday = sessions[-1]
        assert friday.close - friday.open == dt.timedelta(hours=3, minutes=30)
        assert friday.open.utcoffset() == dt.timedelta(hours=-5)
