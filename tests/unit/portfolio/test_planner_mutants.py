"""Planner rules at the edges mutation testing (`make mutation`) found unpinned: trades exactly on
the 1 % band, the priority of a scaled buy, small accounts, and the limits of a target's symbol
and weight sum."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.portfolio.planner import (
    InvalidTargetError,
    PlanningError,
    TradeAction,
    fit_buys,
    plan_rebalance,
)
from tests.unit.portfolio.accounts import account, weights
from tests.unit.portfolio.test_planner import MIN_TRADE, by_symbol


def test_a_trade_exactly_on_the_band_is_kept() -> None:
    snapshot = account("10000", quoted={"AAA": "10", "BBB": "10"})

    plan = plan_rebalance(
        snapshot, weights(AAA="0.01", BBB="0.99"), Decimal(0), min_trade_fraction=MIN_TRADE
    )

    assert plan.min_trade_threshold == Decimal("100.00")
    assert by_symbol(plan)["AAA"] == (TradeAction.BUY, Decimal("100.00"))


def test_a_buy_scaled_exactly_onto_the_band_is_kept() -> None:
    snapshot = account("1000", {"OLD": ("90", "100")}, {"AAA": "10", "BBB": "10"})

    plan = plan_rebalance(
        snapshot,
        weights(OLD="0.9", AAA="0.011", BBB="0.099"),
        Decimal(0),
        min_trade_fraction=MIN_TRADE,
    )

    items = {item.symbol: item for item in plan.items}
    assert (items["AAA"].action, items["AAA"].trade_amount) == (TradeAction.BUY, Decimal("100.00"))
    assert items["AAA"].scaled
    assert (items["BBB"].action, items["BBB"].trade_amount) == (TradeAction.BUY, Decimal("900.00"))


def test_a_scaled_buy_takes_the_priority_of_its_scaled_amount() -> None:
    snapshot = account("1000", {"OLD": ("90", "100")}, {"AAA": "10"})

    plan = plan_rebalance(
        snapshot, weights(OLD="0.9", AAA="0.11"), Decimal("0.01"), min_trade_fraction=MIN_TRADE
    )

    buy = next(item for item in plan.items if item.symbol == "AAA")
    assert (buy.action, buy.trade_amount, buy.scaled) == (TradeAction.BUY, Decimal("900.00"), True)
    assert buy.priority == 3


def test_on_a_fifty_dollar_account_buys_of_a_dollar_or_less_are_planned_and_scaled() -> None:
    snapshot = account("1", {"AAA": ("4.9", "10")}, {"BBB": "10"})

    plan = plan_rebalance(
        snapshot, weights(AAA="0.99", BBB="0.02"), Decimal(0), min_trade_fraction=MIN_TRADE
    )

    assert plan.min_trade_threshold == Decimal("0.50")
    assert by_symbol(plan) == {
        "AAA": (TradeAction.HOLD, Decimal(0)),
        "BBB": (TradeAction.BUY, Decimal("0.66")),
    }


def test_weights_summing_to_exactly_the_lower_edge_of_the_band_are_accepted() -> None:
    plan = plan_rebalance(
        account("1000", quoted={"AAA": "10"}),
        weights(AAA="0.99"),
        Decimal(0),
        min_trade_fraction=MIN_TRADE,
    )

    assert by_symbol(plan) == {"AAA": (TradeAction.BUY, Decimal("990.00"))}


def test_one_letter_and_ten_letter_symbols_are_valid_targets() -> None:
    snapshot = account("1000", quoted={"F": "10", "ABCDEFGHIJ": "10"})

    plan = plan_rebalance(
        snapshot, weights(F="0.5", ABCDEFGHIJ="0.5"), Decimal(0), min_trade_fraction=MIN_TRADE
    )

    assert {item.symbol for item in plan.items} == {"F", "ABCDEFGHIJ"}


@pytest.mark.parametrize("symbol", ["BRK B", "ABCDEFGHIJK"], ids=["inner-space", "eleven-letters"])
def test_a_malformed_target_symbol_is_refused_naming_it_and_the_rule(symbol: str) -> None:
    snapshot = account("1000", quoted={"AAA": "10"})

    with pytest.raises(
        InvalidTargetError, match=f"'{symbol}' must be 1-10 characters without spaces"
    ):
        plan_rebalance(snapshot, {symbol: Decimal(1)}, Decimal(0), min_trade_fraction=MIN_TRADE)


def test_a_symbol_already_at_its_target_is_listed_after_every_buy() -> None:
    snapshot = account("900", {"AAA": ("10", "10")}, {"BBB": "10", "CCC": "10"})

    plan = plan_rebalance(
        snapshot,
        weights(AAA="0.1", BBB="0.04", CCC="0.86"),
        Decimal(0),
        min_trade_fraction=MIN_TRADE,
    )

    assert [(item.symbol, item.action) for item in plan.items] == [
        ("CCC", TradeAction.BUY),
        ("BBB", TradeAction.BUY),
        ("AAA", TradeAction.HOLD),
    ]


def test_a_trade_held_below_the_band_keeps_its_planning_price() -> None:
    snapshot = account("10000", quoted={"AAA": "10", "BBB": "20"})

    plan = plan_rebalance(
        snapshot, weights(AAA="0.005", BBB="0.995"), Decimal(0), min_trade_fraction=MIN_TRADE
    )

    held = next(item for item in plan.items if item.symbol == "AAA")
    assert (held.action, held.trade_amount, held.price, held.scaled) == (
        TradeAction.HOLD,
        Decimal("0.00"),
        Decimal("10"),
        False,
    )


@pytest.mark.parametrize(
    ("targets", "min_trade_fraction", "error", "message"),
    [
        (
            {},
            MIN_TRADE,
            InvalidTargetError,
            "target weights are empty; the signal must name at least one",
        ),
        (
            weights(AAA="1"),
            Decimal(1),
            PlanningError,
            "min_trade_fraction is 1; ALCHEMISER_MIN_TRADE_FRACTION must be in [0, 1)",
        ),
        (
            weights(AAA="1"),
            Decimal("1.5"),
            PlanningError,
            "min_trade_fraction is 1.5; ALCHEMISER_MIN_TRADE_FRACTION must be in [0, 1)",
        ),
    ],
    ids=["empty", "fraction-one", "fraction-above-one"],
)
def test_planning_errors_say_exactly_what_to_fix(
    targets: dict[str, Decimal],
    min_trade_fraction: Decimal,
    error: type[Exception],
    message: str,
) -> None:
    snapshot = account("100", quoted={"AAA": "10"})

    with pytest.raises(error) as raised:
        plan_rebalance(snapshot, targets, Decimal(0), min_trade_fraction=min_trade_fraction)

    assert str(raised.value) == message


def test_the_buy_scale_is_rounded_down_in_its_last_digit() -> None:
    """Floor arithmetic throughout: even the 28th digit of the scale never rounds up past the
    budget."""
    snapshot = account("30000", quoted={"AAA": "10", "BBB": "10", "CCC": "10"})
    plan = plan_rebalance(
        snapshot,
        weights(AAA="0.34", BBB="0.33", CCC="0.33"),
        Decimal(0),
        min_trade_fraction=MIN_TRADE,
    )
    buys = sum(
        (item.trade_amount for item in plan.items if item.action is TradeAction.BUY), Decimal(0)
    )

    _, scale = fit_buys(list(plan.items), buys * 2 / 3, MIN_TRADE * buys)

    assert scale == Decimal("0.6666666666666666666666666666")
