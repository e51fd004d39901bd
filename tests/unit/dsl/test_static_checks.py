"""Static checks of the compiler: every malformed symphony is a `DslStaticError` at the offending
form, before any data is read; valid ones become the AST.

docs/strategy-language.md, Symphony grammar / Node reference / Indicator calls / Options / Errors
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.strategy.dsl.ast import (
    Asset,
    BlockVector,
    BoolLiteral,
    Comparison,
    Filter,
    Group,
    If,
    IndicatorCall,
    NumberLiteral,
    RankFn,
    Span,
    Symphony,
    WeightEqual,
    WeightInverseVolatility,
    WeightSpecified,
)
from services.strategy.dsl.compiler import check_universe, parse_symphony
from services.strategy.dsl.errors import DslStaticError


def symphony(body: str, options: str = '{:asset-class "EQUITIES"}') -> Symphony:
    return parse_symphony(f'(defsymphony "s" {options}\n{body})', "s.clj")


def static_error(body: str, options: str = "{}") -> DslStaticError:
    with pytest.raises(DslStaticError) as caught:
        symphony(body, options)
    return caught.value


def at(error: DslStaticError) -> tuple[int, int]:
    return error.line, error.column


def test_spec_7_9_example_compiles_to_the_expected_tree() -> None:
    parsed = parse_symphony(
        '(defsymphony "t" {:asset-class "EQUITIES" :rebalance-frequency :daily}\n'
        " (weight-equal\n"
        '  [(if (> (current-price "SPY") (moving-average-price "SPY" {:window 3}))\n'
        '     [(weight-specified 0.6 (asset "TQQQ") 0.4 (asset "BIL"))]\n'
        '     [(asset "BIL")])\n'
        '   (filter (rsi {:window 3}) (select-bottom 1) [(asset "TQQQ") (asset "SPY")])]))',
        "t.clj",
    )
    assert parsed.name == "t"
    assert parsed.file_name == "t.clj"
    assert parsed.options == {"asset-class": "EQUITIES", "rebalance-frequency": "daily"}
    assert parsed.tickers == frozenset({"SPY", "TQQQ", "BIL"})
    assert len(parsed.source_sha256) == 64
    body = parsed.body
    assert isinstance(body, WeightEqual)
    branch, ranked = body.children
    assert isinstance(branch, If)
    assert branch.span == Span(3, 4)
    condition = branch.condition
    assert isinstance(condition, Comparison)
    assert condition.op == ">"
    assert condition.text == ('(> (current-price "SPY") (moving-average-price "SPY" {:window 3}))')
    assert isinstance(condition.left, IndicatorCall)
    assert (condition.left.indicator, condition.left.window) == ("current-price", None)
    assert isinstance(condition.right, IndicatorCall)
    assert condition.right.text == '(moving-average-price "SPY" {:window 3})'
    assert (condition.right.ticker, condition.right.window) == ("SPY", 3)
    assert isinstance(branch.then, BlockVector)
    (specified,) = branch.then.children
    assert isinstance(specified, WeightSpecified)
    assert specified.weights == (0.6, 0.4)
    assert [c.ticker for c in specified.children if isinstance(c, Asset)] == ["TQQQ", "BIL"]
    assert isinstance(branch.otherwise, BlockVector)
    assert isinstance(ranked, Filter)
    assert (ranked.select, ranked.count) == ("bottom", 1)
    assert isinstance(ranked.rank, RankFn)
    assert (ranked.rank.indicator, ranked.rank.window) == ("rsi", 3)
    assert parsed.warnings == ()


def test_nested_vectors_and_multi_block_branches_are_block_vectors() -> None:
    body = symphony('(weight-equal [[(asset "A")] [(asset "B") (asset "C")]])').body
    assert isinstance(body, WeightEqual)
    assert [type(c) for c in body.children] == [BlockVector, BlockVector]
    assert [len(c.children) for c in body.children if isinstance(c, BlockVector)] == [1, 2]


def test_group_keeps_its_name_and_vector_elements() -> None:
    body = symphony(
        '(group "g" [(weight-specified 60 (asset "A") 40 (asset "B")) (asset "C")])'
    ).body
    assert isinstance(body, Group)
    assert body.name == "g"
    assert [type(c) for c in body.children] == [WeightSpecified, Asset]


def test_bool_literal_condition_and_zero_weight_child_are_kept() -> None:
    body = symphony('(if false (asset "A") (weight-specified 0 (asset "B") 1 (asset "C")))').body
    assert isinstance(body, If)
    assert isinstance(body.condition, BoolLiteral)
    assert body.condition.value is False
    assert isinstance(body.otherwise, WeightSpecified)
    assert body.otherwise.weights == (0.0, 1.0)


def test_comparison_operands_may_be_number_literals_or_indicators() -> None:
    body = symphony('(if (<= -5 (cumulative-return "qqq" {"window" 10})) (asset "A") (asset "B"))')
    assert isinstance(body.body, If)
    condition = body.body.condition
    assert isinstance(condition, Comparison)
    assert isinstance(condition.left, NumberLiteral)
    assert condition.left.value == -5.0
    assert isinstance(condition.right, IndicatorCall)
    assert condition.right.ticker == "QQQ"
    assert condition.text == '(<= -5 (cumulative-return "QQQ" {:window 10}))'


def test_inverse_volatility_keeps_its_positional_window() -> None:
    body = symphony('(weight-inverse-volatility 50 [(asset "A") (asset "B")])').body
    assert isinstance(body, WeightInverseVolatility)
    assert body.window == 50


def test_spec_7_5_e8_if_without_else_is_an_error_at_the_if() -> None:
    error = static_error('(weight-equal [(if (> 1 2) [(asset "A")]) (asset "B")])')
    assert at(error) == (2, 16)
    assert error.message.startswith("if without else")


def test_top_level_form_must_be_defsymphony() -> None:
    with pytest.raises(DslStaticError) as caught:
        parse_symphony('(weight-equal [(asset "A")])', "s.clj")
    assert at(caught.value) == (1, 1)
    assert "expected the top-level form (defsymphony" in caught.value.message


@pytest.mark.parametrize(
    "source",
    ['(defsymphony "s" {})', '(defsymphony "s" {} (asset "A") (asset "B"))'],
)
def test_defsymphony_takes_exactly_three_arguments(source: str) -> None:
    with pytest.raises(DslStaticError) as caught:
        parse_symphony(source, "s.clj")
    assert at(caught.value) == (1, 1)
    assert caught.value.message.startswith("defsymphony: expected exactly 3 arguments")


def test_defsymphony_name_must_be_a_string_and_options_a_map() -> None:
    with pytest.raises(DslStaticError) as caught:
        parse_symphony('(defsymphony name {} (asset "A"))', "s.clj")
    assert at(caught.value) == (1, 14)
    with pytest.raises(DslStaticError) as caught:
        parse_symphony('(defsymphony "n" [] (asset "A"))', "s.clj")
    assert at(caught.value) == (1, 18)
    assert "options must be a map" in caught.value.message


def test_unknown_operator_is_reported_at_the_head_with_the_closest_name() -> None:
    error = static_error('(weight-equal [(weight-eqaul [(asset "A")])])')
    assert at(error) == (2, 17)
    assert error.message == "unknown operator `weight-eqaul`; did you mean `weight-equal`?"


def test_unknown_operator_without_a_close_name_says_what_was_expected() -> None:
    error = static_error('(zzz [(asset "A")])')
    assert at(error) == (2, 2)
    assert error.message.startswith("unknown operator `zzz`; expected a block")


@pytest.mark.parametrize(
    "operator",
    ["cond", "and", "or", "not", "weight-cash-equal", "ma", "volatility", "weight-market-cap"],
)
def test_unsupported_composer_operators_are_rejected(operator: str) -> None:
    error = static_error(f'(weight-equal [({operator} (asset "A"))])')
    assert at(error) == (2, 17)
    assert error.message.startswith(f"unsupported operator `{operator}`")


def test_unsupported_operator_in_condition_position_is_rejected() -> None:
    error = static_error('(if (and true true) (asset "A") (asset "B"))')
    assert at(error) == (2, 6)
    assert error.message.startswith("unsupported operator `and`")


def test_bare_symbol_as_a_value_is_an_error_with_the_fix() -> None:
    error = static_error("(asset SPY)")
    assert at(error) == (2, 8)
    assert error.message == (
        "asset: the ticker must be a string in double quotes, got the bare symbol `SPY`;"
        ' write "SPY"'
    )


def test_a_non_block_where_a_block_is_expected_is_an_error() -> None:
    error = static_error('(weight-equal ["SPY"])')
    assert at(error) == (2, 16)
    assert error.message.endswith('got the string "SPY"; for a ticker write (asset "SPY")')
    error = static_error("(weight-equal [SPY])")
    assert error.message.endswith('got the bare symbol `SPY`; for a ticker write (asset "SPY")')
    error = static_error('(weight-equal [(rsi "SPY" {:window 2})])')
    assert at(error) == (2, 16)
    assert "`rsi` is not a block here" in error.message


def test_empty_vector_and_empty_list_are_errors() -> None:
    assert at(static_error("(weight-equal [])")) == (2, 15)
    assert at(static_error("(weight-equal [()])")) == (2, 16)


@pytest.mark.parametrize(
    ("body", "position", "message"),
    [
        ("(asset)", (2, 1), "asset: expected a ticker and an optional name"),
        ('(asset "A" "n" "x")', (2, 1), "asset: expected a ticker and an optional name"),
        ('(asset "A" 3)', (2, 12), "asset: the display name must be a string"),
        ('(group "g")', (2, 1), "group: expected a name and a vector"),
        ('(group "g" (asset "A"))', (2, 12), "group: expected a vector of blocks"),
        ('(weight-equal (asset "A"))', (2, 15), "weight-equal: expected a vector of blocks"),
        ('(weight-equal [(asset "A")] [(asset "B")])', (2, 1), "weight-equal: expected one vector"),
        ('(weight-specified 1 (asset "A") 1)', (2, 1), "weight-specified: expected weight/block"),
        (
            '(weight-specified x (asset "A"))',
            (2, 19),
            "weight-specified: weights must be number literals",
        ),
        (
            '(weight-inverse-volatility [(asset "A")])',
            (2, 1),
            "weight-inverse-volatility: expected a window and a vector",
        ),
        (
            '(filter (rsi {:window 2}) [(asset "A")])',
            (2, 1),
            "filter: expected a rank function, a selector and a vector",
        ),
        ('(if true (asset "A") (asset "B") (asset "C"))', (2, 1), "if: expected a condition"),
        ('(if (> 1) (asset "A") (asset "B"))', (2, 5), ">: expected two operands"),
        ('(if (> 1 2 3) (asset "A") (asset "B"))', (2, 5), ">: expected two operands"),
        ('(if "yes" (asset "A") (asset "B"))', (2, 5), "if: the condition must be a comparison"),
        ('(if nil (asset "A") (asset "B"))', (2, 5), "if: the condition must be a comparison"),
        ('(if (rsi "A" {:window 2}) (asset "A") (asset "B"))', (2, 5), "if: the condition"),
        ('(if (> "abc" 1) (asset "A") (asset "B"))', (2, 8), ">: operands must be numbers"),
        ('(if (> (asset "A") 1) (asset "A") (asset "B"))', (2, 8), "`asset` is not an indicator"),
    ],
)
def test_arity_and_argument_types_are_checked_for_every_node(
    body: str, position: tuple[int, int], message: str
) -> None:
    error = static_error(body)
    assert at(error) == position
    assert error.message.startswith(message)


def condition_with(indicator_call: str) -> str:
    return f'(if (> {indicator_call} 1) (asset "A") (asset "B"))'


@pytest.mark.parametrize(
    ("call", "offending", "message"),
    [
        ('(rsi "SPY" 10)', "10", "rsi: a positional window is not supported; write {:window 10}"),
        ('(rsi "SPY" {})', "{}", "rsi: missing :window"),
        ('(rsi "SPY" {:window 0})', "0", "rsi: :window must be an integer ≥ 1, got 0"),
        ('(rsi "SPY" {:window 2.5})', "2.5", "rsi: :window must be an integer ≥ 1"),
        ('(rsi "SPY" {:window "10"})', '"10"', "rsi: :window must be an integer ≥ 1"),
        ('(stdev-return "SPY" {:window 1})', "1}", "stdev-return: :window must be an integer ≥ 2"),
        ('(rsi "SPY" {:window 10 :period 3})', ":period", "rsi: unknown parameter"),
        ('(rsi "SPY")', "(rsi", "rsi: expected a ticker and a window map"),
        ("(rsi {:window 10})", "(rsi", "rsi: expected a ticker and a window map"),
        ('(current-price "SPY" {:window 3})', "(current", "current-price: expected"),
        ("(current-price SPY)", "SPY", "current-price: the ticker must be a string"),
        ('(max-drawdown "spy x" {:window 3})', '"spy x"', 'max-drawdown: invalid ticker "spy x"'),
    ],
)
def test_indicator_calls_need_a_ticker_and_a_valid_window_map(
    call: str, offending: str, message: str
) -> None:
    body = condition_with(call)
    error = static_error(body)
    assert at(error) == (2, body.index(offending) + 1)
    assert error.message.startswith(message)


def test_every_window_indicator_accepts_a_window_map() -> None:
    for indicator in (
        "rsi",
        "moving-average-price",
        "exponential-moving-average-price",
        "cumulative-return",
        "moving-average-return",
        "stdev-return",
        "max-drawdown",
    ):
        body = symphony(condition_with(f'({indicator} "SPY" {{:window 2}})')).body
        assert isinstance(body, If)
        assert isinstance(body.condition, Comparison)
        left = body.condition.left
        assert isinstance(left, IndicatorCall)
        assert (left.indicator, left.window) == (indicator, 2)


@pytest.mark.parametrize(
    ("rank", "offending", "message"),
    [
        ('(rsi "SPY" {:window 10})', "(rsi", "filter: a rank function names no ticker"),
        ("(rsi 10)", "10", "rsi: a positional window is not supported"),
        ("(rsi {:window 0})", "0", "rsi: :window must be an integer ≥ 1"),
        ('(current-price "SPY")', '"SPY"', "filter: current-price as a rank function takes no"),
        ("(select-top 1)", "(select-top 1)", "filter: `select-top` is not an indicator"),
        ("rsi", "rsi", "filter: expected a rank function"),
    ],
)
def test_filter_rank_function_is_checked(rank: str, offending: str, message: str) -> None:
    body = f'(filter {rank} (select-top 1) [(asset "A")])'
    error = static_error(body)
    assert at(error) == (2, body.index(offending) + 1)
    assert error.message.startswith(message)


@pytest.mark.parametrize(
    "rank",
    [
        "(current-price)",
        "(moving-average-price {:window 3})",
        "(exponential-moving-average-price {:window 3})",
    ],
)
def test_price_level_rank_functions_cannot_rank_groups(rank: str) -> None:
    body = f'(filter {rank} (select-top 1) [(asset "A") (group "g" [(asset "B")])])'
    error = static_error(body)
    assert at(error) == (2, body.index(rank) + 1)
    group_column = body.index("(group") + 1
    assert error.message.startswith(
        f"filter: {rank[1:].split(' ')[0].rstrip(')')} cannot rank the non-asset candidate"
        f" at 2:{group_column}"
    )


@pytest.mark.parametrize(
    "rank",
    [
        "(rsi {:window 3})",
        "(cumulative-return {:window 3})",
        "(moving-average-return {:window 3})",
        "(stdev-return {:window 3})",
        "(max-drawdown {:window 3})",
    ],
)
def test_return_based_rank_functions_may_rank_groups_and_vectors(rank: str) -> None:
    body = symphony(f'(filter {rank} (select-top 1) [[(asset "A")] (group "g" [(asset "B")])])')
    assert isinstance(body.body, Filter)
    assert [type(c) for c in body.body.children] == [BlockVector, Group]


def test_filter_accepts_current_price_as_rank_function() -> None:
    body = symphony('(filter (current-price) (select-top 1) [(asset "A") (asset "B")])').body
    assert isinstance(body, Filter)
    assert (body.rank.indicator, body.rank.window) == ("current-price", None)


@pytest.mark.parametrize(
    ("selector", "offending", "message"),
    [
        ("(select-top 0)", "0)", "select-top: n must be an integer ≥ 1, got 0"),
        ("(select-bottom -1)", "-1", "select-bottom: n must be an integer ≥ 1, got -1"),
        ("(select-top 1.5)", "1.5", "select-top: n must be an integer ≥ 1"),
        ("(select-top)", "(select-top)", "select-top: expected one integer"),
        ("(select-middle 1)", "select-middle", "unknown operator `select-middle`; did you mean"),
        ("(rsi {:window 2})", "(rsi {:window 2})", "filter: expected (select-top n) or"),
    ],
)
def test_filter_selector_is_checked(selector: str, offending: str, message: str) -> None:
    body = f'(filter (rsi {{:window 10}}) {selector} [(asset "A")])'
    error = static_error(body)
    assert at(error) == (2, body.index(offending) + 1)
    assert error.message.startswith(message)


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ("1", "weight-inverse-volatility: the window must be an integer ≥ 2, got 1"),
        ("2.0", "weight-inverse-volatility: the window must be an integer ≥ 2"),
        ("{:window 10}", "weight-inverse-volatility: the window is positional"),
    ],
)
def test_inverse_volatility_window_is_a_positional_integer_of_at_least_two(
    window: str, message: str
) -> None:
    error = static_error(f'(weight-inverse-volatility {window} [(asset "A")])')
    assert at(error) == (2, 28)
    assert error.message.startswith(message)


def test_negative_weight_is_an_error_at_the_weight() -> None:
    error = static_error('(weight-specified 0.5 (asset "A") -0.25 (asset "B"))')
    assert at(error) == (2, 35)
    assert error.message == "weight-specified: weights must be ≥ 0, got -0.25"


def test_all_zero_weights_are_an_error() -> None:
    error = static_error('(weight-specified 0 (asset "A") 0.0 (asset "B"))')
    assert at(error) == (2, 1)
    assert error.message.startswith("weight-specified: all weights are 0")


def test_negative_zero_weight_is_a_plain_zero() -> None:
    body = symphony('(weight-specified -0 (asset "A") 1 (asset "B"))').body
    assert isinstance(body, WeightSpecified)
    assert str(body.weights[0]) == "0.0"


def test_weight_too_large_for_a_double_is_an_error() -> None:
    error = static_error(f'(weight-specified {"9" * 400} (asset "A"))')
    assert at(error) == (2, 19)
    assert "too large" in error.message


@pytest.mark.parametrize("weights", [("0.75", "0.25"), ("60", "40"), ("0.3333333", "0.6666667")])
def test_weights_summing_to_one_or_a_hundred_give_no_warning(weights: tuple[str, str]) -> None:
    first, second = weights
    parsed = symphony(f'(weight-specified {first} (asset "A") {second} (asset "B"))')
    assert parsed.warnings == ()


def test_weights_summing_to_neither_one_nor_a_hundred_warn_with_the_position() -> None:
    parsed = symphony('(weight-specified 2 (asset "A") 1 (asset "B"))')
    assert parsed.warnings == (
        "s.clj:2:1: weight-specified: weights sum to 3, neither 1 nor 100;"
        " they are used relative to their sum",
    )
    assert isinstance(parsed.body, WeightSpecified)
    assert parsed.body.weights == (2.0, 1.0)


def test_exact_equality_comparison_warns() -> None:
    parsed = symphony('(if (= (rsi "A" {:window 2}) 50) (asset "A") (asset "B"))')
    assert len(parsed.warnings) == 1
    assert parsed.warnings[0].startswith("s.clj:2:5: `=` compares doubles exactly")


@pytest.mark.parametrize(
    ("raw", "ticker"),
    [
        ("spy", "SPY"),
        ("BRK.B", "BRK.B"),
        ("bf-b", "BF-B"),
        ("EQUITIES::spy//USD", "SPY"),
        ("EQUITIES::BRK.B", "BRK.B"),
    ],
)
def test_tickers_are_upper_cased_and_composer_qualification_stripped(raw: str, ticker: str) -> None:
    parsed = symphony(f'(asset "{raw}" nil)')
    assert isinstance(parsed.body, Asset)
    assert (parsed.body.ticker, parsed.body.name) == (ticker, None)
    assert parsed.tickers == frozenset({ticker})


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "ABCDEFGHIJK",
        "BRK..B",
        "-SPY",
        "SPY.",
        "S P",
        " SPY",
        "EQUITIES::",
        "CRYPTO::BTC//USD",
        "SPY//USD",
        "$SPY",
    ],
)
def test_invalid_tickers_are_rejected(raw: str) -> None:
    error = static_error(f'(asset "{raw}")')
    assert at(error) == (2, 8)
    assert error.message.startswith(f'asset: invalid ticker "{raw}"')


@pytest.mark.parametrize(
    ("options", "column", "message"),
    [
        ('{:asset-class "CRYPTO"}', 32, ':asset-class must be "EQUITIES"'),
        ("{:rebalance-frequency :hourly}", 40, ":rebalance-frequency must be one of"),
        ("{:rebalance-threshold 1}", 40, ":rebalance-threshold must be a number between 0 and 1"),
        ("{:rebalance-threshold 0}", 40, ":rebalance-threshold must be a number between 0 and 1"),
        ('{:rebalance-threshold "0.1"}', 40, ":rebalance-threshold must be a number"),
        ("{:foo (bar)}", 24, "options: a value must be a string, number, keyword"),
        ("{1 2}", 19, "options: keys must be keywords"),
    ],
)
def test_options_are_validated(options: str, column: int, message: str) -> None:
    with pytest.raises(DslStaticError) as caught:
        parse_symphony(f'(defsymphony "s" {options} (asset "A"))', "s.clj")
    assert at(caught.value) == (1, column)
    assert caught.value.message.startswith(message)


def test_valid_options_are_exposed_and_unknown_keys_warn() -> None:
    source = (
        '(defsymphony "s" {:asset-class "EQUITIES" :rebalance-frequency "weekly"'
        ' :rebalance-threshold 0.1 :note "x"} (asset "A"))'
    )
    parsed = parse_symphony(source, "s.clj")
    assert parsed.options == {
        "asset-class": "EQUITIES",
        "rebalance-frequency": "weekly",
        "rebalance-threshold": Decimal("0.1"),
        "note": "x",
    }
    column = source.index(":note") + 1
    assert parsed.warnings == (f"s.clj:1:{column}: unknown option :note is ignored",)


def test_check_universe_fails_at_the_first_unknown_ticker_in_source_order() -> None:
    parsed = symphony(
        '(weight-equal [(asset "SPY")\n'
        ' (if (> (rsi "XYZ" {:window 2}) 1) (asset "QQQ") (asset "ABC"))])'
    )
    with pytest.raises(DslStaticError) as caught:
        check_universe(parsed, ["SPY", "QQQ"])
    assert at(caught.value) == (3, 9)
    assert caught.value.message.startswith(
        "(rsi \"XYZ\" {:window 2}): unknown ticker 'XYZ': not in the asset universe"
    )
    with pytest.raises(DslStaticError) as caught:
        check_universe(parsed, {"SPY", "QQQ", "XYZ"})
    assert at(caught.value) == (3, 50)
    assert caught.value.message.startswith("asset: unknown ticker 'ABC'")


def test_check_universe_accepts_a_symphony_whose_tickers_are_all_known() -> None:
    parsed = symphony('(filter (rsi {:window 2}) (select-top 1) [(asset "A") (asset "B")])')
    check_universe(parsed, frozenset({"A", "B", "C"}))
