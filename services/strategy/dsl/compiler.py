"""The compiler: reader forms → the typed AST, with every static check of spec §2.2, §3.2 and §4.

Everything a user can get wrong in a file is caught here, before any market data is read: unknown
or unsupported operators, arity, argument types, windows, selectors, weights, tickers and
options. Each problem is a `DslStaticError` at the offending form's `line:col` that names the node
and the fix. The result is a complete tree or an error, never a partial tree.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
from collections.abc import Callable, Collection, Iterator
from decimal import Decimal
from typing import Final, Literal, NoReturn, cast

from services.strategy.dsl.ast import (
    Asset,
    Block,
    BlockVector,
    BoolLiteral,
    Comparison,
    ComparisonOp,
    Condition,
    Filter,
    Group,
    If,
    IndicatorCall,
    NumberLiteral,
    Operand,
    RankFn,
    Span,
    Symphony,
    WeightEqual,
    WeightInverseVolatility,
    WeightSpecified,
)
from services.strategy.dsl.errors import DslStaticError
from services.strategy.dsl.indicators import GROUP_METRICS, INDICATORS
from services.strategy.dsl.reader import (
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

COMPARISONS: Final = frozenset({">", "<", ">=", "<=", "="})
BLOCK_OPERATORS: Final = frozenset(
    {
        "asset",
        "group",
        "weight-equal",
        "weight-specified",
        "weight-inverse-volatility",
        "filter",
        "if",
    }
)
SELECTORS: Final = frozenset({"select-top", "select-bottom"})
KNOWN_OPERATORS: Final = (
    BLOCK_OPERATORS | frozenset(INDICATORS) | COMPARISONS | SELECTORS | frozenset({"defsymphony"})
)
UNSUPPORTED_OPERATORS: Final = frozenset(
    {
        "cond",
        "and",
        "or",
        "not",
        "ma",
        "volatility",
        "weight-cash-equal",
        "weight-cash-specified",
        "weight-market-cap",
        "weight-inverse-vol",
        "standard-deviation-price",
        "standard-deviation-return",
        "moving-average",
        "exponential-moving-average",
    }
)
_BLOCK_LIST = "asset, group, weight-equal, weight-specified, weight-inverse-volatility, filter, if"

TICKER_PATTERN: Final = re.compile(r"[A-Z0-9]+(?:[.-][A-Z0-9]+)*")
MAX_TICKER_LENGTH: Final = 10
COMPOSER_QUALIFIED_TICKER: Final = re.compile(r"EQUITIES::(.+?)(?://[A-Z]+)?")
ASSET_CLASSES: Final = frozenset({"EQUITIES"})
REBALANCE_FREQUENCIES: Final = frozenset({"daily", "weekly", "monthly", "quarterly", "yearly"})


def describe(form: Form) -> str:
    """Name a form in an error message the way a user would recognise it in the file."""
    if isinstance(form, String):
        return f'the string "{form.value}"'
    if isinstance(form, Number):
        return f"the number {form.text}"
    if isinstance(form, Keyword):
        return f"the keyword `:{form.name}`"
    if isinstance(form, Symbol):
        return f"the bare symbol `{form.name}`"
    if isinstance(form, Bool):
        return "`true`" if form.value else "`false`"
    if isinstance(form, Nil):
        return "`nil`"
    if isinstance(form, Vector):
        return "a vector `[...]`"
    if isinstance(form, Map):
        return "a map `{...}`"
    if form.items and isinstance(form.items[0], Symbol):
        return f"`({form.items[0].name} ...)`"
    return "a list `(...)`"


def _count(arguments: int) -> str:
    return f"{arguments} argument{'' if arguments == 1 else 's'}"


def normalise_ticker(raw: str) -> str | None:
    """Upper-case and strip Composer's `EQUITIES::SPY//USD` qualification; None if invalid."""
    ticker = raw.upper()
    qualified = COMPOSER_QUALIFIED_TICKER.fullmatch(ticker)
    if qualified:
        ticker = qualified.group(1)
    if len(ticker) > MAX_TICKER_LENGTH or not TICKER_PATTERN.fullmatch(ticker):
        return None
    return ticker


