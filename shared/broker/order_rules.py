"""Alpaca's order-acceptance rules as one table, applied by both adapters
(docs/trading-rules.md, Alpaca order rules; the table with each answer is in docs/operations.md).

The simulated broker checks every new order here and raises the `BrokerError` Alpaca's refusal
becomes; the loopback Alpaca server checks the same orders here and answers with Alpaca's status
and JSON body; the Alpaca adapter reads a real refusal back into the same error with
`rule_of`. So the embedded default refuses what Alpaca refuses, with the same class, code and
rule, and no rule is written twice.

Each check is a pure function of what the broker knows when the order arrives (`NewOrder`):
nothing here reads a clock, a database or the network.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from shared.broker.errors import (
    BrokerError,
    DayTradingBuyingPowerError,
    InvalidOrderError,
    PatternDayTraderError,
    WashTradeError,
)
from shared.broker.models import OrderType
from shared.trading import Side

CLIENT_ORDER_ID_MAX_LENGTH = 128
"""Alpaca's current limit; older documentation said 48, and this system's ids stay within both."""
QTY_MAX_DECIMALS = 9
MINIMUM_NOTIONAL = Decimal(1)
"""A fractional order must be worth at least $1 by Alpaca's cost-basis estimate."""
PENNY_PRICE_FLOOR = Decimal(1)
"""Limit prices at or above $1 take whole cents; below it, hundredths of a cent."""
PATTERN_DAY_TRADER_EQUITY = Decimal(25000)
"""Below this previous-close equity the pattern-day-trader protection applies."""
DAY_TRADES_ALLOWED = 3
"""Day trades an account under $25,000 may make in five sessions; the fourth is refused."""
DAY = "day"


class OrderRule(StrEnum):
    """The rules by name; `BrokerError.rule` carries the value."""

    CLIENT_ORDER_ID_LENGTH = "client_order_id_length"
    QTY_DECIMALS = "qty_decimals"
    SUB_PENNY_LIMIT_PRICE = "sub_penny_limit_price"
    FRACTIONABLE = "fractionable"
    FRACTIONAL_DAY_ONLY = "fractional_day_only"
    MINIMUM_NOTIONAL = "minimum_notional"
    WASH_TRADE = "wash_trade"
    PATTERN_DAY_TRADER = "pattern_day_trader"
    DAY_TRADING_BUYING_POWER = "day_trading_buying_power"


@dataclass(frozen=True)
class RuleAnswer:
    """How Alpaca answers a refusal under a rule, and how we read and explain it."""

    http_status: int
    code: int
    recognised_by: re.Pattern[str]
    """Matches Alpaca's message (lower case) for this rule."""
    error: type[BrokerError]
    explanation: str
    """What the rule is and what to do, in our words, appended to the error's message."""


RULES: Mapping[OrderRule, RuleAnswer] = {
    OrderRule.CLIENT_ORDER_ID_LENGTH: RuleAnswer(
        422,
        40010001,
        re.compile(r"client_order_id must be no more than"),
        InvalidOrderError,
        f"client order ids are at most {CLIENT_ORDER_ID_MAX_LENGTH} characters; use a shorter id",
    ),
    OrderRule.QTY_DECIMALS: RuleAnswer(
        422,
        40010001,
        re.compile(r"qty must have at most \d+ decimal places"),
        InvalidOrderError,
        f"quantities take at most {QTY_MAX_DECIMALS} decimals; round the quantity",
    ),
    OrderRule.SUB_PENNY_LIMIT_PRICE: RuleAnswer(
        422,
        42210000,
        re.compile(r"sub-penny increment"),
        InvalidOrderError,
        "a limit price of $1 or more takes whole cents, one under $1 at most 4 decimals; "
        "round the price",
    ),
    OrderRule.FRACTIONABLE: RuleAnswer(
        422,
        42210000,
        re.compile(r"not fractionable"),
        InvalidOrderError,
        "a fractional quantity needs a fractionable asset; order whole shares, or close a "
        "fractional holding with the close-position call",
    ),
    OrderRule.FRACTIONAL_DAY_ONLY: RuleAnswer(
        422,
        42210000,
        re.compile(r"fractional orders must be day orders"),
        InvalidOrderError,
        "fractional orders must be DAY orders",
    ),
    OrderRule.MINIMUM_NOTIONAL: RuleAnswer(
        403,
        40310000,
        re.compile(r"minimal amount of order"),
        InvalidOrderError,
        f"a fractional order must be worth at least ${MINIMUM_NOTIONAL}; skip or enlarge it",
    ),
    OrderRule.WASH_TRADE: RuleAnswer(
        403,
        40310000,
        re.compile(r"wash trade"),
        WashTradeError,
        "an order of the opposite side is open on this symbol (Alpaca's wash-trade "
        "protection); cancel it and wait until it has ended before sending this one",
    ),
    OrderRule.PATTERN_DAY_TRADER: RuleAnswer(
        403,
        40310100,
        re.compile(r"pattern day trad"),
        PatternDayTraderError,
        "the pattern-day-trader rule: an account under $25,000 may make "
        f"{DAY_TRADES_ALLOWED} day trades in five sessions and this order could make another; "
        "it is not retried today",
    ),
    OrderRule.DAY_TRADING_BUYING_POWER: RuleAnswer(
        403,
        40310000,
        re.compile(r"day trading buying power"),
        DayTradingBuyingPowerError,
        "the account is flagged as a pattern day trader and the order costs more than its "
        "day-trading buying power; size buys to the smaller of the two buying powers",
    ),
}


