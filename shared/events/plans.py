"""`RebalancePlanned`: the plan in dollars per symbol and the account it was made from
(docs/trading-rules.md, Event payloads / Planning)."""

from __future__ import annotations

from typing import Literal, Self
from uuid import UUID

from pydantic import Field, model_validator

from shared.events.envelope import Event, Frozen
from shared.events.market import AccountSnapshot, OpenOrder
from shared.events.types import (
    Action,
    Money,
    NonEmptyStr,
    NonNegativeMoney,
    Symbol,
    SymbolAmounts,
    UtcDatetime,
    Weight,
)


class PlanItem(Frozen):
    symbol: Symbol
    current_weight: Weight
    target_weight: Weight
    weight_diff: Money
    target_value: NonNegativeMoney
    current_value: NonNegativeMoney
    trade_amount: Money
    """Dollars: positive buys, negative sells; execution sizes the shares."""
    action: Action
    priority: int = Field(ge=1, le=5)


class PlanMetadata(Frozen):
    portfolio_value: NonNegativeMoney
    cash_balance: Money
    position_count: int = Field(ge=0)
    min_trade_threshold: NonNegativeMoney
    strategy_name: str


class RebalancePlan(Frozen):
    correlation_id: NonEmptyStr
    causation_id: NonEmptyStr
    timestamp: UtcDatetime
    plan_id: UUID
    items: tuple[PlanItem, ...] = Field(min_length=1)
    total_portfolio_value: NonNegativeMoney
    total_trade_value: NonNegativeMoney
    """Σ|trade_amount| after suppression of trades under the threshold."""
    metadata: PlanMetadata


class AllocationComparison(Frozen):
    """All three as fractions of portfolio value, never percentages, so they add and compare."""

    target_values: SymbolAmounts
    current_values: SymbolAmounts
    deltas: SymbolAmounts


class RebalancePlanned(Event):
    event_type: Literal["RebalancePlanned"] = "RebalancePlanned"
    schema_version: Literal[1] = 1
    rebalance_plan: RebalancePlan
    allocation_comparison: AllocationComparison
    trades_required: bool
    snapshot: AccountSnapshot
    open_orders: tuple[OpenOrder, ...] = ()
    signal_fingerprint: NonEmptyStr

    @property
    def plan_id(self) -> UUID:
        return self.rebalance_plan.plan_id

    @property
    def items(self) -> tuple[PlanItem, ...]:
        return self.rebalance_plan.items

    @model_validator(mode="after")
    def _trades_required_matches_items(self) -> Self:
        expected = any(item.action != "HOLD" for item in self.rebalance_plan.items)
        if self.trades_required != expected:
            raise ValueError(
                f"trades_required is {self.trades_required} but the plan items say {expected}"
            )
        return self
