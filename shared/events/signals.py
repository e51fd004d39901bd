"""`SignalGenerated`: the consolidated target portfolio with each strategy's decision trace, and
the inputs a replay needs to reproduce it
(docs/trading-rules.md, Event payloads; docs/strategy-language.md, Decision trace)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal, Self

from pydantic import Field, model_validator

from shared.events.envelope import Event, Frozen
from shared.events.types import NonEmptyStr, SymbolAmounts, SymbolWeights, UtcDatetime, Weight

"""Cap of one strategy's compact trace; the strategy service truncates and sets the marker."""

WEIGHT_SUM_MIN = Decimal("0.99")
WEIGHT_SUM_MAX = Decimal("1.01")


class DecisionStep(Frozen):
    """One step of the compact decision path. `kind` is `if`, `filter` or
    `weight-inverse-volatility`; values are indicator floats keyed by what they measure
    (e.g. `rsi(SPY,10)`), so an order can be explained back to the numbers that chose it."""

    kind: NonEmptyStr
    span: str | None = None
    """`file:line:col` of the form in the strategy file."""
    condition: str | None = None
    branch: str | None = None
    """`then` or `else` for an `if`."""
    values: dict[str, float] = Field(default_factory=dict)
    """Operand values of a condition, filter scores or inverse-volatility weights."""
    selected: tuple[str, ...] = ()


class StrategySignal(Frozen):
    strategy: NonEmptyStr
    """The strategy file's base name."""
    weight: Weight
    """The file's allocation weight in the configuration."""
    allocation: SymbolWeights
    trace: tuple[DecisionStep, ...] = ()
    trace_truncated: bool = False
    """Set when the trace was cut to its size limit (`alchemiser evaluate --trace` shows all)."""


class ConsolidatedPortfolio(Frozen):
    target_allocations: SymbolWeights
    correlation_id: str = Field(min_length=1, max_length=100)
    timestamp: UtcDatetime
    strategy_count: int = Field(ge=1)
    source_strategies: tuple[NonEmptyStr, ...]

    @model_validator(mode="after")
    def _weights_are_positive_and_sum_to_one(self) -> Self:
        if not self.target_allocations:
            raise ValueError("no positive target allocations")
        zero = [symbol for symbol, weight in self.target_allocations.items() if weight <= 0]
        if zero:
            raise ValueError(
                f"target_allocations must hold only positive weights; drop {', '.join(zero)}"
            )
        total = sum(self.target_allocations.values(), Decimal(0))
        if not WEIGHT_SUM_MIN <= total <= WEIGHT_SUM_MAX:
            raise ValueError(
                f"target_allocations sum to {total}; they must sum to between "
                f"{WEIGHT_SUM_MIN} and {WEIGHT_SUM_MAX}"
            )
        return self


class SignalGenerated(Event):
    """Version 2 dropped two optional fields no producer ever set (a trace step's `detail`, the
    consolidated portfolio's `constraints`); version 3 added `synthetic_bars`. The upcasters in
    `shared.events.catalogue` lift older documents."""

    event_type: Literal["SignalGenerated"] = "SignalGenerated"
    schema_version: Literal[3] = 3
    strategies: tuple[StrategySignal, ...] = Field(min_length=1)
    consolidated_portfolio: ConsolidatedPortfolio
    as_of: date
    bars_hash: NonEmptyStr
    synthetic_bars: bool
    """The bars were the generated sample (`alchemiser data sample`), not market prices: every
    report of the run says so."""
    live_bars: SymbolAmounts = Field(default_factory=dict)
    """Close of the provisional bar per symbol (docs/strategy-language.md, Provisional bar); empty
    outside the session."""
    strategy_files_hash: NonEmptyStr
    signal_fingerprint: NonEmptyStr