class _Compiler:
    def __init__(self, file_name: str) -> None:
        self.file_name = file_name
        self.tickers: set[str] = set()
        self.warnings: list[str] = []

    def fail(self, span: Span, message: str) -> NoReturn:
        raise DslStaticError(self.file_name, span.line, span.column, message)

    def warn(self, span: Span, message: str) -> None:
        self.warnings.append(f"{self.file_name}:{span.line}:{span.column}: {message}")

    # -- operators and arity --------------------------------------------------------------

    def operator(self, form: List, expected: str) -> str:
        """The head symbol's name, checked to be an operator this language knows."""
        if not form.items:
            self.fail(form.span, f"empty list `()`; expected {expected}")
        head = form.items[0]
        if not isinstance(head, Symbol):
            self.fail(
                head.span,
                f"expected an operator name at the head of the list, got {describe(head)}",
            )
        name = head.name
        if name in KNOWN_OPERATORS:
            return name
        if name in UNSUPPORTED_OPERATORS:
            self.fail(
                head.span,
                f"unsupported operator `{name}`; this engine supports {_BLOCK_LIST}, the"
                " comparisons > < >= <= = and the indicators",
            )
        close = difflib.get_close_matches(name, sorted(KNOWN_OPERATORS), n=1)
        hint = f"; did you mean `{close[0]}`?" if close else f"; expected {expected}"
        self.fail(head.span, f"unknown operator `{name}`{hint}")

    def arguments(
        self, form: List, name: str, counts: Collection[int], usage: str
    ) -> tuple[Form, ...]:
        args = form.items[1:]
        if len(args) not in counts:
            self.fail(
                form.span,
                f"{name}: expected {usage}, got {_count(len(args))}",
            )
        return args

    # -- literals -------------------------------------------------------------------------

    def string(self, form: Form, what: str) -> str:
        if isinstance(form, Symbol):
            self.fail(
                form.span,
                f"{what} must be a string in double quotes, got {describe(form)};"
                f' write "{form.name}"',
            )
        if not isinstance(form, String):
            self.fail(form.span, f"{what} must be a string in double quotes, got {describe(form)}")
        return form.value

    def ticker(self, form: Form, node: str) -> str:
        raw = self.string(form, f"{node}: the ticker")
        ticker = normalise_ticker(raw)
        if ticker is None:
            self.fail(
                form.span,
                f'{node}: invalid ticker "{raw}"; a ticker is letters and digits, optionally'
                f' joined by "." or "-" (e.g. "BRK.B"), at most {MAX_TICKER_LENGTH} characters',
            )
        self.tickers.add(ticker)
        return ticker

    def integer(self, form: Form, what: str, minimum: int) -> int:
        if not isinstance(form, Number) or not form.is_integer:
            self.fail(form.span, f"{what} must be an integer ≥ {minimum}, got {describe(form)}")
        if form.value < minimum:
            self.fail(form.span, f"{what} must be an integer ≥ {minimum}, got {form.text}")
        return int(form.value)

    def number(self, form: Number, what: str) -> float:
        value = float(form.value)
        if not math.isfinite(value):
            self.fail(form.span, f"{what}: the number {form.text} is too large for a double")
        return value

    # -- blocks ---------------------------------------------------------------------------

    def block(self, form: Form) -> Block:
        if isinstance(form, Vector):
            return BlockVector(self.block_elements(form, "a nested vector"), form.span)
        if not isinstance(form, List):
            hint = ""
            if isinstance(form, String):
                hint = f'; for a ticker write (asset "{form.value}")'
            elif isinstance(form, Symbol):
                hint = f'; for a ticker write (asset "{form.name}")'
            self.fail(
                form.span,
                f"expected a block ({_BLOCK_LIST} or a vector), got {describe(form)}{hint}",
            )
        name = self.operator(form, f"a block ({_BLOCK_LIST})")
        compile_block = self.block_compilers.get(name)
        if compile_block is None:
            self.fail(
                form.span,
                f"`{name}` is not a block here; expected one of {_BLOCK_LIST} or a vector",
            )
        return compile_block(self, form)

    def block_vector(self, form: Form, node: str) -> tuple[Block, ...]:
        if not isinstance(form, Vector):
            self.fail(
                form.span, f"{node}: expected a vector of blocks `[...]`, got {describe(form)}"
            )
        return self.block_elements(form, node)

    def block_elements(self, form: Vector, node: str) -> tuple[Block, ...]:
        if not form.items:
            self.fail(form.span, f"{node}: empty vector `[]`; give at least one block")
        blocks: list[Block] = []
        for item in form.items:
            blocks.append(self.block(item))
        return tuple(blocks)

    def asset(self, form: List) -> Asset:
        args = self.arguments(form, "asset", (1, 2), 'a ticker and an optional name: (asset "SPY")')
        ticker = self.ticker(args[0], "asset")
        name: str | None = None
        if len(args) == 2 and not isinstance(args[1], Nil):
            name = self.string(args[1], "asset: the display name")
        return Asset(ticker, name, form.span)

    def group(self, form: List) -> Group:
        args = self.arguments(form, "group", (2,), 'a name and a vector: (group "name" [block])')
        name = self.string(args[0], "group: the name")
        return Group(name, self.block_vector(args[1], "group"), form.span)

    def weight_equal(self, form: List) -> WeightEqual:
        args = self.arguments(form, "weight-equal", (1,), "one vector: (weight-equal [block ...])")
        return WeightEqual(self.block_vector(args[0], "weight-equal"), form.span)

    def weight_specified(self, form: List) -> WeightSpecified:
        args = form.items[1:]
        if not args or len(args) % 2:
            self.fail(
                form.span,
                "weight-specified: expected weight/block pairs: (weight-specified 0.6 block 0.4"
                f" block), got {_count(len(args))}",
            )
        weights: list[float] = []
        children: list[Block] = []
        total = Decimal(0)
        for weight_form, child in zip(args[::2], args[1::2], strict=True):
            if not isinstance(weight_form, Number):
                self.fail(
                    weight_form.span,
                    "weight-specified: weights must be number literals,"
                    f" got {describe(weight_form)}",
                )
            if weight_form.value < 0:
                self.fail(
                    weight_form.span,
                    f"weight-specified: weights must be ≥ 0, got {weight_form.text}",
                )
            weights.append(abs(self.number(weight_form, "weight-specified")))  # no -0.0
            total += weight_form.value
            children.append(self.block(child))
        if total == 0:
            self.fail(
                form.span, "weight-specified: all weights are 0; give at least one weight > 0"
            )
        if abs(total - 1) > Decimal("1e-6") and abs(total - 100) > Decimal("1e-4"):
            self.warn(
                form.span,
                f"weight-specified: weights sum to {total}, neither 1 nor 100; they are used"
                " relative to their sum",
            )
        return WeightSpecified(tuple(weights), tuple(children), form.span)

    def weight_inverse_volatility(self, form: List) -> WeightInverseVolatility:
        args = self.arguments(
            form,
            "weight-inverse-volatility",
            (2,),
            "a window and a vector: (weight-inverse-volatility 20 [block ...])",
        )
        if isinstance(args[0], Map):
            self.fail(
                args[0].span,
                "weight-inverse-volatility: the window is positional, e.g."
                " (weight-inverse-volatility 20 [...]), not a map",
            )
        window = self.integer(args[0], "weight-inverse-volatility: the window", 2)
        return WeightInverseVolatility(
            window, self.block_vector(args[1], "weight-inverse-volatility"), form.span
        )

    def filter(self, form: List) -> Filter:
        args = self.arguments(
            form,
            "filter",
            (3,),
            "a rank function, a selector and a vector:"
            " (filter (rsi {:window 10}) (select-top 1) [block ...])",
        )
        rank = self.rank_fn(args[0])
        select, count = self.selector(args[1])
        children = self.block_vector(args[2], "filter")
        if rank.indicator not in GROUP_METRICS:
            for child in children:
                if not isinstance(child, Asset):
                    self.fail(
                        args[0].span,
                        f"filter: {rank.indicator} cannot rank the non-asset candidate at"
                        f" {child.span.line}:{child.span.column} (it has no price series); rank"
                        f" blocks with one of {', '.join(sorted(GROUP_METRICS))}",
                    )
        return Filter(rank, select, count, children, form.span)

    def rank_fn(self, form: Form) -> RankFn:
        if not isinstance(form, List):
            self.fail(
                form.span,
                "filter: expected a rank function such as (rsi {:window 10}),"
                f" got {describe(form)}",
            )
        name = self.operator(form, "a rank function such as (rsi {:window 10})")
        if name not in INDICATORS:
            self.fail(
                form.span,
                f"filter: `{name}` is not an indicator; rank with one of"
                f" {', '.join(sorted(INDICATORS))}",
            )
        args = form.items[1:]
        if not INDICATORS[name].windowed:
            if args:
                self.fail(
                    args[0].span,
                    f"filter: {name} as a rank function takes no arguments: ({name})",
                )
            return RankFn(name, None, form.span)
        if len(args) != 1 or isinstance(args[0], String):
            self.fail(
                form.span,
                f"filter: a rank function names no ticker (the candidates supply the series);"
                f" write ({name} {{:window n}})",
            )
        return RankFn(name, self.window(args[0], name), form.span)

    def selector(self, form: Form) -> tuple[Literal["top", "bottom"], int]:
        if not isinstance(form, List):
            self.fail(
                form.span,
                f"filter: expected (select-top n) or (select-bottom n), got {describe(form)}",
            )
        name = self.operator(form, "(select-top n) or (select-bottom n)")
        if name not in SELECTORS:
            self.fail(
                form.span,
                f"filter: expected (select-top n) or (select-bottom n), got `({name} ...)`",
            )
        args = self.arguments(form, name, (1,), f"one integer n ≥ 1: ({name} 2)")
        count = self.integer(args[0], f"{name}: n", 1)
        return ("top" if name == "select-top" else "bottom"), count

    def if_(self, form: List) -> If:
        args = form.items[1:]
        if len(args) == 2:
            self.fail(
                form.span,
                "if without else: add an else branch, (if condition then-block else-block)",
            )
        if len(args) != 3:
            self.fail(
                form.span,
                "if: expected a condition, a then-block and an else-block, got"
                f" {_count(len(args))}",
            )
        condition = self.condition(args[0])
        return If(condition, self.block(args[1]), self.block(args[2]), form.span)

    # -- conditions and indicators ----------------------------------------------------------

    def condition(self, form: Form) -> Condition:
        if isinstance(form, Bool):
            return BoolLiteral(form.value, form.span)
        if not isinstance(form, List):
            self.fail(
                form.span,
                f'if: the condition must be a comparison such as (> (rsi "SPY" {{:window 10}}) 70)'
                f" or true/false, got {describe(form)}",
            )
        name = self.operator(form, "a comparison: > < >= <= =")
        if name not in COMPARISONS:
            self.fail(
                form.span,
                "if: the condition must be a comparison (> < >= <= =) or true/false,"
                f" got `({name} ...)`",
            )
        args = self.arguments(form, name, (2,), f"two operands: ({name} a b)")
        left, left_text = self.operand(args[0], name)
        right, right_text = self.operand(args[1], name)
        if name == "=":
            self.warn(form.span, "`=` compares doubles exactly and is rarely true; prefer >= or <=")
        op = cast(ComparisonOp, name)
        return Comparison(op, left, right, form.span, f"({name} {left_text} {right_text})")

    def operand(self, form: Form, comparison: str) -> tuple[Operand, str]:
        if isinstance(form, Number):
            return NumberLiteral(self.number(form, comparison), form.span), form.text
        if not isinstance(form, List):
            self.fail(
                form.span,
                f"{comparison}: operands must be numbers or indicator calls such as"
                f' (rsi "SPY" {{:window 10}}), got {describe(form)}',
            )
        call = self.indicator_call(form)
        return call, call.text

    def indicator_call(self, form: List) -> IndicatorCall:
        name = self.operator(form, 'an indicator call such as (rsi "SPY" {:window 10})')
        if name not in INDICATORS:
            self.fail(
                form.span,
                f"`{name}` is not an indicator; operands are numbers or one of"
                f" {', '.join(sorted(INDICATORS))}",
            )
        spec = INDICATORS[name]
        if not spec.windowed:
            args = self.arguments(form, name, (1,), f'({name} "SPY")')
            ticker = self.ticker(args[0], name)
            return IndicatorCall(name, ticker, None, form.span, spec.call_text(ticker, None))
        args = self.arguments(
            form, name, (2,), f'a ticker and a window map: ({name} "SPY" {{:window 10}})'
        )
        ticker = self.ticker(args[0], name)
        window = self.window(args[1], name)
        return IndicatorCall(name, ticker, window, form.span, spec.call_text(ticker, window))

    def window(self, form: Form, indicator: str) -> int:
        minimum = INDICATORS[indicator].min_window
        if isinstance(form, Number):
            self.fail(
                form.span,
                f"{indicator}: a positional window is not supported; write {{:window {form.text}}}",
            )
        if not isinstance(form, Map):
            self.fail(
                form.span, f"{indicator}: expected a window map {{:window n}}, got {describe(form)}"
            )
        window: int | None = None
        for key, value in form.pairs:
            key_name = (
                key.name
                if isinstance(key, Keyword)
                else key.value
                if isinstance(key, String)
                else None
            )
            if key_name != "window":
                self.fail(
                    key.span,
                    f"{indicator}: unknown parameter {describe(key)};"
                    " the only parameter is :window",
                )
            window = self.integer(value, f"{indicator}: :window", minimum)
        if window is None:
            self.fail(form.span, f"{indicator}: missing :window; write {{:window n}}")
        return window

    # -- the file ---------------------------------------------------------------------------

    def symphony(self, form: Form) -> tuple[str, dict[str, object], Block]:
        usage = '(defsymphony "name" {options} block)'
        if (
            not isinstance(form, List)
            or not form.items
            or not (isinstance(form.items[0], Symbol) and form.items[0].name == "defsymphony")
        ):
            if isinstance(form, List) and form.items and isinstance(form.items[0], Symbol):
                self.operator(form, usage)
            self.fail(form.span, f"expected the top-level form {usage}, got {describe(form)}")
        args = self.arguments(form, "defsymphony", (3,), f"exactly 3 arguments: {usage}")
        name = self.string(args[0], "defsymphony: the name")
        options = self.options(args[1])
        return name, options, self.block(args[2])

    def options(self, form: Form) -> dict[str, object]:
        if not isinstance(form, Map):
            self.fail(
                form.span,
                f'defsymphony: options must be a map such as {{:asset-class "EQUITIES"}}, got'
                f" {describe(form)}",
            )
        options: dict[str, object] = {}
        for key, value in form.pairs:
            if isinstance(key, Keyword):
                name = key.name
            elif isinstance(key, String):
                name = key.value
            else:
                self.fail(
                    key.span,
                    f"options: keys must be keywords such as :asset-class, got {describe(key)}",
                )
            options[name] = self.option(name, key.span, value)
        return options

    def option(self, name: str, span: Span, value: Form) -> object:
        if name == "asset-class":
            if not isinstance(value, String) or value.value not in ASSET_CLASSES:
                self.fail(value.span, f':asset-class must be "EQUITIES", got {describe(value)}')
            return value.value
        if name == "rebalance-frequency":
            frequency = (
                value.name
                if isinstance(value, Keyword)
                else value.value
                if isinstance(value, String)
                else None
            )
            if frequency not in REBALANCE_FREQUENCIES:
                self.fail(
                    value.span,
                    ":rebalance-frequency must be one of :daily :weekly :monthly :quarterly"
                    f" :yearly, got {describe(value)}",
                )
            return frequency
        if name == "rebalance-threshold":
            if not isinstance(value, Number) or not 0 < value.value < 1:
                self.fail(
                    value.span,
                    f":rebalance-threshold must be a number between 0 and 1 (exclusive), e.g. 0.1,"
                    f" got {describe(value)}",
                )
            return value.value
        self.warn(span, f"unknown option :{name} is ignored")
        if isinstance(value, String):
            return value.value
        if isinstance(value, Number):
            return value.value
        if isinstance(value, Keyword):
            return value.name
        if isinstance(value, Bool):
            return value.value
        self.fail(
            value.span,
            "options: a value must be a string, number, keyword, true or false,"
            f" got {describe(value)}",
        )

    block_compilers: Final[dict[str, Callable[[_Compiler, List], Block]]] = {
        "asset": asset,
        "group": group,
        "weight-equal": weight_equal,
        "weight-specified": weight_specified,
        "weight-inverse-volatility": weight_inverse_volatility,
        "filter": filter,
        "if": if_,
    }


