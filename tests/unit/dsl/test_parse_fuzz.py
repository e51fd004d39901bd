"""Malformed input never escapes as anything but a positioned `DslError`
(docs/strategy-language.md, Errors).

Truncated and corrupted versions of every bundled file, and random S-expressions built from the
language's own operators, go through the reader and the compiler; any other exception is a bug.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.strategy.dsl.ast import Symphony
from services.strategy.dsl.compiler import KNOWN_OPERATORS, TICKER_PATTERN, parse_symphony
from services.strategy.dsl.errors import DslError

SYMPHONIES = Path(__file__).parents[3] / "services" / "strategy" / "symphonies"
BUNDLED = sorted(SYMPHONIES.glob("*.clj"))
LARGE_BYTES = 100_000
SMALL = [path for path in BUNDLED if path.stat().st_size < LARGE_BYTES]
LARGE = [path for path in BUNDLED if path.stat().st_size >= LARGE_BYTES]
# The 2.2 MB file is parsed only up to a little past the corruption point, so an example costs
# milliseconds on average instead of a whole-file parse.
PREFIX_PAST_CORRUPTION = 4096
INSERTABLE = [*'()[]{}"\\;:,.#-_ \n\t0123456789aZ>=é\u00a0\U0001f600', "\r\n", "nil"]
BRACKETS = re.compile(r"[()\[\]{}]")


@cache
def source_of(path: Path) -> str:
    return path.read_text("utf-8")


@cache
def bracket_offsets(path: Path) -> tuple[int, ...]:
    return tuple(match.start() for match in BRACKETS.finditer(source_of(path)))


@st.composite
def corrupted(draw: st.DrawFn, path: Path) -> tuple[str, int]:
    """A damaged copy of the file and the offset of the damage."""
    text = source_of(path)
    kind = draw(st.sampled_from(["truncate", "delete", "insert", "replace", "swap-bracket"]))
    if kind == "swap-bracket":
        offsets = bracket_offsets(path)
        offset = offsets[draw(st.integers(0, len(offsets) - 1))]
        replacement = draw(st.sampled_from([b for b in "()[]{}" if b != text[offset]]))
        return text[:offset] + replacement + text[offset + 1 :], offset
    offset = draw(st.integers(0, len(text) - 1))
    if kind == "truncate":
        return text[:offset], offset
    if kind == "delete":
        return text[:offset] + text[offset + 1 :], offset
    insertion = draw(st.sampled_from(INSERTABLE))
    if kind == "insert":
        return text[:offset] + insertion + text[offset:], offset
    return text[:offset] + insertion + text[offset + 1 :], offset


def assert_parses_or_fails_with_a_position(source: str, file_name: str) -> Symphony | None:
    try:
        return parse_symphony(source, file_name)
    except DslError as error:
        assert error.file == file_name
        assert 1 <= error.line <= source.count("\n") + 2
        assert error.column >= 1
        assert str(error).startswith(f"{file_name}:{error.line}:{error.column}: ")
        return None


@pytest.mark.parametrize("path", SMALL, ids=[path.name for path in SMALL])
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_corrupted_small_files_fail_only_with_positioned_dsl_errors(
    path: Path, data: st.DataObject
) -> None:
    source, _ = data.draw(corrupted(path))
    assert_parses_or_fails_with_a_position(source, path.name)


@pytest.mark.parametrize("path", LARGE, ids=[path.name for path in LARGE])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), cut=st.booleans())
def test_corrupted_large_files_fail_only_with_positioned_dsl_errors(
    path: Path, data: st.DataObject, cut: bool
) -> None:
    source, offset = data.draw(corrupted(path))
    if cut:
        source = source[: offset + PREFIX_PAST_CORRUPTION]
    assert_parses_or_fails_with_a_position(source, path.name)


ATOMS = st.sampled_from(
    [
        '"SPY"',
        '"bf-b"',
        '"not a ticker"',
        '"EQUITIES::QQQ//USD"',
        "10",
        "-1",
        "0",
        "2.5",
        "1" * 30,
        ":window",
        ":daily",
        "nil",
        "true",
        "false",
        "SPY",
        "{:window 3}",
        '{"window" 2}',
        "{:window 0}",
        "{}",
        "[]",
        "()",
    ]
)
HEADS = st.sampled_from([*sorted(KNOWN_OPERATORS), "cond", "weight-eqaul", "and"])


def s_expressions() -> st.SearchStrategy[str]:
    def extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        arguments = st.lists(children, max_size=4)
        return st.one_of(
            st.tuples(HEADS, arguments).map(lambda t: f"({' '.join([t[0], *t[1]])})"),
            arguments.map(lambda items: f"[{' '.join(items)}]"),
            arguments.map(lambda items: f"{{{' '.join(items)}}}"),
        )

    return st.recursive(ATOMS, extend, max_leaves=25)


def mostly(valid: list[str], invalid: list[str]) -> st.SearchStrategy[str]:
    """Valid values most of the time, so that errors also arise deep inside large trees."""
    return st.one_of(st.sampled_from(valid), st.sampled_from(valid), st.sampled_from(invalid))


TICKERS = mostly(['"SPY"', '"tqqq"', '"BRK.B"', '"EQUITIES::QQQ//USD"'], ['"BAD TICKER"', "SPY"])
WINDOWS = mostly(["{:window 2}", '{"window" 14}', "{:window 200}"], ["{}", "10", "{:window 0}"])
INDICATOR_NAMES = sorted(KNOWN_OPERATORS & {"rsi", "max-drawdown", "stdev-return"})
OPERANDS = st.one_of(
    mostly(["70", "-5.5", "0"], ['"70"', "nil"]),
    st.tuples(st.sampled_from(INDICATOR_NAMES), TICKERS, WINDOWS).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})"
    ),
    TICKERS.map(lambda ticker: f"(current-price {ticker})"),
)
CONDITIONS = st.one_of(
    st.tuples(mostly([">", "<", ">=", "<="], ["=", "and", "rsi"]), OPERANDS, OPERANDS).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})"
    ),
    mostly(["true", "false"], ["nil", '"false"']),
)
RANKS = mostly(
    ["(rsi {:window 10})", "(cumulative-return {:window 3})", "(current-price)"],
    ['(rsi "SPY" {:window 10})', "(rsi 10)", "(select-top 1)"],
)
SELECTORS = mostly(["(select-top 1)", "(select-bottom 2)"], ["(select-top 0)", "(select-top)"])


def blocks() -> st.SearchStrategy[str]:
    assets = st.tuples(TICKERS, mostly(["", ' "name"', " nil"], [" 3"])).map(
        lambda t: f"(asset {t[0]}{t[1]})"
    )

    def extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        vectors = st.lists(children, min_size=1, max_size=4).map(lambda xs: f"[{' '.join(xs)}]")
        weighted = st.lists(
            st.tuples(mostly(["0.5", "60", "0", "1"], ["-1", "x"]), children),
            min_size=1,
            max_size=3,
        ).map(lambda pairs: " ".join(f"{w} {b}" for w, b in pairs))
        return st.one_of(
            vectors,
            vectors.map(lambda v: f'(group "g" {v})'),
            vectors.map(lambda v: f"(weight-equal {v})"),
            weighted.map(lambda pairs: f"(weight-specified {pairs})"),
            st.tuples(mostly(["2", "50"], ["1", "{:window 5}"]), vectors).map(
                lambda t: f"(weight-inverse-volatility {t[0]} {t[1]})"
            ),
            st.tuples(RANKS, SELECTORS, vectors).map(lambda t: f"(filter {t[0]} {t[1]} {t[2]})"),
            st.tuples(CONDITIONS, children, children, st.booleans()).map(
                lambda t: f"(if {t[0]} {t[1]} {t[2]})" if t[3] else f"(if {t[0]} {t[1]})"
            ),
        )

    return st.recursive(assets, extend, max_leaves=30)


@settings(max_examples=100, deadline=None)
@given(body=s_expressions(), options=st.sampled_from(["{}", '{:asset-class "EQUITIES"}', "[]"]))
def test_random_operator_trees_compile_or_fail_with_positioned_dsl_errors(
    body: str, options: str
) -> None:
    source = f'(defsymphony "fuzz" {options}\n {body})'
    assert_parses_or_fails_with_a_position(source, "fuzz.clj")


@settings(max_examples=300, deadline=None)
@given(body=blocks())
def test_grammar_shaped_trees_compile_or_fail_with_positioned_dsl_errors(body: str) -> None:
    source = f'(defsymphony "fuzz" {{:rebalance-frequency :daily}}\n {body})'
    symphony = assert_parses_or_fails_with_a_position(source, "fuzz.clj")
    if symphony is not None:
        assert symphony.tickers
        assert all(TICKER_PATTERN.fullmatch(ticker) for ticker in symphony.tickers)


def test_deepest_allowed_nesting_compiles_without_exhausting_the_stack() -> None:
    depth = 248
    body = "[" * depth + '(asset "A")' + "]" * depth
    symphony = parse_symphony(f'(defsymphony "deep" {{}} {body})', "deep.clj")
    assert symphony.tickers == {"A"}
