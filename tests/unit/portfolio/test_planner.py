from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from services.portfolio.planner import (
    InvalidTargetError,
    RebalancePlan,
    TradeAction,
    ZeroEquityError,
    min_trade_threshold,
    plan_rebalance,
    trade_priority,
)
from services.portfolio.snapshot import (
    AccountSnapshot,
    InvalidPriceError,
    InvalidSnapshotError,
    NonPositiveCashError,
    PlanningError,
)
from tests.unit.portfolio.accounts import account, quote, weights

RESERVE = Decimal("0.01")
MIN_TRADE = Decimal("0.01")


def by_symbol(plan: RebalancePlan) -> dict[str, tuple[TradeAction, Decimal]]:
    return {item.symbol: (item.action, item.trade_amount) for item in plan.items}


def test_worked_example_of_the_spec_is_reproduced_exactly() -> None:
    snapshot = account("9000", {"AAA": ("10", "100")}, {"BBB": "50"}, portfolio_value="10000")

    plan = plan_rebalance(
        snapshot, weights(AAA="0.05", BBB="0.95"), RESERVE, min_trade_fraction=MIN_TRADE
    )

    sell, buy = plan.items
    assert (sell.symbol, sell.action, sell.trade_amount, sell.priority) == (
        "AAA",
        TradeAction.SELL,
        Decimal(-505),
        3,
    )
    assert (buy.symbol, buy.action, buy.trade_amount, buy.priority) == (
        "BBB",
        TradeAction.BUY,
        Decimal(9405),
        2,
    )
    assert sell.target_value == Decimal(495)
    assert sell.current_weight.quantize(Decimal("0.00001")) == Decimal("0.10101")
    assert sell.target_weight == Decimal("0.05")
    assert buy.target_weight == Decimal("0.95")
    assert plan.min_trade_threshold == Decimal("100.00")
    assert plan.total_trade_value == Decimal(9910)
    assert plan.trades_required
    assert plan.buy_scale == 1
    assert not buy.scaled


def test_items_are_ordered_sell_buy_hold_then_priority_then_symbol() -> None:
    snapshot = account(
        "20000",
        {"ZZZ": ("100", "100"), "YYY": ("5", "100"), "HHH": ("50", "100")},
        {"BBB": "10", "AAA": "10", "CCC": "10"},
    )
    targets = weights(HHH="0.15", BBB="0.3", AAA="0.3", CCC="0.25")

    plan = plan_rebalance(snapshot, targets, Decimal(0), min_trade_fraction=MIN_TRADE)

    assert [(item.action, item.symbol) for item in plan.items] == [
        (TradeAction.SELL, "ZZZ"),
        (TradeAction.SELL, "YYY"),
        (TradeAction.BUY, "AAA"),
        (TradeAction.BUY, "BBB"),
        (TradeAction.BUY, "CCC"),
        (TradeAction.HOLD, "HHH"),
    ]


def test_suppressed_trade_keeps_its_place_weights_and_values() -> None:
    snapshot = account("50", {"AAA": ("50", "100"), "BBB": ("49.5", "100")})

    plan = plan_rebalance(
        snapshot, weights(AAA="0.5", BBB="0.5"), Decimal(0), min_trade_fraction=MIN_TRADE
    )

    suppressed_buy, hold = plan.items
    assert (suppressed_buy.symbol, suppressed_buy.action) == ("BBB", TradeAction.HOLD)
    assert suppressed_buy.trade_amount == Decimal("0.00")
    assert suppressed_buy.priority == 4
    assert suppressed_buy.target_value == Decimal(5000)
    assert suppressed_buy.current_value == Decimal(4950)
    assert suppressed_buy.weight_diff == Decimal("0.005")
    assert (hold.symbol, hold.action, hold.priority) == ("AAA", TradeAction.HOLD, 5)
    assert not plan.trades_required
    assert plan.total_trade_value == 0


def test_buys_beyond_cash_and_sell_proceeds_are_scaled_into_the_budget() -> None:
    snapshot = account("1000", {"AAA": ("90", "100")}, {"BBB": "10", "CCC": "10"})

    plan = plan_rebalance(
        snapshot, weights(AAA="0.5", BBB="0.26", CCC="0.25"), RESERVE, min_trade_fraction=MIN_TRADE
    )

    items = {item.symbol: item for item in plan.items}
    budget = Decimal(1000) + abs(items["AAA"].trade_amount) - RESERVE * Decimal(10000)
    buys = [items["BBB"], items["CCC"]]
    assert all(item.scaled and item.action is TradeAction.BUY for item in buys)
    assert sum(item.trade_amount for item in buys) <= budget
    assert budget - sum(item.trade_amount for item in buys) < Decimal("0.02")
    assert items["BBB"].trade_amount > items["CCC"].trade_amount
    assert plan.buy_scale < 1


