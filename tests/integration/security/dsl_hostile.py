"""Hostile strategy files and market data for the DSL (issue "Reliability and security", item
5a), shared by the bounded run in `make test` and the bigger one under `make chaos`.

The parser side of a damaged file is covered by `tests/unit/dsl/test_parse_fuzz.py`, and the
evaluator on sane trees by `tests/unit/dsl/test_allocation_properties.py`; here the evaluator
gets what those leave out: windows of 0, 1, negative or far past the history; tickers the bars
do not have; one-session histories, gaps, flat, tiny and huge prices; as-of dates before the
first bar; and bundled files with their windows and tickers mutated, parsed and then evaluated.
The contract: a result with weights, or a `DslError` with its file and a 1-based position —
never any other exception. (A plain `asset` leaf reads no bars, dsl.md §2.4, so a ticker the bars
lack may be allocated; the service's pre-flight check refuses it, not the evaluator.)"""

from __future__ import annotations

import re
from datetime import date, timedelta
from functools import cache
from pathlib import Path

from hypothesis import strategies as st

from services.strategy.dsl.compiler import parse_symphony
from services.strategy.dsl.errors import DslError
from services.strategy.dsl.evaluator import evaluate_symphony
from services.strategy.dsl.indicators import INDICATORS
from shared.marketdata.bars import BarSnapshot

FIRST_DAY = date(2024, 1, 1)
HELD = ("AAA", "BBB", "CCC")
MISSING = "ZZZ"
SYMPHONIES = Path(__file__).parents[3] / "services" / "strategy" / "symphonies"
SMALL_BUNDLED = sorted(p for p in SYMPHONIES.glob("*.clj") if p.stat().st_size < 100_000)
WINDOW = re.compile(r"\{:window (\d+)\}")
TICKER = re.compile(r'\(asset "([^"]+)"')

tickers = st.sampled_from([*HELD, HELD[0], HELD[1], MISSING])
hostile_windows = st.sampled_from(["0", "1", "2", "3", "14", "200", "99999", "-3"])
WINDOWED = tuple(sorted(name for name, spec in INDICATORS.items() if spec.windowed))


@st.composite
def conditions(draw: st.DrawFn) -> str:
    operator = draw(st.sampled_from([">", "<", ">=", "<="]))

    def operand() -> str:
        kind = draw(st.sampled_from(["indicator", "price", "number"]))
        if kind == "number":
            return draw(st.sampled_from(["0", "-1", "50", "1e308", "0.000001"]))
        if kind == "price":
            return f'(current-price "{draw(tickers)}")'
        indicator = draw(st.sampled_from(WINDOWED))
        return f'({indicator} "{draw(tickers)}" {{:window {draw(hostile_windows)}}})'

    return f"({operator} {operand()} {operand()})"


@st.composite
def blocks(draw: st.DrawFn, depth: int = 3) -> str:
    kind = (
        "asset"
        if depth == 0
        else draw(
            st.sampled_from(["asset", "weight-equal", "if", "specified", "filter", "inverse-vol"])
        )
    )
    if kind == "asset":
        return f'(asset "{draw(tickers)}")'
    children = "[" + " ".join(draw(blocks(depth - 1)) for _ in range(draw(st.integers(1, 3)))) + "]"
    if kind == "weight-equal":
        return f"(weight-equal {children})"
    if kind == "if":
        return f"(if {draw(conditions())} {draw(blocks(depth - 1))} {draw(blocks(depth - 1))})"
    if kind == "specified":
        weight = draw(st.sampled_from(["1", "0.5", "100", "0.0000001"]))
        return f"(weight-specified {weight} {draw(blocks(depth - 1))})"
    if kind == "filter":
        rank = draw(st.sampled_from([*WINDOWED, "current-price"]))
        window = "" if rank == "current-price" else f" {{:window {draw(hostile_windows)}}}"
        selector = draw(st.sampled_from(["select-top", "select-bottom"]))
        count = draw(st.sampled_from(["1", "2", "50"]))
        return f"(filter ({rank}{window}) ({selector} {count}) {children})"
    return f"(weight-inverse-volatility {draw(hostile_windows)} {children})"


