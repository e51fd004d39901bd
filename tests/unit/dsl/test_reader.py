"""The reader: tokens, literals, maps, brackets, limits and error positions
(docs/strategy-language.md, Tokens / Reader grammar / Reader error examples)."""

from __future__ import annotations

import pickle
from datetime import date
from decimal import Decimal
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.strategy.dsl.ast import Span
from services.strategy.dsl.errors import (
    DslError,
    DslEvaluationError,
    DslStaticError,
    DslSyntaxError,
)
from services.strategy.dsl.reader import (
    MAX_DEPTH,
    MAX_SOURCE_BYTES,
    Bool,
    Form,
    Keyword,
    List,
    Map,
    Nil,
    Number,
    String,
    Symbol,
    Vector,
    read_form,
)


def read(source: str) -> Form:
    return read_form(source, "t.clj")


def syntax_error(source: str) -> DslSyntaxError:
    with pytest.raises(DslSyntaxError) as caught:
        read(source)
    return caught.value


@pytest.mark.parametrize(
    ("source", "line", "column", "message"),
    [
        ('(defsymphony "x" {}\n  (asset "SPY"]', 2, 15, "`]` does not close `(` opened at 2:3"),
        ('(asset "SPY)', 1, 8, "unterminated string"),
        ("(> 10 1e5)", 1, 7, "invalid number `1e5`"),
        ("(asset BRK.B)", 1, 11, "unexpected character `.`"),
        ("{:a}", 1, 4, "map needs an even number of forms"),
        ("(a) (b)", 1, 5, "unexpected form after the top-level form"),
    ],
)
def test_reader_position_vectors_of_spec_7_10(
    source: str, line: int, column: int, message: str
) -> None:
    error = syntax_error(source)
    assert (error.line, error.column) == (line, column)
    assert error.message.startswith(message)


def test_error_string_is_file_line_column_message() -> None:
    error = syntax_error('(asset "SPY)')
    assert error.file == "t.clj"
    assert str(error) == f"t.clj:1:8: {error.message}"
    assert isinstance(error, DslError)


def test_errors_survive_pickling_with_their_fields() -> None:
    for error in (
        DslSyntaxError("a.clj", 1, 2, "bad"),
        DslStaticError("a.clj", 3, 4, "worse"),
        DslEvaluationError(
            "a.clj", 5, 6, "no data", strategy="a.clj", symbol="SPY", as_of=date(2024, 1, 2)
        ),
    ):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert vars(copy) == vars(error)


def test_missing_closer_names_the_innermost_opener_at_end_of_file() -> None:
    error = syntax_error('(defsymphony "x" {}\n (weight-equal\n  [(asset "A")')
    assert (error.line, error.column) == (3, 15)
    assert error.message.startswith("expected ']' to close the vector opened at 3:3")


def test_stray_closer_is_an_error_at_the_closer() -> None:
    error = syntax_error("(a))")
    assert (error.line, error.column) == (1, 4)
    assert "no matching opening bracket" in error.message


def test_empty_or_comment_only_file_is_an_error() -> None:
    for source in ("", "  \n", ";; only a comment\n, ,"):
        error = syntax_error(source)
        assert (error.line, error.column) == (1, 1)
        assert error.message.startswith("empty file")


def test_lists_vectors_and_maps_are_distinct_forms_with_spans() -> None:
    form = read('(a [1 "s"] {:k :v})')
    assert isinstance(form, List)
    assert form.span == Span(1, 1)
    head, vector, mapping = form.items
    assert head == Symbol("a", Span(1, 2))
    assert isinstance(vector, Vector)
    assert vector.span == Span(1, 4)
    assert vector.items == (Number(Decimal(1), "1", Span(1, 5)), String("s", Span(1, 7)))
    assert isinstance(mapping, Map)
    assert mapping.pairs == ((Keyword("k", Span(1, 13)), Keyword("v", Span(1, 16))),)


def test_true_false_and_nil_are_literals_not_symbols() -> None:
    form = read("[true false nil truthy]")
    assert isinstance(form, Vector)
    assert form.items == (
        Bool(True, Span(1, 2)),
        Bool(False, Span(1, 7)),
        Nil(Span(1, 13)),
        Symbol("truthy", Span(1, 17)),
    )


