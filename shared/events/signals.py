"""`SignalGenerated`: the consolidated target portfolio with each strategy's decision trace, and
the inputs a replay needs to reproduce it
(docs/trading-rules.md, Event payloads; docs/strategy-language.md, Decision trace)."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from decimal import Decimal
from typing import Literal, Self
from uuid import UUID

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


class SignalContent(Event):
    """What a signal decided and the inputs it decided on: the fields `SignalGenerated` and
    `SignalComputed` share (never an event of its own)."""

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


DECIDED_FIELDS = frozenset(
    {
        "strategies",
        "as_of",
        "bars_hash",
        "synthetic_bars",
        "live_bars",
        "strategy_files_hash",
        "signal_fingerprint",
    }
)
"""The fields of `SignalContent` that say what was decided on what; with the consolidated
portfolio's targets, sources and count (not its workflow id or time), what `signal_content_hash`
covers."""


def signal_content_hash(signal: SignalContent) -> str:
    """SHA-256 hex of the canonical JSON of the decision: equal for a `SignalComputed` and every
    `SignalGenerated` copied from it, so any copy can be checked against its source."""
    content = signal.model_dump(mode="json", include=set(DECIDED_FIELDS))
    content["consolidated_portfolio"] = signal.consolidated_portfolio.model_dump(
        mode="json", exclude={"correlation_id", "timestamp"}
    )
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


class SignalGenerated(SignalContent):
    """Version 2 dropped two optional fields no producer ever set (a trace step's `detail`, the
    consolidated portfolio's `constraints`); version 3 added `synthetic_bars`; version 4 added
    `shared_signal_id` and `content_hash`. The upcasters in `shared.events.catalogue` lift older
    documents."""

    event_type: Literal["SignalGenerated"] = "SignalGenerated"
    schema_version: Literal[4] = 4
    shared_signal_id: UUID | None = None
    """The `SignalComputed` this workflow's signal was copied from
    (docs/trading-rules.md, Shared signals); None in versions before 4."""
    content_hash: NonEmptyStr | None = None
    """`signal_content_hash` of the decision, equal to the shared signal's; None before 4."""


class SignalComputed(SignalContent):
    """One evaluation of a strategy set on one market snapshot, recorded once in its own stream
    and copied into the `SignalGenerated` of every workflow that trades it
    (docs/trading-rules.md, Shared signals). Its `correlation_id` is its own event id, so it
    belongs to no workflow; `account_id` and `causation_id` name the workflow whose live prices
    it was decided on."""

    event_type: Literal["SignalComputed"] = "SignalComputed"
    schema_version: Literal[1] = 1
    strategy_set_hash: NonEmptyStr
    """SHA-256 over the config's normalised file weights and the files' names and contents."""
    window: NonEmptyStr
    """The trading window the snapshot stands for: `closed`, or the window's start in UTC."""
    bar_store_hash: NonEmptyStr
    """The bar store's content hash when the snapshot was taken."""
    content_hash: NonEmptyStr
