"""The evaluator on the worked examples and its failure rules:

docs/strategy-language.md, Composition examples / Filter examples / Inverse-volatility example
docs/strategy-language.md, Group candidate example / Combination example / End-to-end example
docs/strategy-language.md, Errors
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, timedelta

import pytest

from services.strategy.dsl.ast import Filter, WeightEqual
from services.strategy.dsl.compiler import parse_symphony
from services.strategy.dsl.errors import DslError, DslEvaluationError
from services.strategy.dsl.evaluator import Evaluation, evaluate_symphony
from shared.marketdata.bars import BarSnapshot

FIRST_DAY = date(2024, 1, 1)
P = [100.0, 102.0, 101.0, 104.0, 103.0, 106.0, 108.0, 107.0]


def sessions(count: int) -> list[date]:
    return [FIRST_DAY + timedelta(days=i) for i in range(count)]


def evaluate(
    body: str,
    closes: Mapping[str, Sequence[float]],
    as_of: Sequence[date] | None = None,
) -> list[Evaluation]:
    count = len(next(iter(closes.values())))
    symphony = parse_symphony(f'(defsymphony "t" {{}}\n {body})', "t.clj")
    bars = BarSnapshot.from_closes(sessions(count), closes)
    return evaluate_symphony(symphony, bars, as_of or [sessions(count)[-1]])


def weights_of(body: str, closes: Mapping[str, Sequence[float]]) -> dict[str, float]:
    [evaluation] = evaluate(body, closes)
    assert evaluation.error is None, evaluation.error
    assert evaluation.weights is not None
    return evaluation.weights


def assert_weights(actual: Mapping[str, float], expected: Mapping[str, float]) -> None:
    assert list(actual) == sorted(expected)
    for ticker, weight in expected.items():
        assert actual[ticker] == pytest.approx(weight, abs=1e-9)


FLAT = {"A": [1.0] * 3, "B": [1.0] * 3, "C": [1.0] * 3}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            '(weight-equal [(asset "A") (weight-specified 0.75 (asset "B") 0.25 (asset "C"))])',
            {"A": 0.5, "B": 0.375, "C": 0.125},
            id="E1",
        ),
        pytest.param(
            '(weight-equal [(group "g1" [(asset "A")]) '
            '(group "g2" [(weight-equal [(asset "B") (asset "C")])])])',
            {"A": 0.5, "B": 0.25, "C": 0.25},
            id="E2",
        ),
        pytest.param(
            '(weight-specified 0.5 (asset "A") 0.5 (weight-equal [(asset "A") (asset "B")]))',
            {"A": 0.75, "B": 0.25},
            id="E3",
        ),
        pytest.param(
            '(weight-specified 60 (asset "A") 40 (asset "B"))', {"A": 0.6, "B": 0.4}, id="E4"
        ),
        pytest.param(
            '(weight-equal [(asset "A") (asset "A") (asset "B")])',
            {"A": 2 / 3, "B": 1 / 3},
            id="E5",
        ),
        pytest.param(
            '(weight-specified 0.6 (group "g1" [(asset "A")]) '
            '0.4 (group "g2" [(weight-equal [(asset "B") (asset "C")])]))',
            {"A": 0.6, "B": 0.2, "C": 0.2},
            id="E6",
        ),
        pytest.param(
            '(weight-equal [[(asset "A")] [(asset "B") (asset "C")]])',
            {"A": 0.5, "B": 0.25, "C": 0.25},
            id="E7",
        ),
        pytest.param(
            '(group "g" [(weight-specified 60 (asset "A") 40 (asset "B")) (asset "C")])',
            {"A": 0.3, "B": 0.2, "C": 0.5},
            id="E9",
        ),
        pytest.param('(if false (asset "A") (asset "B"))', {"B": 1.0}, id="E10"),
    ],
)
def test_composition_multiplies_weights_down_the_tree(
    body: str, expected: dict[str, float]
) -> None:
    assert_weights(weights_of(body, FLAT), expected)


def test_if_without_else_is_rejected_before_evaluation() -> None:
    with pytest.raises(DslError, match="if"):
        parse_symphony(
            '(defsymphony "t" {} (weight-equal [(if (> 1 2) [(asset "A")]) (asset "B")]))',
            "t.clj",
        )


def test_zero_specified_weight_removes_the_child_without_reading_its_data() -> None:
    body = (
        '(weight-specified 1 (asset "A") '
        '0 (if (> (rsi "A" {:window 50}) 1) (asset "B") (asset "C")))'
    )
    assert_weights(weights_of(body, FLAT), {"A": 1.0})


FILTER_SERIES = {
    "A": [100.0, 101.0, 102.0, 105.0],
    "B": [100.0, 99.0, 99.0, 98.0],
    "C": [80.0, 82.0, 83.0, 84.0],
}
CHILDREN_ABC = '[(asset "A") (asset "B") (asset "C")]'
CHILDREN_CBA = '[(asset "C") (asset "B") (asset "A")]'


@pytest.mark.parametrize(
    ("selector", "children", "expected"),
    [
        pytest.param("(select-top 1)", CHILDREN_ABC, {"A": 1.0}, id="F1"),
        pytest.param("(select-top 1)", CHILDREN_CBA, {"A": 1.0}, id="F1-reversed"),
        pytest.param("(select-top 2)", CHILDREN_ABC, {"A": 0.5, "C": 0.5}, id="F2"),
        pytest.param("(select-bottom 1)", CHILDREN_ABC, {"B": 1.0}, id="F3"),
        pytest.param("(select-top 5)", CHILDREN_ABC, {"A": 1 / 3, "B": 1 / 3, "C": 1 / 3}, id="F4"),
        pytest.param(
            "(select-top 2)",
            '[(asset "C") (asset "C") (asset "A")]',
            {"A": 0.5, "C": 0.5},
            id="F4b",
        ),
    ],
)
def test_filter_ranks_distinct_tickers_and_breaks_exact_ties_alphabetically(
    selector: str, children: str, expected: dict[str, float]
) -> None:
    body = f"(filter (cumulative-return {{:window 3}}) {selector} {children})"
    assert_weights(weights_of(body, FILTER_SERIES), expected)


def test_filter_select_top_zero_is_rejected_before_evaluation() -> None:
    with pytest.raises(DslError):
        parse_symphony(
            f'(defsymphony "t" {{}} (filter (cumulative-return {{:window 3}}) (select-top 0) '
            f"{CHILDREN_ABC}))",
            "t.clj",
        )


def test_filter_by_current_price_ranks_last_closes() -> None:
    body = f"(filter (current-price) (select-top 1) {CHILDREN_ABC})"
    assert_weights(weights_of(body, FILTER_SERIES), {"A": 1.0})


def test_inverse_volatility_weights_assets_by_inverse_population_sigma() -> None:
    closes = {"A": [100.0, 101.0, 100.0, 101.0], "B": [100.0, 102.0, 100.0, 102.0]}
    body = '(weight-inverse-volatility 3 [(asset "A") (asset "B")])'
    assert_weights(weights_of(body, closes), {"A": 0.6655792255244186, "B": 0.3344207744755814})


def test_inverse_volatility_counts_a_repeated_ticker_once() -> None:
    closes = {"A": [100.0, 101.0, 100.0, 101.0], "B": [100.0, 102.0, 100.0, 102.0]}
    body = '(weight-inverse-volatility 3 [(asset "A") (asset "B") (asset "A")])'
    assert_weights(weights_of(body, closes), {"A": 0.6655792255244186, "B": 0.3344207744755814})


def test_inverse_volatility_of_groups_uses_their_holdings_weighted_sigma() -> None:
    closes = {
        "A": [100.0, 101.0, 100.0, 101.0],
        "B": [100.0, 102.0, 100.0, 102.0],
        "C": [100.0, 104.0, 100.0, 104.0],
    }
    body = (
        '(weight-inverse-volatility 3 [(group "g1" [(asset "A")]) '
        '(group "g2" [(weight-equal [(asset "B") (asset "C")])])])'
    )
    sigma = {"A": 0.9381416700890837, "B": 1.8671316313684028}
    [evaluation] = evaluate(body, closes)
    assert evaluation.weights is not None and evaluation.trace is not None
    [entry] = [e for e in evaluation.trace.entries if e["node"] == "weight-inverse-volatility"]
    sigma_g2 = entry["children"][1]["sigma"]
    assert sigma_g2 > sigma["B"]
    weight_g1 = (1 / sigma["A"]) / (1 / sigma["A"] + 1 / sigma_g2)
    assert_weights(
        evaluation.weights,
        {"A": weight_g1, "B": (1 - weight_g1) / 2, "C": (1 - weight_g1) / 2},
    )


def test_inverse_volatility_with_mixed_children_weights_every_held_ticker() -> None:
    closes = {"A": [100.0, 101.0, 100.0, 101.0], "B": [100.0, 102.0, 100.0, 102.0]}
    body = (
        '(weight-inverse-volatility 3 [(asset "A") '
        '(group "g" [(weight-specified 0.9 (asset "B") 0.1 (asset "A"))])])'
    )
    assert_weights(weights_of(body, closes), {"A": 0.6655792255244186, "B": 0.3344207744755814})


def test_inverse_volatility_fails_on_zero_sigma_naming_the_ticker() -> None:
    closes = {"A": [100.0, 101.0, 100.0, 101.0], "B": [100.0] * 4}
    [evaluation] = evaluate('(weight-inverse-volatility 3 [(asset "A") (asset "B")])', closes)
    assert isinstance(evaluation.error, DslEvaluationError)
    assert evaluation.error.symbol == "B"
    assert str(evaluation.error).startswith("t.clj:2:2: weight-inverse-volatility 3: B")


GROUP_SERIES = {
    "A": [100.0, 110.0, 121.0, 133.1],
    "B": [100.0, 90.0, 99.0, 89.1],
    "C": [100.0, 105.0, 112.0, 120.0],
}


def test_group_candidate_is_scored_on_its_synthetic_return_series() -> None:
    body = (
        "(filter (cumulative-return {:window 3}) (select-top 1) "
        '[(group "G" [(weight-equal [(asset "A") (asset "B")])]) (asset "C")])'
    )
    [evaluation] = evaluate(body, GROUP_SERIES)
    assert evaluation.weights == {"C": 1.0}
    assert evaluation.trace is not None
    [entry] = [e for e in evaluation.trace.entries if e["node"] == "filter"]
    scores = {c["candidate"]: c["score"] for c in entry["candidates"]}
    assert scores['group "G"'] == pytest.approx(10.0, abs=1e-9)
    assert scores["C"] == pytest.approx(20.0, abs=1e-9)
    assert entry["selected"] == ["C"]


def test_group_candidate_needs_a_full_window_of_returns() -> None:
    body = (
        "(filter (cumulative-return {:window 5}) (select-top 1) "
        '[(group "G" [(asset "A")]) (asset "C")])'
    )
    [evaluation] = evaluate(body, GROUP_SERIES)
    assert isinstance(evaluation.error, DslEvaluationError)
    assert 'group "G" cannot be scored' in evaluation.error.message


def test_tied_group_candidates_go_to_the_first_held_ticker_then_source_order() -> None:
    body = (
        "(filter (cumulative-return {:window 2}) (select-top 1) "
        '[(group "second" [(asset "B")]) (group "first" [(asset "A")]) '
        '(group "same" [(asset "A")])])'
    )
    closes = {"A": [100.0, 101.0, 102.0], "B": [50.0, 50.5, 51.0]}
    [evaluation] = evaluate(body, closes)
    assert evaluation.weights == {"A": 1.0}
    assert evaluation.trace is not None
    [entry] = [e for e in evaluation.trace.entries if e["node"] == "filter"]
    assert entry["selected"] == ['group "first"']


SPY_TQQQ_BIL = {
    "SPY": P,
    "TQQQ": [50.0, 49.0, 51.0, 50.0, 52.0, 51.0, 53.0, 52.0],
    "BIL": [100.0] * 8,
}


def end_to_end_body(operator: str) -> str:
    return f"""(weight-equal
  [(if ({operator} (current-price "SPY") (moving-average-price "SPY" {{:window 3}}))
     [(weight-specified 0.6 (asset "TQQQ") 0.4 (asset "BIL"))]
     [(asset "BIL")])
   (filter (rsi {{:window 3}}) (select-bottom 1) [(asset "TQQQ") (asset "SPY")])])"""


def test_end_to_end_strict_comparison_takes_the_else_branch() -> None:
    assert_weights(weights_of(end_to_end_body(">"), SPY_TQQQ_BIL), {"BIL": 0.5, "TQQQ": 0.5})


def test_end_to_end_inclusive_comparison_takes_the_then_branch() -> None:
    assert_weights(weights_of(end_to_end_body(">="), SPY_TQQQ_BIL), {"BIL": 0.2, "TQQQ": 0.8})


def test_trace_records_the_taken_branch_with_operand_values_and_indicator_reads() -> None:
    [evaluation] = evaluate(end_to_end_body(">"), SPY_TQQQ_BIL)
    assert evaluation.trace is not None
    entries = evaluation.trace.entries
    [decision] = [e for e in entries if e["node"] == "if"]
    assert decision["branch"] == "else"
    assert decision["left"] == 107.0 and decision["right"] == 107.0
    assert decision["span"] == "3:4"
    reads = [e for e in entries if e["node"] == "indicator"]
    assert [(r["ticker"], r["indicator"], r["window"], r["bars_used"]) for r in reads] == [
        ("SPY", "current-price", None, 1),
        ("SPY", "moving-average-price", 3, 3),
        ("SPY", "rsi", 3, 8),
        ("TQQQ", "rsi", 3, 8),
    ]
    assert {r["as_of"] for r in reads} == {"2024-01-08"}
    assert reads[3]["value"] == pytest.approx(55.86279313965698, abs=1e-9)
    [ranking] = [e for e in entries if e["node"] == "filter"]
    assert ranking["selected"] == ["TQQQ"]
    scores = {c["candidate"]: c["score"] for c in ranking["candidates"]}
    assert scores["SPY"] == pytest.approx(70.63469675599436, abs=1e-9)
    assert scores["TQQQ"] == pytest.approx(55.86279313965698, abs=1e-9)
    compact = evaluation.trace.compact()
    assert compact["truncated"] == 0
    assert [d.get("branch") for d in compact["path"] if "if" in d] == ["else"]


def test_the_walk_without_indicators_is_the_full_trace_less_its_indicator_reads() -> None:
    [evaluation] = evaluate(end_to_end_body(">"), SPY_TQQQ_BIL)
    assert evaluation.trace is not None
    decisions = evaluation.trace.walk(False)
    assert [e["node"] for e in decisions] == ["if", "filter"]
    assert decisions == tuple(e for e in evaluation.trace.entries if e["node"] != "indicator")


def test_compact_trace_is_capped_and_says_how_much_was_cut() -> None:
    [evaluation] = evaluate(end_to_end_body(">"), SPY_TQQQ_BIL)
    assert evaluation.trace is not None
    compact = evaluation.trace.compact(limit_bytes=150)
    assert compact["truncated"] >= 1
    assert len(compact["path"]) < 2


def test_insufficient_history_names_file_position_symbol_and_date() -> None:
    [evaluation] = evaluate(
        '(if (> (rsi "SPY" {:window 14}) 50) (asset "A") (asset "B"))', {"SPY": P, "A": P, "B": P}
    )
    error = evaluation.error
    assert isinstance(error, DslEvaluationError)
    assert error.symbol == "SPY" and error.as_of == date(2024, 1, 8)
    assert str(error) == (
        't.clj:2:9: (rsi "SPY" {:window 14}): insufficient history: needs 15 closes, '
        "SPY has 8 up to 2024-01-08; load older bars or choose a later as-of date"
    )
    assert evaluation.weights is None


def test_missing_symbol_is_an_evaluation_error_naming_it() -> None:
    [evaluation] = evaluate(
        '(if (> (rsi "QQQ" {:window 2}) 50) (asset "A") (asset "B"))', {"A": P, "B": P}
    )
    assert isinstance(evaluation.error, DslEvaluationError)
    assert evaluation.error.symbol == "QQQ"
    assert "QQQ has no bars" in evaluation.error.message


def test_missing_close_fails_only_the_dates_after_it() -> None:
    closes = {"SPY": [100.0, 101.0, 102.0, float("nan"), 104.0], "A": [1.0] * 5, "B": [1.0] * 5}
    days = sessions(5)
    results = evaluate(
        '(if (> (current-price "SPY") 100.5) (asset "A") (asset "B"))', closes, [days[1], days[4]]
    )
    assert results[0].weights == {"A": 1.0}
    assert isinstance(results[1].error, DslEvaluationError)
    assert "no valid close on 2024-01-04" in results[1].error.message


def test_untaken_branch_data_problems_do_not_fail_the_date() -> None:
    closes = {"SPY": [100.0, 101.0, 99.0, 98.0, 97.0], "A": [1.0] * 5, "B": [1.0] * 5}
    body = (
        '(if (> (current-price "SPY") 99.5) '
        '(if (> (rsi "A" {:window 4}) 1) (asset "A") (asset "B")) (asset "B"))'
    )
    days = sessions(5)
    results = evaluate(body, closes, [days[1], days[4]])
    assert isinstance(results[0].error, DslEvaluationError)
    assert results[0].error.symbol == "A"
    assert results[1].weights == {"B": 1.0}


def test_as_of_before_the_first_bar_is_an_error_and_a_weekend_uses_the_last_session() -> None:
    results = evaluate('(asset "A")', {"A": [1.0] * 3}, [date(2023, 12, 31), date(2024, 1, 9)])
    assert isinstance(results[0].error, DslEvaluationError)
    assert "no bars on or before 2023-12-31" in results[0].error.message
    assert results[1].weights == {"A": 1.0}
    assert results[1].as_of == date(2024, 1, 9)


def test_results_keep_the_requested_order_and_duplicates() -> None:
    days = sessions(8)
    results = evaluate(end_to_end_body(">="), SPY_TQQQ_BIL, [days[7], days[3], days[7]])
    assert [r.as_of for r in results] == [days[7], days[3], days[7]]
    assert results[0].weights == results[2].weights
    assert all(r.strategy == "t.clj" for r in results)


def test_a_subtree_shared_by_two_parents_is_evaluated_consistently() -> None:
    days = sessions(12)
    closes = {
        "A": [100.0, 103.0, 101.0, 104.0, 102.0, 107.0, 103.0, 108.0, 104.0, 109.0, 105.0, 111.0],
        "B": [50.0, 51.0, 50.5, 51.5, 51.0, 52.0, 51.5, 52.5, 52.0, 53.0, 52.5, 53.5],
        "C": [80.0, 80.5, 81.0, 81.5, 82.0, 82.5, 83.0, 83.5, 84.0, 84.5, 85.0, 85.5],
    }
    bars = BarSnapshot.from_closes(days, closes)
    symphony = parse_symphony(
        '(defsymphony "t" {} (filter (cumulative-return {:window 3}) (select-top 1) '
        '[(group "g" [(if (> (rsi "A" {:window 2}) 50) (asset "A") (asset "B"))]) '
        '(asset "C")]))',
        "t.clj",
    )
    ranking = symphony.body
    assert isinstance(ranking, Filter)
    group = ranking.children[0]
    shared = replace(
        symphony, body=WeightEqual(children=(ranking, group, ranking), span=ranking.span)
    )
    combined = evaluate_symphony(shared, bars, days[5:])
    alone = evaluate_symphony(symphony, bars, days[5:])
    group_alone = evaluate_symphony(replace(symphony, body=group), bars, days[5:])
    for result, filtered, held in zip(combined, alone, group_alone, strict=True):
        assert result.weights is not None
        assert filtered.weights is not None and held.weights is not None
        expected: dict[str, float] = {}
        for share, weights in ((2 / 3, filtered.weights), (1 / 3, held.weights)):
            for ticker, weight in weights.items():
                expected[ticker] = expected.get(ticker, 0.0) + share * weight
        assert_weights(result.weights, expected)


def test_failure_inside_a_scoring_window_names_the_session_where_it_happened() -> None:
    closes = {"A": [100.0, 101.0, 103.0, 102.0, 104.0], "C": [80.0, 81.0, 80.5, 82.0, 83.0]}
    body = (
        "(filter (cumulative-return {:window 3}) (select-top 1) "
        '[(group "g" [(if (> (rsi "A" {:window 2}) 50) (asset "A") (asset "C"))]) (asset "C")])'
    )
    [evaluation] = evaluate(body, closes)
    error = evaluation.error
    assert isinstance(error, DslEvaluationError)
    assert error.symbol == "A" and error.as_of == date(2024, 1, 5)
    assert error.message == (
        'filter at 2:2: candidate group "g" cannot be scored over the 3 sessions before '
        '2024-01-05: (rsi "A" {:window 2}): insufficient history: needs 3 closes, A has 2 up '
        "to 2024-01-02; load older bars or choose a later as-of date"
    )


def test_missing_close_of_a_held_ticker_fails_the_group_score_naming_the_defect() -> None:
    closes = {
        "A": [100.0, 101.0, 102.0, 103.0, 104.0, 105.0, 106.0],
        "B": [50.0, 51.0, float("nan"), 52.0, 53.0, 54.0, 55.0],
        "C": [80.0, 81.0, 82.0, 83.0, 84.0, 85.0, 86.0],
    }
    body = (
        "(filter (cumulative-return {:window 2}) (select-top 1) "
        '[(group "g" [(weight-equal [(asset "A") (asset "B")])]) (asset "C")])'
    )
    days = sessions(7)
    together = evaluate(body, closes, [days[1], days[6]])
    alone = evaluate(body, closes, [days[6]])
    error = together[1].error
    assert isinstance(error, DslEvaluationError)
    assert str(error) == str(alone[0].error)
    assert error.symbol == "B"
    assert error.message.endswith(
        "cannot compute its return of 2024-01-06: B has no valid close on 2024-01-03 (missing or "
        "not positive) and no return can be computed from then on; repair the bar data or "
        "choose a later as-of date"
    )
    assert isinstance(together[0].error, DslEvaluationError)
    assert "needs 2 sessions before 2024-01-02" in together[0].error.message
