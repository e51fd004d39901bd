"""The plan invariants (docs/trading-rules.md, Plan invariants) on random accounts and targets."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.execution.sizing import AssetInfo, SizingOutcome, size_order
from services.portfolio.planner import PlanItem, RebalancePlan, TradeAction, plan_rebalance
from services.portfolio.snapshot import AccountSnapshot
from shared.trading import Side
from tests.unit.portfolio.accounts import quote

SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "HHH")
MICRO = Decimal("0.000001")
MIN_TRADE = Decimal("0.01")


@dataclass(frozen=True)
class Scenario:
    snapshot: AccountSnapshot
    targets: dict[str, Decimal]
    cash_reserve: Decimal
    prices: dict[str, Decimal]
    fractionable: dict[str, bool]


QUANTITIES = st.one_of(
    st.none(),
    st.integers(1, 2_000).map(Decimal),
    st.integers(1, 500_000_000).map(lambda micro: Decimal(micro) * MICRO),
)
SYMBOL_STATES = st.tuples(
    st.integers(100, 50_000),  # mid in cents
    st.integers(0, 20),  # spread in cents
    st.booleans(),  # fractionable
    QUANTITIES,  # held quantity, None when not held
    st.one_of(st.just(0), st.integers(1, 100)),  # relative target weight, 0: not a target
)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    universe = draw(st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=6, unique=True))
    states = {symbol: draw(SYMBOL_STATES) for symbol in universe}
    if not any(state[4] for state in states.values()):
        first = universe[0]
        states[first] = (*states[first][:4], 1)
    prices = {symbol: Decimal(state[0]) / 100 for symbol, state in states.items()}
    quotes = {
        symbol: quote(
            symbol, prices[symbol] - Decimal(spread) / 200, prices[symbol] + Decimal(spread) / 200
        )
        for symbol, (_, spread, *_rest) in states.items()
    }
    positions = {symbol: state[3] for symbol, state in states.items() if state[3] is not None}
    raw = {symbol: state[4] for symbol, state in states.items() if state[4]}
    weight_sum = Decimal(draw(st.integers(991, 1010))) / 1000
    targets = {
        symbol: min(Decimal(1), (k * weight_sum / sum(raw.values())).quantize(MICRO, ROUND_DOWN))
        for symbol, k in raw.items()
    }
    cash = Decimal(draw(st.integers(10_000, 100_000_000))) / 100
    equity = cash + sum((qty * prices[s] for s, qty in positions.items()), Decimal(0))
    return Scenario(
        snapshot=AccountSnapshot(cash, equity, positions, quotes),
        targets=targets,
        cash_reserve=draw(st.sampled_from([Decimal(0), Decimal("0.01"), Decimal("0.05")])),
        prices=prices,
        fractionable={symbol: state[2] for symbol, state in states.items()},
    )


def planned(scenario: Scenario) -> RebalancePlan:
    return plan_rebalance(
        scenario.snapshot, scenario.targets, scenario.cash_reserve, min_trade_fraction=MIN_TRADE
    )


def total(items: tuple[PlanItem, ...], action: TradeAction) -> Decimal:
    return sum((abs(i.trade_amount) for i in items if i.action is action), Decimal(0))


BOUNDED = settings(max_examples=300, deadline=None)


@BOUNDED
@given(scenarios())
def test_plan_invariants_sells_buys_weights_priorities_and_total(scenario: Scenario) -> None:
    plan = planned(scenario)

    pv = scenario.snapshot.portfolio_value
    budget = (
        scenario.snapshot.cash + total(plan.items, TradeAction.SELL) - scenario.cash_reserve * pv
    )
    assert total(plan.items, TradeAction.BUY) <= max(budget, Decimal(0))
    assert plan.items
    assert {item.symbol for item in plan.items} == set(scenario.targets) | set(
        scenario.snapshot.positions
    )
    for item in plan.items:
        assert 0 <= item.current_weight <= 1
        assert 0 <= item.target_weight <= 1
        assert 1 <= item.priority <= 5
        if item.action is TradeAction.SELL:
            assert abs(item.trade_amount) <= item.current_value
        if item.action is TradeAction.HOLD:
            assert item.trade_amount == 0
        if item.action is TradeAction.HOLD and not item.scaled:
            assert abs(item.target_value - item.current_value) < plan.min_trade_threshold
    assert plan.total_trade_value == total(plan.items, TradeAction.BUY) + total(
        plan.items, TradeAction.SELL
    )
    assert plan.trades_required == (plan.total_trade_value > 0)


def execute_ideally(scenario: Scenario, plan: RebalancePlan) -> dict[str, Decimal]:
    """Fill every sized order at the planning price; return the dollars held afterwards."""
    holdings = {s: scenario.snapshot.positions.get(s, Decimal(0)) for s in scenario.prices}
    for item in plan.items:
        if item.action is TradeAction.HOLD:
            continue
        side = Side.BUY if item.action is TradeAction.BUY else Side.SELL
        sized = size_order(
            side=side,
            trade_amount=item.trade_amount,
            liquidation=side is Side.SELL and item.target_weight == 0,
            price=item.price,
            position_qty=holdings[item.symbol],
            qty_available=holdings[item.symbol],
            asset=AssetInfo(tradable=True, fractionable=scenario.fractionable[item.symbol]),
            min_notional_usd=Decimal("1.00"),
        )
        if sized.outcome is SizingOutcome.SIZED:
            holdings[item.symbol] += sized.qty if side is Side.BUY else -sized.qty
    return {s: qty * scenario.prices[s] for s, qty in holdings.items()}


@BOUNDED
@given(scenarios())
def test_after_ideal_execution_every_position_is_within_tolerance_of_its_target(
    scenario: Scenario,
) -> None:
    plan = planned(scenario)
    after = execute_ideally(scenario, plan)

    pv = scenario.snapshot.portfolio_value
    investable = (1 - scenario.cash_reserve) * pv
    for item in plan.items:
        price = scenario.prices[item.symbol]
        ideal = scenario.targets.get(item.symbol, Decimal(0)) * investable
        rounding = MICRO * price
        if item.scaled:
            assert -rounding <= after[item.symbol] <= ideal + rounding
            continue
        whole_share = Decimal(0) if scenario.fractionable[item.symbol] else price
        tolerance = plan.min_trade_threshold + whole_share + rounding
        assert abs(after[item.symbol] - ideal) < tolerance


@BOUNDED
@given(scenarios())
def test_scaled_buys_spend_the_whole_budget_less_what_theta_drops(scenario: Scenario) -> None:
    plan = planned(scenario)

    scaled = [item for item in plan.items if item.scaled]
    if not scaled:
        return
    pv = scenario.snapshot.portfolio_value
    budget = (
        scenario.snapshot.cash + total(plan.items, TradeAction.SELL) - scenario.cash_reserve * pv
    )
    spent = sum((item.trade_amount for item in scaled), Decimal(0))
    dropped = sum(1 for item in scaled if item.action is TradeAction.HOLD)
    slack = len(scaled) * Decimal("0.01") + dropped * plan.min_trade_threshold
    assert spent <= max(budget, Decimal(0))
    assert spent >= budget - slack