@dataclass(frozen=True)
class Refusal:
    """The refusal Alpaca gives an order: status, Alpaca's code and message, extra body
    fields."""

    rule: OrderRule
    message: str
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def http_status(self) -> int:
        return RULES[self.rule].http_status

    @property
    def code(self) -> int:
        return RULES[self.rule].code

    def body(self) -> dict[str, object]:
        """Alpaca's JSON error body."""
        return {"code": self.code, "message": self.message, **self.fields}

    def error(self, operation: str) -> BrokerError:
        """The error the simulated broker raises for this refusal: the one the Alpaca adapter
        reads from Alpaca's answer."""
        return rule_error(
            self.rule,
            f"{operation}: refused as Alpaca refuses it: {self.message}",
            code=str(self.code),
            http_status=self.http_status,
        )


def rule_error(
    rule: OrderRule, said: str, *, code: str | None, http_status: int | None
) -> BrokerError:
    """`said` (the call and the broker's words) as the rule's error class, with the rule
    explained; never retryable."""
    answer = RULES[rule]
    return answer.error(
        f"{said}; {answer.explanation}",
        code=code,
        http_status=http_status,
        retryable=False,
        rule=rule.value,
    )


def rule_of(http_status: int | None, message: str | None) -> OrderRule | None:
    """The rule an Alpaca refusal was given under, from its status and words; None for any
    other answer."""
    lowered = (message or "").lower()
    for rule, answer in RULES.items():
        if answer.http_status == http_status and answer.recognised_by.search(lowered):
            return rule
    return None


@dataclass(frozen=True)
class OpenOrder:
    """An order of the account still open on the symbol of a new order."""

    order_id: str
    side: Side
    order_type: OrderType


@dataclass(frozen=True)
class DayTrading:
    """The account's standing under the day-trading rules, as Alpaca reports it."""

    pattern_day_trader: bool = False
    daytrade_count: int = 0
    """Day trades in the last five sessions."""
    daytrading_buying_power: Decimal | None = None
    """None: the broker sets none, and the rule never binds."""
    last_equity: Decimal | None = None
    """Equity at the previous close; None when not known (the rule then reads today's)."""


@dataclass(frozen=True)
class NewOrder:
    """Everything the rules read about an order as it arrives."""

    symbol: str
    side: Side
    qty: Decimal
    order_type: OrderType
    limit_price: Decimal | None
    client_order_id: str
    fractionable: bool
    bid: Decimal | None
    ask: Decimal | None
    equity: Decimal
    open_orders: Sequence[OpenOrder] = ()
    """The account's other open orders on this symbol."""
    bought_today: bool = False
    """The symbol was bought today (filled or still open): a SELL would close a day trade."""
    day_trading: DayTrading = DayTrading()
    time_in_force: str = DAY
    closes_position: bool = False
    """The order the close-position call creates: it may sell a fractional holding of a
    non-fractionable asset, and any value."""


def decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(-exponent, 0) if isinstance(exponent, int) else 0


def is_fractional(qty: Decimal) -> bool:
    return qty != qty.to_integral_value()


def cost_basis(order: NewOrder) -> Decimal | None:
    """Alpaca's estimate of what an order is worth: qty × the limit price, else the ask for a
    BUY or the bid for a SELL; None with no such price."""
    price = order.limit_price
    if price is None:
        price = order.ask if order.side is Side.BUY else order.bid
    return None if price is None or price <= 0 else order.qty * price


