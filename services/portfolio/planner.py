"""Target weights and an account snapshot in, a dollar rebalance plan out
(docs/trading-rules.md, Plan formulas).

The plan holds dollars, not shares: execution sizes the orders against fresh quotes. Every rule
below is a pure function of its inputs so a replay of the recorded snapshot re-creates the plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext
from enum import StrEnum
from operator import itemgetter
from typing import NamedTuple

from services.portfolio.snapshot import (
    CENT,
    AccountSnapshot,
    PlanningError,
    check_account,
    check_equity,
    held_quantities,
    mid_price,
)

WEIGHT_SUM_MIN = Decimal("0.99")
WEIGHT_SUM_MAX = Decimal("1.01")
MAX_SYMBOL_LENGTH = 10
ZERO_DOLLARS = Decimal("0.00")
ZERO = Decimal(0)
ONE = Decimal(1)
"""Made once: the planner's loops read them for every symbol of every plan, and a backtest plans
hundreds of thousands of them."""
PRIORITY_BANDS = ((Decimal(10_000), 1), (Decimal(1_000), 2), (Decimal(100), 3), (Decimal(50), 4))
LOWEST_PRIORITY = 5


class InvalidTargetError(PlanningError):
    """The target weights break the `SignalGenerated` contract
    (docs/trading-rules.md, Event payloads)."""


class ZeroEquityError(PlanningError):
    """Nothing is held and the targets are worth nothing: there is nothing to plan."""


class TradeAction(StrEnum):
    SELL = "SELL"
    BUY = "BUY"
    HOLD = "HOLD"


SELL_RANK, BUY_RANK, HOLD_RANK = 0, 1, 2
"""Where each action's items stand in the plan: SELLs, then BUYs, then HOLDs. Plain numbers, not
a mapping by action: an enum member hashes in Python, once per symbol of every plan."""
SELL, BUY, HOLD = TradeAction.SELL, TradeAction.BUY, TradeAction.HOLD
"""The members, read once: Python 3.11 reads a member through its enum class in three times the
time of a global, and `planned_item` reads two for every symbol of every plan."""


class PlanItem(NamedTuple):
    """One symbol of the plan; `trade_amount` is + to buy, − to sell, 0.00 for a HOLD.

    `scaled` marks a BUY cut down by the buying budget (invariant 3), so consumers can tell a
    deliberate under-buy from a full rebalance. `price` is the planning mid, kept so the plan
    explains its dollar values.

    A named tuple, immutable as a frozen dataclass is but made in less than half the time: a
    backtest makes one for every symbol of every session of every run, 380,000 for ten files.
    """

    symbol: str
    action: TradeAction
    trade_amount: Decimal
    target_value: Decimal
    current_value: Decimal
    current_weight: Decimal
    target_weight: Decimal
    weight_diff: Decimal
    priority: int
    price: Decimal
    scaled: bool = False


@dataclass(frozen=True)
class RebalancePlan:
    """The plan; `buy_scale` is 1 unless the BUYs had to be fitted into the budget."""

    items: tuple[PlanItem, ...]
    total_portfolio_value: Decimal
    cash_balance: Decimal
    min_trade_threshold: Decimal
    total_trade_value: Decimal
    buy_scale: Decimal

    @property
    def trades_required(self) -> bool:
        return any(item.action is not TradeAction.HOLD for item in self.items)


def plan_rebalance(
    snapshot: AccountSnapshot,
    target_weights: Mapping[str, Decimal],
    cash_reserve: Decimal,
    *,
    min_trade_fraction: Decimal,
    require_positive_cash: bool = True,
) -> RebalancePlan:
    """Build the plan: order, suppress below θ, then fit the BUYs into the budget
    (docs/trading-rules.md, Plan formulas / Minimum trade / Buy budget).

    The budget rule (invariant 3, decided) makes "buys ≤ cash + sells − reserve" exact: the
    formulas alone can overshoot by suppressed sells, by Σw above 1, or by the broker's PV
    differing from cash plus positions at quote mids.

    `require_positive_cash=False` is for a backtest without a cash reserve: a fully invested
    rebalance leaves no cash (or a rounding residue below zero), which a live account refuses
    to plan from (docs/trading-rules.md, Non-positive cash) but a simulation plans on from.
    """
    if require_positive_cash:
        check_account(snapshot)
    else:
        check_equity(snapshot)
    if not ZERO <= min_trade_fraction < 1:
        raise PlanningError(
            f"min_trade_fraction is {min_trade_fraction}; ALCHEMISER_MIN_TRADE_FRACTION must be "
            "in [0, 1)"
        )
    if not ZERO <= cash_reserve < 1:
        raise PlanningError(
            f"cash_reserve is {cash_reserve}; ALCHEMISER_CASH_RESERVE must be in [0, 1)"
        )
    targets = validated_targets(target_weights)
    threshold = min_trade_threshold(snapshot.portfolio_value, min_trade_fraction)
    return _plan(snapshot, targets, cash_reserve, threshold)


def plan_liquidation(snapshot: AccountSnapshot) -> RebalancePlan:
    """Everything to cash, for a halt's liquidation (docs/trading-rules.md, Halt): every
    position is a SELL of its whole value, however small (no minimum trade), and cash need not
    be positive. Nothing held plans nothing."""
    if not held_quantities(snapshot):
        return RebalancePlan(
            items=(),
            total_portfolio_value=snapshot.portfolio_value,
            cash_balance=snapshot.cash,
            min_trade_threshold=ZERO_DOLLARS,
            total_trade_value=ZERO_DOLLARS,
            buy_scale=Decimal(1),
        )
    return _plan(snapshot, {}, ZERO, ZERO_DOLLARS)


def _plan(
    snapshot: AccountSnapshot,
    targets: Mapping[str, Decimal],
    cash_reserve: Decimal,
    threshold: Decimal,
) -> RebalancePlan:
    held = held_quantities(snapshot)
    universe = sorted(set(targets) | set(held))
    quotes = snapshot.quotes
    prices = {symbol: mid_price(symbol, quotes.get(symbol)) for symbol in universe}

    portfolio_value = snapshot.portfolio_value
    investable = portfolio_value * (1 - cash_reserve)
    target_values = {s: targets.get(s, ZERO) * investable for s in universe}
    current_values = {s: held.get(s, ZERO) * prices[s] for s in universe}
    denominator = max(sum(current_values.values()), sum(target_values.values()))
    if denominator == 0:
        raise ZeroEquityError(
            f"zero equity: portfolio_value is {portfolio_value} and nothing is held, "
            "so no target has a dollar value; fund the account before rebalancing"
        )

    planned = [
        planned_item(s, target_values[s], current_values[s], denominator, prices[s], threshold)
        for s in universe
    ]
    planned.sort(key=itemgetter(0))
    items = [item for _, item in planned]
    # Fitting the BUYs leaves the SELLs as they are, so their sum serves the total too.
    sells = sum_trades(items, TradeAction.SELL)
    budget = snapshot.cash + sells - cash_reserve * portfolio_value
    items, buy_scale = fit_buys(items, budget, threshold)
    return RebalancePlan(
        items=tuple(items),
        total_portfolio_value=portfolio_value,
        cash_balance=snapshot.cash,
        min_trade_threshold=threshold,
        total_trade_value=sum_trades(items, TradeAction.BUY) + sells,
        buy_scale=buy_scale,
    )


def validated_targets(target_weights: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Re-check the `SignalGenerated` contract (docs/trading-rules.md, Event payloads) and keep the
    strictly positive weights."""
    if not target_weights:
        raise InvalidTargetError("target weights are empty; the signal must name at least one")
    targets: dict[str, Decimal] = {}
    for raw_symbol, weight in target_weights.items():
        symbol = raw_symbol.strip().upper()
        # One word (split at the whitespace `strip` and `isspace` know) is 1+ characters, no spaces.
        if len(symbol) > MAX_SYMBOL_LENGTH or len(symbol.split()) != 1:
            raise InvalidTargetError(
                f"target symbol {raw_symbol!r} must be 1-{MAX_SYMBOL_LENGTH} characters "
                "without spaces"
            )
        if symbol in targets:
            raise InvalidTargetError(f"target symbol {symbol} appears twice after upper-casing")
        if not ZERO <= weight <= ONE:
            raise InvalidTargetError(f"target weight of {symbol} is {weight}; it must be in [0, 1]")
        targets[symbol] = weight
    total = sum(targets.values(), ZERO)
    if not WEIGHT_SUM_MIN <= total <= WEIGHT_SUM_MAX:
        raise InvalidTargetError(
            f"target weights sum to {total}; the sum must be in [{WEIGHT_SUM_MIN}, "
            f"{WEIGHT_SUM_MAX}]"
        )
    # Weights in [0, 1] summing to at least WEIGHT_SUM_MIN always include a positive one.
    return {symbol: weight for symbol, weight in targets.items() if weight > 0}