def test_a_buy_scaled_below_the_threshold_becomes_a_hold() -> None:
    snapshot = account("300", {"AAA": ("97", "100")}, {"BBB": "10", "CCC": "10"})

    plan = plan_rebalance(
        snapshot,
        weights(AAA="0.97", BBB="0.02", CCC="0.011"),
        RESERVE,
        min_trade_fraction=MIN_TRADE,
    )

    assert by_symbol(plan) == {
        "AAA": (TradeAction.HOLD, Decimal(0)),
        "BBB": (TradeAction.BUY, Decimal("129.03")),
        "CCC": (TradeAction.HOLD, Decimal(0)),
    }
    assert {item.symbol for item in plan.items if item.scaled} == {"BBB", "CCC"}


def test_no_buy_is_planned_when_cash_is_below_the_reserve_and_nothing_is_sold() -> None:
    snapshot = account("50", {"AAA": ("50", "100"), "BBB": ("49.5", "100")}, {"CCC": "10"})

    plan = plan_rebalance(
        snapshot,
        weights(AAA="0.495", BBB="0.495", CCC="0.0105"),
        RESERVE,
        min_trade_fraction=MIN_TRADE,
    )

    assert by_symbol(plan)["CCC"] == (TradeAction.HOLD, Decimal(0))
    assert plan.buy_scale == 0


@pytest.mark.parametrize(
    ("trade_amount", "priority"),
    [
        ("10000", 1),
        ("-9999.99", 2),
        ("1000", 2),
        ("999.99", 3),
        ("100", 3),
        ("-50", 4),
        ("49.99", 5),
        ("0", 5),
    ],
)
def test_priority_bands_by_absolute_trade_amount(trade_amount: str, priority: int) -> None:
    assert trade_priority(Decimal(trade_amount)) == priority


@pytest.mark.parametrize(
    ("portfolio_value", "threshold"),
    [("10000", "100.00"), ("12345.50", "123.46"), ("0.5", "0.01"), ("0", "0.00"), ("-1", "0.00")],
)
def test_minimum_trade_is_one_percent_of_equity_rounded_half_up(
    portfolio_value: str, threshold: str
) -> None:
    assert min_trade_threshold(Decimal(portfolio_value), MIN_TRADE) == Decimal(threshold)


def test_the_minimum_trade_fraction_sets_the_band_below_which_a_trade_is_held() -> None:
    snapshot = account("300", {"AAA": ("97", "100")}, {"BBB": "10"})
    targets = weights(AAA="0.95", BBB="0.05")

    fine = plan_rebalance(snapshot, targets, Decimal(0), min_trade_fraction=Decimal("0.01"))
    coarse = plan_rebalance(snapshot, targets, Decimal(0), min_trade_fraction=Decimal("0.06"))

    assert by_symbol(fine)["BBB"] == (TradeAction.BUY, Decimal("500.00"))
    assert coarse.min_trade_threshold == Decimal("600.00")
    assert by_symbol(coarse)["BBB"] == (TradeAction.HOLD, Decimal(0))


def test_a_simulation_without_cash_plans_on_when_positive_cash_is_not_required() -> None:
    snapshot = account("-0.0004", {"AAA": ("100", "10")}, {"BBB": "20"})

    with pytest.raises(NonPositiveCashError):
        plan_rebalance(
            snapshot, weights(AAA="0.5", BBB="0.5"), Decimal(0), min_trade_fraction=Decimal(0)
        )
    plan = plan_rebalance(
        snapshot,
        weights(AAA="0.5", BBB="0.5"),
        Decimal(0),
        min_trade_fraction=Decimal(0),
        require_positive_cash=False,
    )

    buy = by_symbol(plan)["BBB"]
    assert buy[0] is TradeAction.BUY
    assert buy[1] <= Decimal("-0.0004") + abs(by_symbol(plan)["AAA"][1])