def test_numbers_keep_their_exact_decimal_value_and_text() -> None:
    form = read("[-12.5 0.75 200 -10 0.1]")
    assert isinstance(form, Vector)
    numbers = [item for item in form.items if isinstance(item, Number)]
    assert [n.value for n in numbers] == [
        Decimal("-12.5"),
        Decimal("0.75"),
        Decimal(200),
        Decimal(-10),
        Decimal("0.1"),
    ]
    assert [n.is_integer for n in numbers] == [False, False, True, True, False]


def test_minus_followed_by_a_digit_starts_a_number_otherwise_a_symbol() -> None:
    form = read("[-1 - -x >= a-1]")
    assert isinstance(form, Vector)
    assert [type(item).__name__ for item in form.items] == [
        "Number",
        "Symbol",
        "Symbol",
        "Symbol",
        "Symbol",
    ]


@pytest.mark.parametrize(
    ("source", "column", "token"),
    [("[10abc]", 2, "10abc"), ("[5.]", 2, "5."), ("[1.5.3]", 2, "1.5.3"), ("[-3x]", 2, "-3x")],
)
def test_a_number_must_end_at_a_boundary(source: str, column: int, token: str) -> None:
    error = syntax_error(source)
    assert (error.line, error.column) == (1, column)
    assert error.message.startswith(f"invalid number `{token}`")


def test_leading_dot_decimal_is_an_unexpected_character() -> None:
    error = syntax_error("[.5]")
    assert (error.line, error.column) == (1, 2)
    assert error.message.startswith("unexpected character `.`")


def test_a_keyword_must_end_at_a_boundary() -> None:
    error = syntax_error("{:win.dow 10}")
    assert (error.line, error.column) == (1, 2)
    assert error.message.startswith("invalid keyword `:win.dow`")


def test_numbers_and_keywords_may_end_at_any_delimiter_comma_or_comment() -> None:
    form = read("{:a 1,:b 2;c\n}")
    assert isinstance(form, Map)
    assert form.pairs == (
        (Keyword("a", Span(1, 2)), Number(Decimal(1), "1", Span(1, 5))),
        (Keyword("b", Span(1, 7)), Number(Decimal(2), "2", Span(1, 10))),
    )


@pytest.mark.parametrize("char", ["#", "'", "@", "^", "~", "`", "%", "&", "$", "|", "\\", "é"])
def test_characters_outside_the_grammar_are_errors_at_their_position(char: str) -> None:
    error = syntax_error(f"(a\n  b {char})")
    assert (error.line, error.column) == (2, 5)
    assert error.message.startswith("unexpected character")


def test_string_escapes_are_decoded() -> None:
    form = read(r'"a\"b\\c\nd\te\rf"')
    assert form == String('a"b\\c\nd\te\rf', Span(1, 1))


def test_unknown_string_escape_is_an_error_at_the_backslash() -> None:
    error = syntax_error('(x "ok"\n   "ab\\qc")')
    assert (error.line, error.column) == (2, 7)
    assert "invalid escape `\\q`" in error.message


def test_strings_may_span_lines_and_positions_after_them_stay_right() -> None:
    error = syntax_error('(x "one\ntwo" #)')
    assert (error.line, error.column) == (2, 6)


def test_columns_count_code_points_and_crlf_is_one_line_break() -> None:
    error = syntax_error('(x "ÄÖü€😀" ~)')
    assert error.column == 12
    error = syntax_error("(a\r\n b\r\n  ~)")
    assert (error.line, error.column) == (3, 3)


def test_comments_and_commas_are_trivia() -> None:
    form = read(";; header ; still comment\n(a, b ;; tail\n c)")
    assert isinstance(form, List)
    assert [item.name for item in form.items if isinstance(item, Symbol)] == ["a", "b", "c"]


def test_duplicate_map_key_is_an_error_at_the_second_key() -> None:
    error = syntax_error("{:window 10 :window 20}")
    assert (error.line, error.column) == (1, 13)
    assert error.message.startswith("duplicate map key `:window`; first given at 1:2")


def test_keyword_and_string_of_the_same_name_are_the_same_map_key() -> None:
    error = syntax_error('{:window 10 "window" 20}')
    assert (error.line, error.column) == (1, 13)
    assert "duplicate map key" in error.message


