"""Alpaca's order-acceptance rules as pure functions: each refuses exactly past its edge, in
Alpaca's words, and each refusal reads back as its own rule and error."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from shared.broker.errors import (
    DayTradingBuyingPowerError,
    InsufficientBuyingPowerError,
    InvalidOrderError,
    PatternDayTraderError,
    WashTradeError,
)
from shared.broker.models import OrderType
from shared.broker.order_rules import (
    RULES,
    DayTrading,
    NewOrder,
    OpenOrder,
    OrderRule,
    arrival_status,
    cost_basis,
    refusal,
    rule_of,
)
from shared.trading import Side

ORDER = NewOrder(
    symbol="AAPL",
    side=Side.BUY,
    qty=Decimal("2"),
    order_type=OrderType.MARKET,
    limit_price=None,
    client_order_id="alc:w1:AAPL:b:1",
    fractionable=True,
    bid=Decimal("150.00"),
    ask=Decimal("150.10"),
    equity=Decimal("100000"),
)


def order(**changes: object) -> NewOrder:
    return dataclasses.replace(ORDER, **changes)  # type: ignore[arg-type]


def limit(price: str, **changes: object) -> NewOrder:
    return order(order_type=OrderType.LIMIT, limit_price=Decimal(price), **changes)


SELL_OPEN = OpenOrder("o-1", Side.SELL, OrderType.LIMIT)
THREE_DAY_TRADES = DayTrading(daytrade_count=3, last_equity=Decimal("24999.99"))
PATTERN_DAY_TRADER = DayTrading(pattern_day_trader=True, daytrading_buying_power=Decimal("300"))

REFUSED = {
    "id-129-characters": (order(client_order_id="x" * 129), OrderRule.CLIENT_ORDER_ID_LENGTH),
    "qty-10-decimals": (order(qty=Decimal("1.0000000001")), OrderRule.QTY_DECIMALS),
    "limit-150.105": (limit("150.105"), OrderRule.SUB_PENNY_LIMIT_PRICE),
    "limit-1.001": (limit("1.001"), OrderRule.SUB_PENNY_LIMIT_PRICE),
    "limit-0.99995": (limit("0.99995"), OrderRule.SUB_PENNY_LIMIT_PRICE),
    "fraction-of-a-whole-share-asset": (
        order(qty=Decimal("0.3"), fractionable=False),
        OrderRule.FRACTIONABLE,
    ),
    "fractional-gtc": (
        order(qty=Decimal("1.5"), time_in_force="gtc"),
        OrderRule.FRACTIONAL_DAY_ONLY,
    ),
    "fractional-buy-worth-0.75": (order(qty=Decimal("0.005")), OrderRule.MINIMUM_NOTIONAL),
    "fractional-sell-worth-0.99-at-the-bid": (
        order(side=Side.SELL, qty=Decimal("0.0066")),
        OrderRule.MINIMUM_NOTIONAL,
    ),
    "fractional-limit-worth-0.50": (
        limit("100.00", qty=Decimal("0.005")),
        OrderRule.MINIMUM_NOTIONAL,
    ),
    "buy-with-a-sell-open": (order(open_orders=[SELL_OPEN]), OrderRule.WASH_TRADE),
    "fourth-day-trade": (
        order(side=Side.SELL, bought_today=True, day_trading=THREE_DAY_TRADES),
        OrderRule.PATTERN_DAY_TRADER,
    ),
    "pattern-day-trader-buy-over-dtbp": (
        order(day_trading=PATTERN_DAY_TRADER),
        OrderRule.DAY_TRADING_BUYING_POWER,
    ),
}

ACCEPTED = {
    "id-128-characters": order(client_order_id="x" * 128),
    "qty-9-decimals": order(qty=Decimal("1.000000001")),
    "limit-150.10": limit("150.10"),
    "limit-1.00": limit("1.00"),
    "limit-0.9999": limit("0.9999"),
    "whole-shares-of-a-whole-share-asset": order(qty=Decimal("3"), fractionable=False),
    "whole-share-gtc": order(time_in_force="gtc"),
    "whole-share-under-1-dollar": limit("0.50", qty=Decimal("1")),
    "fractional-buy-worth-1.0006": order(qty=Decimal("0.006667")),
    "fractional-without-a-price": order(qty=Decimal("0.005"), bid=None, ask=None),
    "close-position-of-a-fraction-of-a-whole-share-asset": order(
        side=Side.SELL, qty=Decimal("0.003"), fractionable=False, closes_position=True
    ),
    "buy-with-a-buy-open": order(open_orders=[OpenOrder("o-1", Side.BUY, OrderType.LIMIT)]),
    "third-day-trade": order(
        side=Side.SELL,
        bought_today=True,
        day_trading=dataclasses.replace(THREE_DAY_TRADES, daytrade_count=2),
    ),
    "fourth-day-trade-at-25000": order(
        side=Side.SELL,
        bought_today=True,
        day_trading=dataclasses.replace(THREE_DAY_TRADES, last_equity=Decimal("25000")),
    ),
    "fourth-day-trade-equity-read-today-when-no-previous-close": order(
        side=Side.SELL, bought_today=True, day_trading=DayTrading(daytrade_count=3)
    ),
    "sell-of-a-symbol-not-bought-today": order(side=Side.SELL, day_trading=THREE_DAY_TRADES),
    "pattern-day-trader-buy-within-dtbp": order(
        qty=Decimal("1.5"),
        day_trading=dataclasses.replace(PATTERN_DAY_TRADER, daytrading_buying_power=Decimal("226")),
    ),
    "dtbp-of-an-account-not-flagged": order(
        day_trading=DayTrading(daytrading_buying_power=Decimal("1"))
    ),
}


@pytest.mark.parametrize(("new_order", "rule"), REFUSED.values(), ids=REFUSED.keys())
def test_each_rule_refuses_past_its_edge(new_order: NewOrder, rule: OrderRule) -> None:
    found = refusal(new_order)

    assert found is not None and found.rule is rule
    assert rule_of(found.http_status, found.message) is rule
    assert found.body()["code"] == RULES[rule].code


@pytest.mark.parametrize("new_order", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_orders_inside_every_rule_pass(new_order: NewOrder) -> None:
    assert refusal(new_order) is None


def test_the_request_form_is_checked_before_the_accounts_protections() -> None:
    found = refusal(limit("150.105", open_orders=[SELL_OPEN]))

    assert found is not None and found.rule is OrderRule.SUB_PENNY_LIMIT_PRICE


def test_a_wash_trade_names_the_order_in_the_way() -> None:
    found = refusal(order(open_orders=[SELL_OPEN]))

    assert found is not None
    assert found.body() == {
        "code": 40310000,
        "message": "potential wash trade detected. use complex orders",
        "existing_order_id": "o-1",
        "reject_reason": "opposite side limit order exists",
    }


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        (OrderRule.SUB_PENNY_LIMIT_PRICE, InvalidOrderError),
        (OrderRule.MINIMUM_NOTIONAL, InvalidOrderError),
        (OrderRule.WASH_TRADE, WashTradeError),
        (OrderRule.PATTERN_DAY_TRADER, PatternDayTraderError),
        (OrderRule.DAY_TRADING_BUYING_POWER, DayTradingBuyingPowerError),
    ],
)
def test_a_refusal_becomes_a_terminal_error_naming_its_rule(
    rule: OrderRule, error: type[Exception]
) -> None:
    case = next(o for o, r in REFUSED.values() if r is rule)
    found = refusal(case)
    assert found is not None

    raised = found.error("submit order alc:w1")

    assert type(raised) is error
    assert (raised.rule, raised.retryable, raised.http_status) == (
        rule.value,
        False,
        found.http_status,
    )
    assert found.message in raised.message and RULES[rule].explanation in raised.message


def test_the_pattern_day_trader_refusal_says_so() -> None:
    found = refusal(order(side=Side.SELL, bought_today=True, day_trading=THREE_DAY_TRADES))
    assert found is not None

    assert "pattern-day-trader rule" in found.error("submit").message


def test_day_trading_buying_power_is_a_kind_of_buying_power_refusal() -> None:
    assert issubclass(DayTradingBuyingPowerError, InsufficientBuyingPowerError)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (403, "insufficient buying power"),
        (403, "insufficient qty available for order (requested: 2, available: 1)"),
        (422, 'order is already in "filled" state'),
        (422, 'asset "ZZZ" not found'),
    ],
)
def test_answers_outside_the_table_are_no_rule(status: int, message: str) -> None:
    assert rule_of(status, message) is None


def test_alpacas_wordings_of_the_day_trading_refusals_are_recognised() -> None:
    assert rule_of(403, "Order rejected: insufficient Day Trading Buying Power") is (
        OrderRule.DAY_TRADING_BUYING_POWER
    )
    assert rule_of(403, "entry denied due to pattern day trading protection") is (
        OrderRule.PATTERN_DAY_TRADER
    )


def test_alpaca_prices_a_market_buy_at_the_ask_and_a_sell_at_the_bid() -> None:
    assert cost_basis(order()) == Decimal("300.20")
    assert cost_basis(order(side=Side.SELL)) == Decimal("300.00")
    assert cost_basis(limit("149.00")) == Decimal("298.00")
    assert cost_basis(order(ask=Decimal(0))) is None


def test_an_order_outside_the_session_is_queued_as_accepted() -> None:
    assert (arrival_status(True), arrival_status(False)) == ("new", "accepted")