@pytest.mark.parametrize(
    ("bid", "ask", "price"),
    [
        ("10.00", "10.02", "10.01"),
        (None, "10.00", "10.00"),
        ("10.00", "0", "10.00"),
        ("10.00", "9.99995", "9.999975"),
    ],
    ids=["two-sided", "ask-only", "zero-ask-is-absent", "crossed-within-tolerance"],
)
def test_planning_price_is_the_mid_with_a_one_sided_quote_mirrored(
    bid: str | None, ask: str | None, price: str
) -> None:
    quoted = quote("AAA", Decimal(bid) if bid else None, Decimal(ask) if ask else None)
    snapshot = AccountSnapshot(Decimal(100), Decimal(100), {}, {"AAA": quoted})

    plan = plan_rebalance(snapshot, weights(AAA="1"), RESERVE, min_trade_fraction=MIN_TRADE)

    assert plan.items[0].price == Decimal(price)


@pytest.mark.parametrize(
    ("bid", "ask"),
    [("0.0001", "1"), ("1", "0.00005"), ("10.00", "9.9998"), (None, None), ("-1", "1")],
    ids=["bid-too-small", "ask-too-small", "crossed", "empty", "negative-bid"],
)
def test_an_unusable_quote_fails_planning_naming_the_symbol(
    bid: str | None, ask: str | None
) -> None:
    quoted = quote("AAA", Decimal(bid) if bid else None, Decimal(ask) if ask else None)
    snapshot = AccountSnapshot(Decimal(100), Decimal(100), {}, {"AAA": quoted})

    with pytest.raises(InvalidPriceError, match=r"^Invalid price for AAA"):
        plan_rebalance(snapshot, weights(AAA="1"), RESERVE, min_trade_fraction=MIN_TRADE)


@dataclass(frozen=True)
class PlannerCase:
    snapshot: AccountSnapshot
    targets: dict[str, Decimal]
    expected: dict[str, tuple[TradeAction, Decimal]] | None = None
    error: type[PlanningError] | None = None
    message: str = ""


PLANNER_EDGE_CASES = {
    "8-02-weights-sum-0.995-leave-the-rest-in-cash": PlannerCase(
        account("10000", quoted={"AAA": "10", "BBB": "10"}),
        weights(AAA="0.5", BBB="0.495"),
        {"AAA": (TradeAction.BUY, Decimal(4950)), "BBB": (TradeAction.BUY, Decimal("4900.5"))},
    ),
    "8-02-weights-sum-1.01-are-scaled-into-the-budget": PlannerCase(
        account("10000", quoted={"AAA": "10", "BBB": "10"}),
        weights(AAA="0.51", BBB="0.5"),
        {
            "AAA": (TradeAction.BUY, Decimal("4999.00")),
            "BBB": (TradeAction.BUY, Decimal("4900.99")),
        },
    ),
    "8-03-weight-above-one": PlannerCase(
        account("100", quoted={"AAA": "10"}),
        weights(AAA="1.001"),
        error=InvalidTargetError,
        message="target weight of AAA is 1.001",
    ),
    "8-03-negative-weight": PlannerCase(
        account("100", quoted={"AAA": "10", "BBB": "10"}),
        weights(AAA="1.1", BBB="-0.1"),
        error=InvalidTargetError,
        message="target weight of AAA",
    ),
    "8-03-duplicate-after-upper-casing": PlannerCase(
        account("100", quoted={"AAA": "10"}),
        {"AAA": Decimal("0.5"), " aaa": Decimal("0.5")},
        error=InvalidTargetError,
        message="AAA appears twice",
    ),
    "8-03-empty-target-map": PlannerCase(
        account("100"), {}, error=InvalidTargetError, message="empty"
    ),
    "8-03-sum-outside-band": PlannerCase(
        account("100", quoted={"AAA": "10"}),
        weights(AAA="0.98"),
        error=InvalidTargetError,
        message="sum to 0.98",
    ),
    "8-04-held-symbol-not-in-targets-is-sold-entirely": PlannerCase(
        account("9000", {"OLD": ("10", "100")}, {"AAA": "10"}),
        weights(AAA="1"),
        {"AAA": (TradeAction.BUY, Decimal(9900)), "OLD": (TradeAction.SELL, Decimal(-1000))},
    ),
    "8-05-dust-below-threshold-is-held-and-buys-fit-the-cash": PlannerCase(
        account("9950", {"OLD": ("1", "50")}, {"AAA": "10"}),
        weights(AAA="1"),
        {"AAA": (TradeAction.BUY, Decimal("9850.00")), "OLD": (TradeAction.HOLD, Decimal(0))},
    ),
    "8-06-already-balanced-is-all-hold": PlannerCase(
        account("100", {"AAA": ("50", "100"), "BBB": ("49", "100")}),
        weights(AAA="0.5", BBB="0.5"),
        {"AAA": (TradeAction.HOLD, Decimal(0)), "BBB": (TradeAction.HOLD, Decimal(0))},
    ),
    "8-10-target-without-quote": PlannerCase(
        account("1000", quoted={"AAA": "10"}),
        weights(AAA="0.5", DEAD="0.5"),
        error=InvalidPriceError,
        message="Invalid price for DEAD",
    ),
    "8-10-held-symbol-without-quote": PlannerCase(
        AccountSnapshot(
            Decimal(1000),
            Decimal(2000),
            {"DEAD": Decimal(10)},
            {"AAA": quote("AAA", Decimal(10), Decimal(10))},
        ),
        weights(AAA="1"),
        error=InvalidPriceError,
        message="Invalid price for DEAD",
    ),
    "8-16-negative-cash-with-positions-fails-by-default": PlannerCase(
        account("-12.4", {"AAA": ("10", "100")}),
        weights(AAA="1"),
        error=NonPositiveCashError,
        message=r"cash is \$-12.40 and liquidation on non-positive cash is off",
    ),
    "8-17-zero-equity-fails-as-non-positive-cash-by-default": PlannerCase(
        account("0", quoted={"AAA": "10"}),
        weights(AAA="1"),
        error=NonPositiveCashError,
        message=r"cash is \$0.00",
    ),
    "8-17-zero-equity-with-cash-back-fails-as-zero-equity": PlannerCase(
        account("10", quoted={"AAA": "10"}, portfolio_value="0"),
        weights(AAA="1"),
        error=ZeroEquityError,
        message="zero equity",
    ),
    "8-18-short-position": PlannerCase(
        account("1000", {"AAA": ("-5", "10")}),
        weights(AAA="1"),
        error=InvalidSnapshotError,
        message="position AAA has qty -5",
    ),
    "negative-equity": PlannerCase(
        account("10", quoted={"AAA": "10"}, portfolio_value="-1"),
        weights(AAA="1"),
        error=InvalidSnapshotError,
        message=r"portfolio_value is \$-1.00",
    ),
}