def min_trade_threshold(portfolio_value: Decimal, min_trade_fraction: Decimal) -> Decimal:
    """θ: the minimum trade fraction (ALCHEMISER_MIN_TRADE_FRACTION, 1 %) of PV, rounded half-up
    to cents, the only rebalancing band."""
    if portfolio_value <= 0:
        return ZERO_DOLLARS
    return (min_trade_fraction * portfolio_value).quantize(CENT, rounding=ROUND_HALF_UP)


def trade_priority(trade_amount: Decimal) -> int:
    size = abs(trade_amount)
    for floor, priority in PRIORITY_BANDS:
        if size >= floor:
            return priority
    return LOWEST_PRIORITY


def planned_item(
    symbol: str,
    target_value: Decimal,
    current_value: Decimal,
    denominator: Decimal,
    price: Decimal,
    threshold: Decimal,
) -> tuple[tuple[int, int, str], PlanItem]:
    """The symbol's item and its place in the plan: SELLs, then BUYs, then HOLDs, by priority
    and symbol, placed by the raw trade. A trade under θ becomes a HOLD in that place; its
    weights and dollar values stay as planned (it is checked before any BUY is scaled). One
    item is made, not a raw one and its HOLD: a backtest plans every symbol of every session,
    nearly all of them under θ."""
    trade_amount = target_value - current_value
    size = abs(trade_amount)
    priority = trade_priority(size)
    if trade_amount > 0:
        place = (BUY_RANK, priority, symbol)
        action = BUY if size >= threshold else HOLD
    elif trade_amount < 0:
        place = (SELL_RANK, priority, symbol)
        action = SELL if size >= threshold else HOLD
    else:
        place = (HOLD_RANK, priority, symbol)
        action = HOLD
    if action is HOLD:
        trade_amount = ZERO_DOLLARS
    current_weight = current_value / denominator
    target_weight = target_value / denominator
    # `_make` from a tuple in field order, not the keyword constructor: it takes a third of the
    # time, and the planner makes one item per symbol of every plan.
    item = PlanItem._make(
        (
            symbol,
            action,
            trade_amount,
            target_value,
            current_value,
            current_weight,
            target_weight,
            target_weight - current_weight,
            priority,
            price,
            False,
        )
    )
    return place, item