def test_nesting_up_to_the_limit_reads_and_one_more_is_an_error() -> None:
    assert isinstance(read("[" * MAX_DEPTH + "]" * MAX_DEPTH), Vector)
    error = syntax_error("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert (error.line, error.column) == (1, MAX_DEPTH + 1)
    assert "nesting deeper than 250" in error.message


def test_source_over_ten_mebibytes_is_rejected_with_its_size() -> None:
    source = '"' + "x" * (MAX_SOURCE_BYTES - 1) + '"'
    error = syntax_error(source)
    assert (error.line, error.column) == (1, 1)
    assert f"file is {MAX_SOURCE_BYTES + 1} bytes" in error.message


def test_size_limit_counts_utf8_bytes_not_characters() -> None:
    source = '"' + "é" * (MAX_SOURCE_BYTES // 2) + '"'
    assert len(source) < MAX_SOURCE_BYTES
    assert "bytes; the limit is 10 MiB" in syntax_error(source).message


SYMBOL_CHARS = "abcXYZ_><=!?+*/-"
TRIVIA = st.sampled_from([" ", ",", "\n", "\r\n", "\t", " ;; note\n", "\u00a0"])


def symbols() -> st.SearchStrategy[str]:
    name = st.text(SYMBOL_CHARS, min_size=1, max_size=6).map(lambda s: s + "9" if s == "-" else s)
    return name.filter(
        lambda s: s not in {"true", "false", "nil"} and not (s[0] == "-" and s[1:2].isdigit())
    )


def atoms() -> st.SearchStrategy[tuple[object, ...]]:
    return st.one_of(
        st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8).map(
            lambda s: ("string", s)
        ),
        st.decimals(allow_nan=False, allow_infinity=False, places=3).map(lambda d: ("number", d)),
        st.integers(-(10**20), 10**20).map(lambda i: ("number", Decimal(i))),
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,6}", fullmatch=True).map(
            lambda k: ("keyword", k)
        ),
        symbols().map(lambda s: ("symbol", s)),
        st.sampled_from([("bool", True), ("bool", False), ("nil",)]),
    )


def trees() -> st.SearchStrategy[tuple[object, ...]]:
    return st.recursive(
        atoms(),
        lambda children: st.one_of(
            st.lists(children, max_size=4).map(lambda items: ("list", *items)),
            st.lists(children, max_size=4).map(lambda items: ("vector", *items)),
        ),
        max_leaves=20,
    )


def render(tree: tuple[object, ...], gap: str) -> str:
    """Source text for a tree, with `gap` as the trivia between tokens."""
    kind = tree[0]
    if kind in ("list", "vector"):
        opener, closer = ("(", ")") if kind == "list" else ("[", "]")
        children = cast(tuple[tuple[object, ...], ...], tree[1:])
        return opener + gap.join(render(child, gap) for child in children) + closer
    if kind == "string":
        text = str(tree[1])
        for raw, escaped in (
            ("\\", "\\\\"),
            ('"', '\\"'),
            ("\n", "\\n"),
            ("\t", "\\t"),
            ("\r", "\\r"),
        ):
            text = text.replace(raw, escaped)
        return f'"{text}"'
    if kind == "number":
        return format(tree[1], "f")
    if kind == "keyword":
        return f":{tree[1]}"
    if kind == "symbol":
        return str(tree[1])
    if kind == "bool":
        return "true" if tree[1] else "false"
    return "nil"


def shape(form: Form) -> tuple[object, ...]:
    """A form without its spans, in the same shape as the generated trees."""
    if isinstance(form, List | Vector):
        return ("list" if isinstance(form, List) else "vector", *(shape(i) for i in form.items))
    if isinstance(form, String):
        return ("string", form.value)
    if isinstance(form, Number):
        return ("number", form.value)
    if isinstance(form, Keyword):
        return ("keyword", form.name)
    if isinstance(form, Symbol):
        return ("symbol", form.name)
    if isinstance(form, Bool):
        return ("bool", form.value)
    assert isinstance(form, Nil)
    return ("nil",)


def forms_with_spans(form: Form) -> list[Form]:
    nested = form.items if isinstance(form, List | Vector) else ()
    return [form, *(inner for item in nested for inner in forms_with_spans(item))]


@settings(max_examples=200, deadline=None)
@given(tree=trees(), gap=TRIVIA)
def test_rendered_trees_read_back_to_the_same_forms_with_spans_at_their_tokens(
    tree: tuple[object, ...], gap: str
) -> None:
    source = render(tree, gap)
    form = read(source)
    assert shape(form) == tree
    lines = source.split("\n")
    for inner in forms_with_spans(form):
        first = lines[inner.span.line - 1][inner.span.column - 1]
        expected = render(shape(inner), gap)[0]
        assert first == expected