@pytest.mark.parametrize(
    "case", list(PLANNER_EDGE_CASES.values()), ids=list(PLANNER_EDGE_CASES.keys())
)
def test_planner_edge_cases_of_the_spec(case: PlannerCase) -> None:
    if case.error is not None:
        with pytest.raises(case.error, match=case.message):
            plan_rebalance(case.snapshot, case.targets, RESERVE, min_trade_fraction=MIN_TRADE)
        return
    plan = plan_rebalance(case.snapshot, case.targets, RESERVE, min_trade_fraction=MIN_TRADE)
    assert by_symbol(plan) == case.expected
    assert plan.trades_required == any(
        action is not TradeAction.HOLD for action, _ in (case.expected or {}).values()
    )


def test_liquidated_symbol_has_target_weight_zero() -> None:
    snapshot = account("9000", {"OLD": ("10", "100")}, {"AAA": "10"})

    plan = plan_rebalance(snapshot, weights(AAA="1"), RESERVE, min_trade_fraction=MIN_TRADE)

    old = next(item for item in plan.items if item.symbol == "OLD")
    assert old.target_weight == 0
    assert old.target_value == 0
    assert old.trade_amount == -old.current_value


def test_a_zero_weight_target_is_dropped_and_a_held_one_liquidated() -> None:
    snapshot = account("9000", {"OLD": ("10", "100")}, {"AAA": "10"})

    plan = plan_rebalance(
        snapshot, weights(AAA="1", OLD="0", NEW="0"), RESERVE, min_trade_fraction=MIN_TRADE
    )

    assert {item.symbol for item in plan.items} == {"AAA", "OLD"}


def test_target_symbols_are_normalised_to_upper_case() -> None:
    snapshot = account("1000", quoted={"AAA": "10"})

    plan = plan_rebalance(snapshot, {" aaa ": Decimal(1)}, RESERVE, min_trade_fraction=MIN_TRADE)

    assert [item.symbol for item in plan.items] == ["AAA"]


def test_reserve_outside_zero_to_one_names_the_setting() -> None:
    with pytest.raises(PlanningError, match="ALCHEMISER_CASH_RESERVE"):
        plan_rebalance(
            account("1000", quoted={"AAA": "10"}),
            weights(AAA="1"),
            Decimal(1),
            min_trade_fraction=MIN_TRADE,
        )