def client_order_id_length(order: NewOrder) -> Refusal | None:
    if len(order.client_order_id) <= CLIENT_ORDER_ID_MAX_LENGTH:
        return None
    return Refusal(
        OrderRule.CLIENT_ORDER_ID_LENGTH,
        f"client_order_id must be no more than {CLIENT_ORDER_ID_MAX_LENGTH} characters",
    )


def qty_decimals(order: NewOrder) -> Refusal | None:
    if decimals(order.qty) <= QTY_MAX_DECIMALS:
        return None
    return Refusal(
        OrderRule.QTY_DECIMALS, f"qty must have at most {QTY_MAX_DECIMALS} decimal places"
    )


def sub_penny_limit_price(order: NewOrder) -> Refusal | None:
    price = order.limit_price
    if price is None:
        return None
    allowed = 2 if price >= PENNY_PRICE_FLOOR else 4
    if decimals(price) <= allowed:
        return None
    return Refusal(
        OrderRule.SUB_PENNY_LIMIT_PRICE,
        f"invalid limit_price {price}. sub-penny increment does not fulfill minimum pricing "
        "criteria",
    )


def fractionable(order: NewOrder) -> Refusal | None:
    if order.closes_position or order.fractionable or not is_fractional(order.qty):
        return None
    return Refusal(OrderRule.FRACTIONABLE, "requested asset is not fractionable")


def fractional_day_only(order: NewOrder) -> Refusal | None:
    if not is_fractional(order.qty) or order.time_in_force == DAY:
        return None
    return Refusal(OrderRule.FRACTIONAL_DAY_ONLY, "fractional orders must be DAY orders")


def minimum_notional(order: NewOrder) -> Refusal | None:
    if order.closes_position or not is_fractional(order.qty):
        return None
    value = cost_basis(order)
    if value is None or value >= MINIMUM_NOTIONAL:
        return None
    return Refusal(OrderRule.MINIMUM_NOTIONAL, "cost basis must be >= minimal amount of order 1")


def wash_trade(order: NewOrder) -> Refusal | None:
    opposite = next((o for o in order.open_orders if o.side is not order.side), None)
    if opposite is None:
        return None
    return Refusal(
        OrderRule.WASH_TRADE,
        "potential wash trade detected. use complex orders",
        {
            "existing_order_id": opposite.order_id,
            "reject_reason": f"opposite side {opposite.order_type.value} order exists",
        },
    )


def pattern_day_trader(order: NewOrder) -> Refusal | None:
    """A SELL of a symbol bought today is a day trade; with three already in five sessions and
    under $25,000 at the previous close, Alpaca refuses the fourth."""
    standing = order.day_trading
    equity = standing.last_equity if standing.last_equity is not None else order.equity
    if (
        order.side is not Side.SELL
        or not order.bought_today
        or standing.daytrade_count < DAY_TRADES_ALLOWED
        or equity >= PATTERN_DAY_TRADER_EQUITY
    ):
        return None
    return Refusal(
        OrderRule.PATTERN_DAY_TRADER, "trade denied due to pattern day trading protection"
    )


def day_trading_buying_power(order: NewOrder) -> Refusal | None:
    standing = order.day_trading
    limit = standing.daytrading_buying_power
    value = cost_basis(order)
    if (
        order.side is not Side.BUY
        or not standing.pattern_day_trader
        or limit is None
        or value is None
        or value <= limit
    ):
        return None
    return Refusal(OrderRule.DAY_TRADING_BUYING_POWER, "insufficient day trading buying power")


CHECKS: Sequence[Callable[[NewOrder], Refusal | None]] = (
    client_order_id_length,
    qty_decimals,
    sub_penny_limit_price,
    fractionable,
    fractional_day_only,
    minimum_notional,
    wash_trade,
    pattern_day_trader,
    day_trading_buying_power,
)
"""In the order Alpaca applies them: the request's form (422) before the account's
protections (403)."""


def refusal(order: NewOrder) -> Refusal | None:
    """The first rule that refuses `order`, or None when Alpaca accepts it (buying power and
    available quantity are the adapters' own checks, after these)."""
    for check in CHECKS:
        found = check(order)
        if found is not None:
            return found
    return None


def arrival_status(session_open: bool) -> str:
    """A DAY order's first status: `new` (routed) in the session; `accepted` (queued for the
    next session's open, not filling before it) outside it."""
    return "new" if session_open else "accepted"
