"""Between the recorded events and the planner: a signal's target weights, an account as the
planner sees it, and a plan as the `RebalancePlanned` records it.

Pure, and the only place these mappings live, so the portfolio service (planning from the
broker) and replay (planning from the recorded snapshot) hand the planner the same inputs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal

from services.portfolio import snapshot as domain
from services.portfolio.planner import RebalancePlan
from shared.broker.models import Order, Position
from shared.events.envelope import Event
from shared.events.ids import CLIENT_ORDER_ID_PREFIX, plan_id
from shared.events.market import AccountSnapshot, OpenOrder, PositionSnapshot
from shared.events.plans import AllocationComparison, PlanItem, PlanMetadata
from shared.events.plans import RebalancePlan as PlanDocument
from shared.events.signals import SignalGenerated
from shared.trading import Quote


def target_weights(signal: SignalGenerated) -> dict[str, Decimal]:
    return dict(signal.consolidated_portfolio.target_allocations)


def planning_account(
    cash: Decimal,
    portfolio_value: Decimal,
    positions: Mapping[str, Decimal],
    quotes: Iterable[Quote],
) -> domain.AccountSnapshot:
    """The account the planner plans from: quantities held and raw quotes (the mid rule is the
    planner's), whatever read them."""
    return domain.AccountSnapshot(
        cash=cash,
        portfolio_value=portfolio_value,
        positions=dict(positions),
        quotes={quote.symbol: quote for quote in quotes},
    )


def recorded_account(
    snapshot: AccountSnapshot, more_quotes: Iterable[Quote] = ()
) -> domain.AccountSnapshot:
    """The account a plan was made from, as its `RebalancePlanned` recorded it; `more_quotes`
    price symbols the recording never priced."""
    return planning_account(
        snapshot.cash,
        snapshot.portfolio_value,
        {position.symbol: position.qty for position in snapshot.positions},
        [*snapshot.quotes, *more_quotes],
    )


def plan_document(
    cause: Event, strategy_name: str, plan: RebalancePlan, position_count: int, now: dt.datetime
) -> PlanDocument:
    """The plan as its event records it; `cause` is the signal, or a liquidation's start."""
    return PlanDocument(
        correlation_id=cause.correlation_id,
        causation_id=str(cause.event_id),
        timestamp=now,
        plan_id=plan_id(cause.correlation_id),
        items=tuple(
            PlanItem(
                symbol=item.symbol,
                current_weight=item.current_weight,
                target_weight=item.target_weight,
                weight_diff=item.weight_diff,
                target_value=item.target_value,
                current_value=item.current_value,
                trade_amount=item.trade_amount,
                action=item.action.value,
                priority=item.priority,
            )
            for item in plan.items
        ),
        total_portfolio_value=plan.total_portfolio_value,
        total_trade_value=plan.total_trade_value,
        metadata=PlanMetadata(
            portfolio_value=plan.total_portfolio_value,
            cash_balance=plan.cash_balance,
            position_count=position_count,
            min_trade_threshold=plan.min_trade_threshold,
            strategy_name=strategy_name,
        ),
    )


def allocation_comparison(plan: RebalancePlan) -> AllocationComparison:
    """Targets, currents and deltas, all as fractions of the portfolio value."""
    value = plan.total_portfolio_value
    if value <= 0:
        return AllocationComparison(target_values={}, current_values={}, deltas={})
    return AllocationComparison(
        target_values={item.symbol: item.target_value / value for item in plan.items},
        current_values={item.symbol: item.current_value / value for item in plan.items},
        deltas={
            item.symbol: (item.target_value - item.current_value) / value for item in plan.items
        },
    )


def position_fact(position: Position, plan: RebalancePlan) -> PositionSnapshot:
    """The position valued at the price the plan used for it."""
    prices = {item.symbol: item.price for item in plan.items}
    return PositionSnapshot(
        symbol=position.symbol,
        qty=position.qty,
        price=prices.get(position.symbol, position.current_price or Decimal(0)),
        market_value=position.market_value,
    )


def open_order_fact(order: Order) -> OpenOrder:
    return OpenOrder(
        broker_order_id=order.order_id,
        client_order_id=order.client_order_id or None,
        symbol=order.symbol,
        side=order.side,
        qty=order.qty,
        filled_qty=order.filled_qty,
        status=order.broker_status,
        own=order.client_order_id.startswith(CLIENT_ORDER_ID_PREFIX),
    )