def sum_trades(items: list[PlanItem], action: TradeAction) -> Decimal:
    return sum((abs(item.trade_amount) for item in items if item.action is action), ZERO)


def fit_buys(
    items: list[PlanItem], budget: Decimal, threshold: Decimal
) -> tuple[list[PlanItem], Decimal]:
    """Scale every BUY by budget / Σbuys when the BUYs exceed the budget, then re-apply θ.

    Each scaled amount is rounded down to the cent with floor arithmetic throughout, so the
    scaled BUYs never total more than the budget, not even by a rounding digit. A negative
    budget (cash below the reserve and no sells) scales every BUY to nothing.
    """
    buys = sum_trades(items, TradeAction.BUY)
    if buys == 0 or buys <= budget:
        return items, Decimal(1)
    usable = max(budget, ZERO)
    with localcontext(rounding=ROUND_FLOOR):
        scale = usable / buys
        fitted = [
            scaled_buy(
                item, (item.trade_amount * usable / buys).quantize(CENT, ROUND_DOWN), threshold
            )
            if item.action is TradeAction.BUY
            else item
            for item in items
        ]
    return fitted, scale


def scaled_buy(item: PlanItem, trade_amount: Decimal, threshold: Decimal) -> PlanItem:
    """The BUY at its scaled amount, or a HOLD when scaling left less than θ (or nothing)."""
    if trade_amount <= 0 or trade_amount < threshold:
        return item._replace(action=TradeAction.HOLD, trade_amount=ZERO_DOLLARS, scaled=True)
    return item._replace(
        trade_amount=trade_amount, priority=trade_priority(trade_amount), scaled=True
    )