def compile_form(form: Form, file_name: str, source_sha256: str) -> Symphony:
    """Check a read form statically and build its AST (spec §1.5, §2.2, §3.2, §4)."""
    compiler = _Compiler(file_name)
    name, options, body = compiler.symphony(form)
    return Symphony(
        file_name=file_name,
        name=name,
        options=options,
        body=body,
        tickers=frozenset(compiler.tickers),
        source_sha256=source_sha256,
        warnings=tuple(compiler.warnings),
    )


def parse_symphony(source: str, file_name: str) -> Symphony:
    """Read and statically check one symphony; raises `DslSyntaxError` / `DslStaticError`."""
    digest = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
    return compile_form(read_form(source, file_name), file_name, digest)


def _ticker_nodes(block: Block) -> Iterator[Asset | IndicatorCall]:
    """Every node naming a ticker, in source order."""
    if isinstance(block, Asset):
        yield block
    elif isinstance(block, If):
        condition = block.condition
        if isinstance(condition, Comparison):
            for operand in (condition.left, condition.right):
                if isinstance(operand, IndicatorCall):
                    yield operand
        yield from _ticker_nodes(block.then)
        yield from _ticker_nodes(block.otherwise)
    else:
        for child in block.children:
            yield from _ticker_nodes(child)


def check_universe(symphony: Symphony, known: Collection[str]) -> None:
    """Pre-flight (spec §6): fail at the first asset or indicator whose ticker is not tradable."""
    universe = frozenset(known)
    if symphony.tickers <= universe:
        return
    for node in _ticker_nodes(symphony.body):
        if node.ticker not in universe:
            where = "asset" if isinstance(node, Asset) else node.text
            raise DslStaticError(
                symphony.file_name,
                node.span.line,
                node.span.column,
                f"{where}: unknown ticker {node.ticker!r}: not in the asset universe"
                f" ({len(universe)} symbols); fix the ticker or add its bars/instrument",
            )
