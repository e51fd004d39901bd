"""One decision for one date or many: every caller (signal step, `alchemiser evaluate`, replay,
backtest) gets the same per-file allocations, traces and consolidated target."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from services.strategy.dsl.ast import Symphony
from services.strategy.dsl.compiler import parse_symphony
from services.strategy.signals import (
    SignalGenerationError,
    StrategyDecision,
    StrategyFailure,
    StrategySet,
    decide,
    decide_dates,
)
from shared.allocation_config import AllocationConfig
from shared.marketdata.bars import BarSnapshot

DAYS = [date(2024, 1, 1) + timedelta(days=i) for i in range(8)]
BARS = BarSnapshot.from_closes(
    DAYS,
    {
        "SPY": [100.0, 102.0, 101.0, 104.0, 103.0, 106.0, 108.0, 107.0],
        "TLT": [90.0, 91.0, 90.5, 91.5, 92.0, 91.0, 92.5, 93.0],
    },
)
BRANCH = parse_symphony(
    '(defsymphony "branch" {} (if (> (current-price "SPY") (moving-average-price "SPY"'
    ' {:window 3})) (asset "SPY") (asset "TLT")))',
    "branch.clj",
)
EQUAL = parse_symphony(
    '(defsymphony "equal" {} (weight-equal [(asset "SPY") (asset "TLT")]))', "equal.clj"
)
SHORT = parse_symphony(
    '(defsymphony "short" {} (if (> (rsi "SPY" {:window 5}) 50) (asset "SPY") (asset "TLT")))',
    "short.clj",
)
UNKNOWN = parse_symphony('(defsymphony "unknown" {} (asset "QQQ"))', "unknown.clj")
WEIGHTS = {"branch.clj": 0.4, "equal.clj": 0.6}


def strategy_set(*symphonies: Symphony) -> StrategySet:
    """Equal weights over `symphonies`, as a config listing them would give."""
    files = {symphony.file_name: symphony for symphony in symphonies}
    weights = {name: 1.0 / len(files) for name in files}
    config = AllocationConfig(Path("allocation.json"), tuple(files), weights, ())
    return StrategySet(config=config, symphonies=files, files_hash="unused")


def test_many_dates_decide_exactly_what_each_date_decides_alone() -> None:
    files = {"branch.clj": BRANCH, "equal.clj": EQUAL}
    together = decide_dates(files, WEIGHTS, BARS, DAYS[3:])
    for decision in together:
        [alone] = decide_dates(files, WEIGHTS, BARS, [decision.as_of])
        assert alone.target_weights == decision.target_weights
        for key, outcome in decision.strategies.items():
            single = alone.strategies[key]
            assert isinstance(outcome, StrategyDecision) and isinstance(single, StrategyDecision)
            assert outcome.allocation == single.allocation
            assert outcome.trace == single.trace


def test_each_date_carries_allocations_traces_and_the_consolidated_target() -> None:
    [decision] = decide_dates({"branch.clj": BRANCH, "equal.clj": EQUAL}, WEIGHTS, BARS, [DAYS[7]])
    branch = decision.strategies["branch.clj"]
    assert isinstance(branch, StrategyDecision)
    assert branch.allocation == {"TLT": 1.0}
    assert branch.weight == 0.4
    assert branch.trace is not None and branch.trace.full()[0]["branch"] == "else"
    assert decision.target_weights == pytest.approx({"SPY": 0.3, "TLT": 0.7}, abs=1e-12)
    assert decision.failed is None


def test_without_traces_the_allocations_are_the_same() -> None:
    files = {"branch.clj": BRANCH}
    traced = decide_dates(files, {"branch.clj": 1.0}, BARS, DAYS[2:])
    plain = decide_dates(files, {"branch.clj": 1.0}, BARS, DAYS[2:], trace=False)
    for with_trace, without in zip(traced, plain, strict=True):
        outcome = without.strategies["branch.clj"]
        assert isinstance(outcome, StrategyDecision) and outcome.trace is None
        assert with_trace.target_weights == without.target_weights


def test_an_evaluation_failure_fails_only_the_dates_that_depend_on_it() -> None:
    decisions = decide_dates({"short.clj": SHORT}, {"short.clj": 1.0}, BARS, [DAYS[3], DAYS[7]])
    early, late = decisions
    failure = early.strategies["short.clj"]
    assert isinstance(failure, StrategyFailure) and failure.stage == "evaluate"
    assert "insufficient history" in failure.message
    assert failure.symbol == "SPY"
    assert early.target_weights is None and early.failed == "short.clj"
    assert late.failure is None and late.target_weights is not None


def test_a_file_outside_the_universe_fails_every_date_before_any_evaluation_failure() -> None:
    files = {"short.clj": SHORT, "unknown.clj": UNKNOWN}
    weights = {"short.clj": 0.5, "unknown.clj": 0.5}
    for decision in decide_dates(files, weights, BARS, [DAYS[3], DAYS[7]]):
        assert decision.failed == "unknown.clj"
        failure = decision.failure
        assert failure is not None and failure.stage == "check"
        assert "unknown ticker 'QQQ'" in failure.message


def test_a_file_that_did_not_load_fails_every_date() -> None:
    unreadable = StrategyFailure("gone.clj", "load", "gone.clj: cannot read the strategy file")
    decisions = decide_dates(
        {"gone.clj": unreadable, "equal.clj": EQUAL}, {"equal.clj": 1.0}, BARS, DAYS[6:]
    )
    for decision in decisions:
        assert decision.strategies["gone.clj"] == unreadable
        assert decision.target_weights == {"SPY": 0.5, "TLT": 0.5}


def test_unweighted_files_are_evaluated_but_not_consolidated() -> None:
    [decision] = decide_dates({"equal.clj": EQUAL}, {}, BARS, [DAYS[7]])
    assert isinstance(decision.strategies["equal.clj"], StrategyDecision)
    assert decision.target_weights is None and decision.failed is None


def test_a_weighted_file_must_be_given() -> None:
    with pytest.raises(ValueError, match=r"missing\.clj"):
        decide_dates({}, {"missing.clj": 1.0}, BARS, [DAYS[7]])


def test_decide_raises_with_the_fix_for_a_file_outside_the_universe() -> None:
    with pytest.raises(SignalGenerationError, match=r"unknown ticker 'QQQ'.*add bars for it"):
        decide(strategy_set(UNKNOWN), BARS, DAYS[7])


def test_decide_raises_the_evaluation_error_as_it_is() -> None:
    with pytest.raises(SignalGenerationError, match=r"^short\.clj:1:\d+: .*insufficient history"):
        decide(strategy_set(SHORT), BARS, DAYS[3])


def test_decide_returns_the_configured_files_and_the_target() -> None:
    decision = decide(strategy_set(BRANCH, EQUAL), BARS, DAYS[7])
    assert [item.strategy for item in decision.strategies] == ["branch.clj", "equal.clj"]
    assert decision.target_weights == pytest.approx({"SPY": 0.25, "TLT": 0.75}, abs=1e-12)


def test_decide_names_each_file_as_the_config_lists_it() -> None:
    config = AllocationConfig(
        Path("allocation.json"), ("sub/equal.clj",), {"sub/equal.clj": 1.0}, ()
    )
    listed = StrategySet(config=config, symphonies={"sub/equal.clj": EQUAL}, files_hash="unused")
    [item] = decide(listed, BARS, DAYS[7]).strategies
    assert item.strategy == "sub/equal.clj"
