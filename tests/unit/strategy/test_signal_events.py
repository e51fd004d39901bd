"""A decision becomes a `SignalGenerated` payload, and a recorded one reads back as the values a
replay re-decides from, without loss."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

from services.strategy.dsl.trace import DecisionTrace
from services.strategy.signal_events import (
    consolidated_portfolio,
    decision_steps,
    recorded_signal,
    strategy_signals,
    target_allocations,
)
from services.strategy.signals import SignalDecision, StrategyDecision
from shared.events.ids import signal_fingerprint
from shared.events.signals import SignalGenerated

NOW = dt.datetime(2024, 11, 26, 20, 45, tzinfo=dt.UTC)
IF_ENTRY = {
    "node": "if",
    "span": "3:5",
    "condition": '(> (rsi "SPY" {:window 10}) 79)',
    "left": 81.5,
    "right": 79.0,
    "branch": "then",
}
FILTER_ENTRY = {
    "node": "filter",
    "span": "9:7",
    "rank": "rsi 10",
    "select": "top 1",
    "candidates": [{"candidate": "TQQQ", "score": 64.25}, {"candidate": "SPXL", "score": 61.0}],
    "selected": ["TQQQ"],
}
DECISION = SignalDecision(
    as_of=dt.date(2024, 11, 26),
    strategies=(
        StrategyDecision(
            "a.clj", 0.1 + 0.2, {"TQQQ": 1.0}, DecisionTrace.of((IF_ENTRY, FILTER_ENTRY))
        ),
        StrategyDecision("b.clj", 0.7, {"BIL": 0.5, "TQQQ": 0.5}, None),
    ),
    target_weights={"BIL": 0.35, "TQQQ": 0.65},
)


def signal_of(decision: SignalDecision) -> SignalGenerated:
    portfolio = consolidated_portfolio(decision, "wf-1", NOW)
    return SignalGenerated(
        correlation_id="wf-1",
        account_id="default",
        occurred_at=NOW,
        source="strategy",
        strategies=strategy_signals(decision),
        consolidated_portfolio=portfolio,
        as_of=decision.as_of,
        bars_hash="bars",
        synthetic_bars=False,
        live_bars={"TQQQ": Decimal("78.125")},
        strategy_files_hash="files",
        signal_fingerprint=signal_fingerprint(portfolio.target_allocations),
    )


def test_weights_travel_as_the_shortest_decimal_of_the_float() -> None:
    assert target_allocations({"SPY": 0.1 + 0.2}) == {"SPY": Decimal("0.30000000000000004")}


def test_each_strategy_carries_its_weight_allocation_and_compact_path() -> None:
    first, second = strategy_signals(DECISION)
    assert first.weight == Decimal("0.30000000000000004")
    assert first.allocation == {"TQQQ": Decimal("1.0")}
    assert [step.kind for step in first.trace] == ["if", "filter"]
    assert first.trace[0].span == "a.clj:3:5" and first.trace[0].branch == "then"
    assert first.trace[1].selected == ("TQQQ",) and first.trace[1].values == {"TQQQ": 64.25}
    assert not first.trace_truncated
    assert second.trace == ()


def test_the_consolidated_portfolio_names_every_source_strategy() -> None:
    portfolio = consolidated_portfolio(DECISION, "wf-1", NOW)
    assert portfolio.source_strategies == ("a.clj", "b.clj")
    assert portfolio.strategy_count == 2
    assert portfolio.target_allocations == {"BIL": Decimal("0.35"), "TQQQ": Decimal("0.65")}


def test_a_recorded_signal_reads_back_what_was_decided_and_on_which_inputs() -> None:
    recorded = recorded_signal(signal_of(DECISION))
    assert recorded.as_of == DECISION.as_of
    assert recorded.target_weights == target_allocations(DECISION.target_weights)
    assert recorded.allocations == {
        "a.clj": {"TQQQ": Decimal("1.0")},
        "b.clj": {"BIL": Decimal("0.5"), "TQQQ": Decimal("0.5")},
    }
    assert recorded.live_closes == {"TQQQ": 78.125}
    assert (recorded.bars_hash, recorded.strategy_files_hash) == ("bars", "files")


def test_a_score_that_could_not_be_computed_is_left_out_not_sent_as_nan() -> None:
    compact = {
        "path": [{"filter": "2:3", "winners": [{"candidate": "X", "score": math.nan}]}],
        "truncated": 0,
    }
    [step] = decision_steps("a.clj", compact)
    assert step.selected == ("X",) and step.values == {}
