"""Properties of the evaluator on random well-formed trees (hypothesis, bounded).

Trees are written as source text and compiled, so they are exactly the trees the parser can
produce. Prices are a seeded random walk over a few tickers; one ticker has a late first bar and
one may be flat, so short history and zero volatility (documented errors) occur too.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.strategy.dsl.compiler import parse_symphony
from services.strategy.dsl.errors import DslEvaluationError
from services.strategy.dsl.evaluator import Evaluation, evaluate_symphony
from shared.marketdata.bars import BarSnapshot

SESSIONS = 40
TICKERS = ("AAA", "BBB", "CCC", "DDD", "LATE")
DAYS = [date(2024, 1, 1) + timedelta(days=i) for i in range(SESSIONS)]
AS_OF = DAYS[6:]

tickers = st.sampled_from(TICKERS)
windows = st.integers(min_value=2, max_value=6)


@st.composite
def conditions(draw: st.DrawFn) -> str:
    indicator = draw(
        st.sampled_from(
            [
                "rsi",
                "moving-average-price",
                "exponential-moving-average-price",
                "cumulative-return",
                "moving-average-return",
                "stdev-return",
                "max-drawdown",
                "current-price",
            ]
        )
    )
    operator = draw(st.sampled_from([">", "<", ">=", "<="]))
    ticker = draw(tickers)
    if indicator == "current-price":
        left = f'(current-price "{ticker}")'
    else:
        left = f'({indicator} "{ticker}" {{:window {draw(windows)}}})'
    right = draw(st.sampled_from(["0", "1", "50", "100", f'(current-price "{draw(tickers)}")']))
    return f"({operator} {left} {right})"


def vector(children: list[str]) -> str:
    return "[" + " ".join(children) + "]"


KINDS = (
    "asset",
    "weight-equal",
    "group",
    "vector",
    "if",
    "weight-specified",
    "filter",
    "weight-inverse-volatility",
)


@st.composite
def blocks(draw: st.DrawFn, depth: int = 3) -> str:
    """A random block at most `depth` levels deep (written out, not `st.recursive`, so that
    hypothesis reports the strategy as `blocks()`)."""
    kind = "asset" if depth == 0 else draw(st.sampled_from(KINDS))
    if kind == "asset":
        return f'(asset "{draw(tickers)}")'

    def children() -> list[str]:
        return [draw(blocks(depth - 1)) for _ in range(draw(st.integers(1, 3)))]

    if kind == "weight-equal":
        return f"(weight-equal {vector(children())})"
    if kind == "group":
        return f'(group "g" {vector(children())})'
    if kind == "vector":
        return vector(children())
    if kind == "if":
        then, otherwise = draw(blocks(depth - 1)), draw(blocks(depth - 1))
        return f"(if {draw(conditions())} {then} {otherwise})"
    if kind == "weight-specified":
        weights = draw(st.lists(st.integers(0, 4), min_size=1, max_size=3).filter(any))
        pairs = [f"{weight} {draw(blocks(depth - 1))}" for weight in weights]
        return f"(weight-specified {' '.join(pairs)})"
    if kind == "filter":
        rank = draw(
            st.sampled_from(["cumulative-return", "moving-average-return", "stdev-return", "rsi"])
        )
        selector = draw(st.sampled_from(["select-top", "select-bottom"]))
        return (
            f"(filter ({rank} {{:window {draw(windows)}}}) ({selector} {draw(st.integers(1, 3))}) "
            f"{vector(children())})"
        )
    return f"(weight-inverse-volatility {draw(windows)} {vector(children())})"


def market(seed: int, flat_ddd: bool) -> BarSnapshot:
    rng = np.random.default_rng(seed)
    closes: dict[str, list[float]] = {}
    for ticker in TICKERS:
        steps = rng.normal(0.0, 0.02, SESSIONS)
        closes[ticker] = list(100.0 * np.exp(np.cumsum(steps)))
    if flat_ddd:
        closes["DDD"] = [50.0] * SESSIONS
    closes["LATE"][:12] = [float("nan")] * 12
    return BarSnapshot.from_closes(DAYS, closes)


def outcome(evaluation: Evaluation) -> tuple[dict[str, float] | None, str | None]:
    return evaluation.weights, None if evaluation.error is None else str(evaluation.error)


PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTY_SETTINGS
@given(body=blocks(), seed=st.integers(0, 2**16), flat_ddd=st.booleans())
def test_weights_are_positive_and_sum_to_one_or_the_error_is_documented(
    body: str, seed: int, flat_ddd: bool
) -> None:
    symphony = parse_symphony(f'(defsymphony "p" {{}} {body})', "p.clj")
    for evaluation in evaluate_symphony(symphony, market(seed, flat_ddd), AS_OF):
        if evaluation.error is not None:
            assert isinstance(evaluation.error, DslEvaluationError)
            assert evaluation.error.file == "p.clj" and evaluation.error.as_of == evaluation.as_of
            assert evaluation.weights is None
            continue
        assert evaluation.weights is not None
        assert list(evaluation.weights) == sorted(evaluation.weights)
        assert all(0.0 < w <= 1.0 + 1e-12 for w in evaluation.weights.values())
        assert abs(sum(evaluation.weights.values()) - 1.0) <= 1e-9
        assert set(evaluation.weights) <= symphony.tickers


@PROPERTY_SETTINGS
@given(body=blocks(), seed=st.integers(0, 2**16), flat_ddd=st.booleans())
def test_evaluating_many_dates_at_once_equals_each_date_alone_and_is_deterministic(
    body: str, seed: int, flat_ddd: bool
) -> None:
    symphony = parse_symphony(f'(defsymphony "p" {{}} {body})', "p.clj")
    bars = market(seed, flat_ddd)
    together = [outcome(e) for e in evaluate_symphony(symphony, bars, AS_OF)]
    again = [outcome(e) for e in evaluate_symphony(symphony, bars, AS_OF)]
    assert together == again
    for day, expected in zip(AS_OF[::5], together[::5], strict=True):
        [alone] = evaluate_symphony(symphony, bars, [day])
        weights, error = outcome(alone)
        assert error == expected[1]
        if weights is None or expected[0] is None:
            assert weights == expected[0]
        else:
            assert list(weights) == list(expected[0])
            assert all(abs(weights[t] - expected[0][t]) <= 1e-12 for t in weights)
