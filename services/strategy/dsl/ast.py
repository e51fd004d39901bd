"""The compiled symphony: a typed tree that the evaluator walks.

The compiler guarantees every invariant the spec checks statically (arity, argument types,
windows, tickers, weights), so the evaluator never re-validates the shape. Nodes are frozen and
compare by identity (`eq=False`): a large file has ~60k nodes and evaluators memoise per node
object, which structural hashing would make slow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias, cast

from services.strategy.dsl.indicators import IndicatorName

ComparisonOp: TypeAlias = Literal[">", "<", ">=", "<=", "="]


class _PickledByFields:
    """Pickles as `cls(*field values)`.

    Compiled trees are cached on disk (services.strategy.parse_cache); the default pickling of
    slotted dataclasses looks the fields up again for every object and makes loading a large tree
    twice as slow.
    """

    __slots__ = ()

    def __reduce__(self) -> tuple[type[_PickledByFields], tuple[object, ...]]:
        names = cast(tuple[str, ...], type(self).__slots__)
        return type(self), tuple([getattr(self, name) for name in names])


@dataclass(frozen=True, slots=True)
class Span(_PickledByFields):
    """1-based position of a node's first character; column counts code points."""

    line: int
    column: int


@dataclass(frozen=True, slots=True, eq=False)
class Asset(_PickledByFields):
    ticker: str
    name: str | None
    span: Span


@dataclass(frozen=True, slots=True, eq=False)
class BlockVector(_PickledByFields):
    """A vector used as one block (nested vector, multi-block `if` branch); equal weight inside."""

    children: tuple[Block, ...]
    span: Span


@dataclass(frozen=True, slots=True, eq=False)
class Group(_PickledByFields):
    """A named transparent wrapper; `children` are the elements of its block-vector."""

    name: str
    children: tuple[Block, ...]
    span: Span


@dataclass(frozen=True, slots=True, eq=False)
class WeightEqual(_PickledByFields):
    children: tuple[Block, ...]
    span: Span


@dataclass(frozen=True, slots=True, eq=False)
class WeightSpecified(_PickledByFields):
    """Weights as written (finite, ≥ 0, Σ > 0; not normalised); zero-weight children are kept."""

    weights: tuple[float, ...]
    children: tuple[Block, ...]
    span: Span


@dataclass(frozen=True, slots=True, eq=False)
class WeightInverseVolatility(_PickledByFields):
    window: int
    children: tuple[Block, ...]
    span: Span


@dataclass(frozen=True, slots=True, eq=False)
class RankFn(_PickledByFields):
    """A filter's ranking indicator; the candidate supplies the series. `window` is None only
    for current-price."""

    indicator: IndicatorName
    window: int | None
    span: Span


@dataclass(frozen=True, slots=True, eq=False)
class Filter(_PickledByFields):
    rank: RankFn
    select: Literal["top", "bottom"]
    count: int
    children: tuple[Block, ...]
    span: Span


@dataclass(frozen=True, slots=True, eq=False)
class IndicatorCall(_PickledByFields):
    """An indicator of a named ticker; `text` renders the call for traces and error messages,
    e.g. `(rsi "TQQQ" {:window 10})`."""

    indicator: IndicatorName
    ticker: str
    window: int | None
    span: Span
    text: str


@dataclass(frozen=True, slots=True, eq=False)
class NumberLiteral(_PickledByFields):
    value: float
    span: Span


Operand: TypeAlias = IndicatorCall | NumberLiteral


@dataclass(frozen=True, slots=True, eq=False)
class Comparison(_PickledByFields):
    op: ComparisonOp
    left: Operand
    right: Operand
    span: Span
    text: str


@dataclass(frozen=True, slots=True, eq=False)
class BoolLiteral(_PickledByFields):
    value: bool
    span: Span


Condition: TypeAlias = Comparison | BoolLiteral


@dataclass(frozen=True, slots=True, eq=False)
class If(_PickledByFields):
    """Both branches are required; a branch written as a vector is a `BlockVector`."""

    condition: Condition
    then: Block
    otherwise: Block
    span: Span


Block: TypeAlias = (
    Asset
    | BlockVector
    | Group
    | WeightEqual
    | WeightSpecified
    | WeightInverseVolatility
    | Filter
    | If
)


@dataclass(frozen=True, slots=True, eq=False)
class Symphony(_PickledByFields):
    """One statically checked strategy file.

    `file_name` is the strategy's identity (base name, e.g. `1-KMLM.clj`); `name` is display
    metadata. `tickers` holds every ticker the file mentions (assets and indicator calls), for
    the pre-flight universe check and data fetching. `warnings` are authoring slips that do not
    stop the file (e.g. weights summing to neither 1 nor 100), each `file:line:col: message`.
    `options` are metadata only (spec §4), keyed without the colon: `asset-class` and
    `rebalance-frequency` as str (`"daily"`), `rebalance-threshold` as an exact `Decimal`.
    """

    file_name: str
    name: str
    options: Mapping[str, object]
    body: Block
    tickers: frozenset[str]
    source_sha256: str
    warnings: tuple[str, ...] = field(default=())
