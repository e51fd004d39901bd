"""`SignalGenerated` and the strategy's decision, each built from the other.

The decision side holds floats (the evaluator's numbers); the event holds decimals written as
the shortest string that reads back as the same float, so a replay that decides again compares
equal to the recording. The signal step builds the event's payload here, and replay reads a
recording back here, so neither carries its own copy of the conversion.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from services.strategy.signals import SignalDecision, decimal_text
from shared.events.signals import (
    ConsolidatedPortfolio,
    DecisionStep,
    SignalGenerated,
    StrategySignal,
)


@dataclass(frozen=True)
class RecordedSignal:
    """What a recorded `SignalGenerated` decided, and the inputs it decided on."""

    as_of: dt.date
    target_weights: Mapping[str, Decimal]
    allocations: Mapping[str, Mapping[str, Decimal]]
    """Each strategy file's allocation, by file base name."""
    live_closes: Mapping[str, float]
    """The provisional bar's closes; empty when the run decided outside the session."""
    bars_hash: str
    strategy_files_hash: str


def target_allocations(weights: Mapping[str, float]) -> dict[str, Decimal]:
    """Decided weights as the event carries them."""
    return {symbol: Decimal(decimal_text(weight)) for symbol, weight in weights.items()}


def strategy_signals(decision: SignalDecision) -> tuple[StrategySignal, ...]:
    """Each file's weight, allocation and compact decision path."""
    signals: list[StrategySignal] = []
    for item in decision.strategies:
        compact = item.trace.compact() if item.trace is not None else {"path": []}
        signals.append(
            StrategySignal(
                strategy=item.strategy,
                weight=Decimal(decimal_text(item.weight)),
                allocation=target_allocations(item.allocation),
                trace=tuple(decision_steps(item.strategy, compact)),
                trace_truncated=bool(compact.get("truncated")),
            )
        )
    return tuple(signals)


def consolidated_portfolio(
    decision: SignalDecision, correlation_id: str, timestamp: dt.datetime
) -> ConsolidatedPortfolio:
    return ConsolidatedPortfolio(
        target_allocations=target_allocations(decision.target_weights),
        correlation_id=correlation_id,
        timestamp=timestamp,
        strategy_count=len(decision.strategies),
        source_strategies=tuple(item.strategy for item in decision.strategies),
    )


def decision_steps(strategy: str, compact: Mapping[str, Any]) -> list[DecisionStep]:
    """The compact trace (`DecisionTrace.compact()`) as event steps: `if` with its operands and
    branch, filter winners with their scores, inverse-volatility weights."""
    return [DecisionStep(**fields) for fields in decision_step_fields(strategy, compact)]


def decision_step_fields(strategy: str, compact: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The fields of `decision_steps`' steps as plain dicts, every field in the model's order,
    as `model_dump(mode="json")` gives them: a backtest writes about 200,000 steps, and building
    a model for each costs more time and memory than the rest of its output."""
    steps: list[dict[str, Any]] = []
    for entry in compact.get("path", []):
        if "if" in entry:
            steps.append(
                _step(
                    "if",
                    f"{strategy}:{entry['if']}",
                    condition=entry["condition"],
                    branch=entry["branch"],
                    values=_floats({"left": entry.get("left"), "right": entry.get("right")}),
                )
            )
        elif "filter" in entry:
            winners = entry.get("winners", [])
            steps.append(
                _step(
                    "filter",
                    f"{strategy}:{entry['filter']}",
                    selected=[str(w["candidate"]) for w in winners],
                    values=_floats({str(w["candidate"]): w.get("score") for w in winners}),
                )
            )
        elif "inverse_volatility" in entry:
            steps.append(
                _step(
                    "weight-inverse-volatility",
                    f"{strategy}:{entry['inverse_volatility']}",
                    values=_floats(entry.get("weights", {})),
                )
            )
    return steps


def _step(
    kind: str,
    span: str,
    *,
    condition: str | None = None,
    branch: str | None = None,
    values: dict[str, float],
    selected: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "span": span,
        "condition": condition,
        "branch": branch,
        "values": values,
        "selected": selected or [],
    }


_NUMBERS = (int, float)
"""A tuple, not `int | float`: the union is built again at every check, about 200,000 of them
in a backtest of ten files."""


def _floats(values: Mapping[str, Any]) -> dict[str, float]:
    """Finite numbers only: a score that could not be computed is left out, not sent as NaN
    (JSON has no NaN, and the event must read back)."""
    return {
        key: float(value)
        for key, value in values.items()
        if isinstance(value, _NUMBERS) and math.isfinite(value)
    }


def recorded_signal(event: SignalGenerated) -> RecordedSignal:
    """The domain values a replay re-decides from and compares with."""
    return RecordedSignal(
        as_of=event.as_of,
        target_weights=dict(event.consolidated_portfolio.target_allocations),
        allocations={item.strategy: dict(item.allocation) for item in event.strategies},
        live_closes={symbol: float(price) for symbol, price in event.live_bars.items()},
        bars_hash=event.bars_hash,
        strategy_files_hash=event.strategy_files_hash,
    )