@st.composite
def hostile_bars(draw: st.DrawFn, symbols: tuple[str, ...] = HELD) -> BarSnapshot:
    """Few sessions, gaps, leading missing bars, flat, tiny and huge prices."""
    count = draw(st.integers(1, 30))
    days = [FIRST_DAY + timedelta(days=i) for i in range(count)]
    closes: dict[str, list[float]] = {}
    for symbol in symbols:
        shape = draw(st.sampled_from(["walk", "flat", "tiny", "huge", "gappy", "late"]))
        walk = draw(st.lists(st.floats(0.5, 2.0, allow_nan=False), min_size=count, max_size=count))
        prices = [100.0]
        for step in walk[1:]:
            prices.append(prices[-1] * step)
        if shape == "flat":
            prices = [42.0] * count
        elif shape == "tiny":
            prices = [p * 1e-7 for p in prices]
        elif shape == "huge":
            prices = [p * 1e12 for p in prices]
        elif shape == "gappy":
            prices = [float("nan") if i % 3 == 1 else p for i, p in enumerate(prices)]
        elif shape == "late":
            cut = draw(st.integers(0, count))
            prices = [float("nan")] * cut + prices[cut:]
        closes[symbol] = prices
    return BarSnapshot.from_closes(days, closes)


def as_of_dates(bars: BarSnapshot) -> list[date]:
    """Before the first bar, on the first, in the middle, on the last and after it."""
    count = len(bars.sessions)
    return [
        FIRST_DAY - timedelta(days=3),
        FIRST_DAY,
        FIRST_DAY + timedelta(days=count // 2),
        FIRST_DAY + timedelta(days=count - 1),
        FIRST_DAY + timedelta(days=count + 5),
    ]


def check_evaluates_or_fails_with_a_position(
    source: str, file_name: str, bars: BarSnapshot
) -> None:
    """The whole contract: parse, evaluate at hostile dates, and only positioned DSL errors."""
    try:
        symphony = parse_symphony(source, file_name)
    except DslError as error:
        assert_positioned(error, file_name)
        return
    for evaluation in evaluate_symphony(symphony, bars, as_of_dates(bars)):
        if evaluation.error is not None:
            assert isinstance(evaluation.error, DslError)
            assert_positioned(evaluation.error, file_name)
            assert evaluation.weights is None
            continue
        assert evaluation.weights is not None
        assert all(0.0 < weight <= 1.0 + 1e-9 for weight in evaluation.weights.values())
        assert abs(sum(evaluation.weights.values()) - 1.0) <= 1e-6
        assert set(evaluation.weights) <= symphony.tickers


def assert_positioned(error: DslError, file_name: str) -> None:
    assert error.file == file_name
    assert error.line >= 1 and error.column >= 1
    assert str(error).startswith(f"{file_name}:{error.line}:{error.column}: ")


@cache
def bundled_source(path: Path) -> str:
    return path.read_text("utf-8")


@st.composite
def mutated_bundled(draw: st.DrawFn) -> tuple[str, str, tuple[str, ...]]:
    """A small bundled file with some windows set to hostile values and some tickers renamed to
    one the bars do not have; returns (source, file name, tickers the bars should hold)."""
    path = draw(st.sampled_from(SMALL_BUNDLED))
    source = bundled_source(path)

    def window(match: re.Match[str]) -> str:
        if draw(st.integers(0, 3)) == 0:
            return f"{{:window {draw(hostile_windows)}}}"
        return match.group(0)

    source = WINDOW.sub(window, source)
    held = sorted(set(TICKER.findall(source)))
    renamed = draw(st.sets(st.sampled_from(held), max_size=2)) if held else set()
    for ticker in renamed:
        source = source.replace(f'"{ticker}"', f'"{MISSING}"')
    return source, path.name, tuple(t for t in held if t not in renamed)
