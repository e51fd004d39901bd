"""Evaluate a symphony at many as-of dates in one pass over the tree
(docs/strategy-language.md, Evaluation / Block scoring).

Each node is computed once, over every session it is needed at: the requested as-of bars, and
for the candidates of a filter that ranks non-asset blocks also the sessions of the scoring
window before each of them (nested candidates extend their own windows in turn). An `if` splits
its sessions by the condition, so a branch is only ever evaluated at the sessions where it is
taken and its data problems matter only there. A failure (short history, a missing close, zero
volatility) is tracked per session and becomes the `DslEvaluationError` of exactly the as-of
dates whose result depends on it.

The decision trace of a date is walked when it is read, along the taken path, from the values the
evaluation pass recorded: it costs little more than the path's length, and nothing for the dates
whose trace nobody reads.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from services.strategy.dsl.allocation import (
    NO_FAILURE,
    FailureCodes,
    Matrix,
    SessionAllocation,
    SessionIndex,
    WeightedPart,
    combine,
    first_failure,
    no_failures,
    restricted,
    single_ticker,
)
from services.strategy.dsl.ast import (
    Asset,
    Block,
    BlockVector,
    BoolLiteral,
    Comparison,
    Filter,
    Group,
    If,
    IndicatorCall,
    NumberLiteral,
    Operand,
    Span,
    Symphony,
    WeightEqual,
    WeightInverseVolatility,
    WeightSpecified,
)
from services.strategy.dsl.errors import DslError, DslEvaluationError
from services.strategy.dsl.failures import Failure, FailureTable
from services.strategy.dsl.indicators import STDEV_RETURN, IndicatorName
from services.strategy.dsl.market_series import MarketSeries, Series
from services.strategy.dsl.subtree_series import candidate_scores, scoring_sessions
from services.strategy.dsl.trace import DecisionTrace, TraceEntry
from shared.marketdata.bars import BarDataError, BarSnapshot

WEIGHT_SUM_TOLERANCE = 1e-9

_COMPARE: dict[str, Callable[[Series, Series], npt.NDArray[np.bool_]]] = {
    ">": np.greater,
    "<": np.less,
    ">=": np.greater_equal,
    "<=": np.less_equal,
    "=": np.equal,
}


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One strategy at one as-of date: weights (sorted by ticker, zeros dropped) or the error."""

    strategy: str
    as_of: date
    weights: dict[str, float] | None
    error: DslError | None
    trace: DecisionTrace | None


@dataclass(frozen=True, slots=True)
class _Record:
    """A decision's values at the sessions it was evaluated at; `rows` views the same session
    indices for `_rows`."""

    sessions: SessionIndex
    rows: memoryview = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", self.sessions.data)


@dataclass(frozen=True, slots=True)
class _IfRecord(_Record):
    left: Series
    right: Series
    taken: npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class _FilterRecord(_Record):
    labels: tuple[str, ...]
    scores: Matrix | None
    selected: npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class _InverseVolatilityRecord(_Record):
    labels: tuple[str, ...]
    sigmas: Matrix
    weights: Matrix


def span_text(node: Block | Operand) -> str:
    return f"{node.span.line}:{node.span.column}"


def describe_block(node: Block) -> str:
    """How a block is named in traces and messages: its ticker, group name, or kind and place."""
    if isinstance(node, Asset):
        return node.ticker
    if isinstance(node, Group):
        return f'group "{node.name}"'
    kind = {
        BlockVector: "vector",
        WeightEqual: "weight-equal",
        WeightSpecified: "weight-specified",
        WeightInverseVolatility: "weight-inverse-volatility",
        Filter: "filter",
        If: "if",
    }[type(node)]
    return f"{kind} at {span_text(node)}"


def _constant(message: str) -> Callable[[int], str]:
    return lambda _session: message


def _zero_volatility(window: int, ticker: str, market: MarketSeries) -> Callable[[int], str]:
    def describe(session: int) -> str:
        return (
            f"weight-inverse-volatility {window}: {ticker} has zero volatility "
            f"(stdev-return {window} = 0) as of {market.session_date(session)}; inverse "
            "volatility needs a positive value (a flat price series usually means stale bar data)"
        )

    return describe


_PASS_THROUGH = (BlockVector, Group, WeightEqual)
"""The blocks that decide nothing themselves: a trace walks their children in order."""


def _rows(record: _Record, session: int) -> int:
    """The record's row of `session`, as `searchsorted` finds it: bisecting a memoryview of the
    index takes a quarter of `searchsorted`'s time on one number, and a backtest's decision paths
    look up 250,000 rows."""
    return bisect_left(record.rows, session)


class _Run:
    """One evaluation of one symphony: caches, the failure table and the trace records."""

    def __init__(self, symphony: Symphony, market: MarketSeries) -> None:
        self.symphony = symphony
        self.market = market
        self.failures = FailureTable()
        self.if_records: dict[If, _IfRecord] = {}
        self.filter_records: dict[Filter, _FilterRecord] = {}
        self.volatility_records: dict[WeightInverseVolatility, _InverseVolatilityRecord] = {}
        self._ticker_rank: dict[str, int] = {}
        self._memo: dict[Block, SessionAllocation] = {}
        self._decisions: dict[Block, tuple[Block, ...]] = {}
        self._evaluate_by_type: dict[type, Callable[[Any, SessionIndex], SessionAllocation]] = {
            Asset: self._asset,
            BlockVector: self._equal,
            Group: self._equal,
            WeightEqual: self._equal,
            WeightSpecified: self._specified,
            WeightInverseVolatility: self._inverse_volatility,
            Filter: self._filter,
            If: self._if,
        }
        self._trace_by_type: dict[type, Callable[[Any, int, str | None, list[TraceEntry]], None]]
        self._trace_by_type = {
            **dict.fromkeys(_PASS_THROUGH, self._trace_children),
            WeightSpecified: self._trace_specified,
            WeightInverseVolatility: self._trace_inverse_volatility,
            Filter: self._trace_filter,
            If: self._trace_if,
        }

    def evaluate(self, node: Block, sessions: SessionIndex) -> SessionAllocation:
        """The node at `sessions`, memoised per node object: a node reached again (a tree that
        shares a subtree) is re-evaluated only when it needs sessions it has not covered."""
        known = self._memo.get(node)
        if known is None:
            result = self._evaluate_by_type[type(node)](node, sessions)
            self._memo[node] = result
            return result
        if not np.isin(sessions, known.sessions, assume_unique=True).all():
            known = self._evaluate_by_type[type(node)](node, np.union1d(sessions, known.sessions))
            self._memo[node] = known
        return restricted(known, sessions)

    def failure(
        self, node: Block | Operand, symbol: str | None, describe: Callable[[int], str]
    ) -> int:
        return self.failures.add(Failure(node.span, symbol, describe))

    def ticker_rank(self, ticker: str) -> int:
        if not self._ticker_rank:
            self._ticker_rank = {t: i for i, t in enumerate(sorted(self.symphony.tickers))}
        rank = self._ticker_rank.get(ticker)
        if rank is None:
            self._ticker_rank = {t: i for i, t in enumerate(sorted({*self._ticker_rank, ticker}))}
            rank = self._ticker_rank[ticker]
        return rank

    def _asset(self, node: Asset, sessions: SessionIndex) -> SessionAllocation:
        return single_ticker(node.ticker, sessions)

    def _equal(
        self, node: BlockVector | Group | WeightEqual, sessions: SessionIndex
    ) -> SessionAllocation:
        children = node.children
        if len(children) == 1:
            return self.evaluate(children[0], sessions)
        share = 1.0 / len(children)
        return combine(
            sessions, [WeightedPart(share, self.evaluate(c, sessions)) for c in children]
        )

    def _specified(self, node: WeightSpecified, sessions: SessionIndex) -> SessionAllocation:
        total = sum(node.weights)
        parts = [
            WeightedPart(weight / total, self.evaluate(child, sessions))
            for weight, child in zip(node.weights, node.children, strict=True)
            if weight > 0.0
        ]
        return combine(sessions, parts)

    def _operand(self, operand: Operand, sessions: SessionIndex) -> tuple[Series, FailureCodes]:
        if isinstance(operand, NumberLiteral):
            return np.full(sessions.size, operand.value), no_failures(sessions.size)
        return self.market.read(
            operand.ticker,
            operand.indicator,
            operand.window,
            sessions,
            span=operand.span,
            failures=self.failures,
        )

    def _if(self, node: If, sessions: SessionIndex) -> SessionAllocation:
        condition = node.condition
        if isinstance(condition, BoolLiteral):
            left = right = np.full(sessions.size, np.nan)
            taken = np.full(sessions.size, condition.value)
            codes = no_failures(sessions.size)
        else:
            left, left_codes = self._operand(condition.left, sessions)
            right, right_codes = self._operand(condition.right, sessions)
            codes = first_failure(left_codes, right_codes)
            taken = _COMPARE[condition.op](left, right)
        self.if_records[node] = _IfRecord(sessions, left, right, taken)
        usable = codes == NO_FAILURE
        parts = []
        then_sessions = sessions[taken & usable]
        if then_sessions.size:
            parts.append(WeightedPart(1.0, self.evaluate(node.then, then_sessions)))
        else_sessions = sessions[~taken & usable]
        if else_sessions.size:
            parts.append(WeightedPart(1.0, self.evaluate(node.otherwise, else_sessions)))
        if len(parts) == 1 and usable.all():
            return parts[0].allocation
        return combine(sessions, parts, failures=codes)

    def _filter(self, node: Filter, sessions: SessionIndex) -> SessionAllocation:
        if all(isinstance(child, Asset) for child in node.children):
            return self._filter_assets(node, sessions)
        return self._filter_blocks(node, sessions)

    def _asset_scores(
        self, node: Filter, ticker: str, sessions: SessionIndex
    ) -> tuple[Series, FailureCodes]:
        return self.market.read(
            ticker,
            node.rank.indicator,
            node.rank.window,
            sessions,
            span=node.rank.span,
            failures=self.failures,
            context=f"filter at {span_text(node)} ranking {ticker}",
        )

    def _filter_assets(self, node: Filter, sessions: SessionIndex) -> SessionAllocation:
        """Distinct tickers are the candidates; exact ties go to the alphabetically first."""
        tickers = tuple(
            sorted({child.ticker for child in node.children if isinstance(child, Asset)})
        )
        m, k = sessions.size, len(tickers)
        if node.count >= k:
            selected = np.ones((m, k), dtype=bool)
            self.filter_records[node] = _FilterRecord(sessions, tickers, None, selected)
            return SessionAllocation(sessions, tickers, np.full((m, k), 1.0 / k), no_failures(m))
        scores = np.empty((m, k))
        codes = no_failures(m)
        for column, ticker in enumerate(tickers):
            scores[:, column], ticker_codes = self._asset_scores(node, ticker, sessions)
            codes = first_failure(codes, ticker_codes)
        key = -scores if node.select == "top" else scores
        order = np.argsort(key, axis=1, kind="stable")[:, : node.count]
        selected = np.zeros((m, k), dtype=bool)
        selected[np.arange(m)[:, None], order] = True
        selected[codes != NO_FAILURE] = False
        self.filter_records[node] = _FilterRecord(sessions, tickers, scores, selected)
        weights = selected / float(node.count)
        return SessionAllocation(sessions, tickers, weights, codes)

    def _filter_blocks(self, node: Filter, sessions: SessionIndex) -> SessionAllocation:
        """Every child is a candidate; blocks are scored on their synthetic return series."""
        children = node.children
        labels = tuple(describe_block(child) for child in children)
        m, k = sessions.size, len(children)
        if node.count >= k:
            selected = np.ones((m, k), dtype=bool)
            self.filter_records[node] = _FilterRecord(sessions, labels, None, selected)
            return combine(
                sessions, [WeightedPart(1.0 / k, self.evaluate(c, sessions)) for c in children]
            )
        rank = node.rank
        window = rank.window
        scores = np.empty((m, k))
        first_tickers = np.empty((m, k), dtype=np.int64)
        codes = no_failures(m)
        current: list[SessionAllocation] = []
        extended = scoring_sessions(sessions, window) if window is not None else sessions
        for column, child in enumerate(children):
            if isinstance(child, Asset):
                scores[:, column], child_codes = self._asset_scores(node, child.ticker, sessions)
                first_tickers[:, column] = self.ticker_rank(child.ticker)
                current.append(single_ticker(child.ticker, sessions))
                codes = first_failure(codes, child_codes)
                continue
            history = self.evaluate(child, extended)
            now = restricted(history, sessions)
            current.append(now)
            if window is None:
                label = labels[column]
                codes = first_failure(
                    codes,
                    np.full(
                        m,
                        self.failure(
                            node,
                            None,
                            _constant(
                                f"filter: (current-price) cannot rank {label}; rank blocks "
                                "by a windowed indicator such as (cumulative-return {:window 10})"
                            ),
                        ),
                    ),
                )
                scores[:, column] = 0.0
            else:
                scores[:, column], child_codes = candidate_scores(
                    history,
                    self.market,
                    rank.indicator,
                    window,
                    sessions,
                    span=node.span,
                    label=f"filter at {span_text(node)}: candidate {labels[column]}",
                    failures=self.failures,
                )
                codes = first_failure(codes, child_codes)
            codes = first_failure(codes, now.failures)
            first_tickers[:, column] = self._first_held_ticker(now)
        key = -scores if node.select == "top" else scores
        source_order = np.broadcast_to(np.arange(k), (m, k))
        order = np.lexsort((source_order, first_tickers, key), axis=-1)[:, : node.count]
        selected = np.zeros((m, k), dtype=bool)
        selected[np.arange(m)[:, None], order] = True
        selected[codes != NO_FAILURE] = False
        self.filter_records[node] = _FilterRecord(sessions, labels, scores, selected)
        share = selected / float(node.count)
        parts = [WeightedPart(share[:, i], current[i]) for i in range(k)]
        return combine(sessions, parts, failures=codes)

    def _first_held_ticker(self, allocation: SessionAllocation) -> npt.NDArray[np.int64]:
        """Rank of the alphabetically first ticker held in each row (columns are sorted)."""
        held = allocation.weights > 0.0
        ranks = np.array([self.ticker_rank(t) for t in allocation.tickers], dtype=np.int64)
        if ranks.size == 0:
            return np.zeros(allocation.sessions.size, dtype=np.int64)
        first: npt.NDArray[np.int64] = ranks[np.argmax(held, axis=1)]
        return first

    def _sigmas(
        self,
        node: WeightInverseVolatility,
        allocation: SessionAllocation,
        sessions: SessionIndex,
    ) -> tuple[Matrix, FailureCodes]:
        """stdev-return of every held ticker (columns of `allocation`), failing where a held
        ticker's volatility is not a positive number."""
        held = allocation.weights > 0.0
        sigmas = np.ones(held.shape)
        codes = no_failures(sessions.size)
        for column, ticker in enumerate(allocation.tickers):
            values, ticker_codes = self.market.read(
                ticker,
                STDEV_RETURN,
                node.window,
                sessions,
                span=node.span,
                failures=self.failures,
                context=f"weight-inverse-volatility {node.window}",
            )
            holding = held[:, column]
            codes = first_failure(codes, np.where(holding, ticker_codes, NO_FAILURE))
            flat = holding & (ticker_codes == NO_FAILURE) & ~(values > 0.0)
            if flat.any():
                code = self.failure(
                    node, ticker, _zero_volatility(node.window, ticker, self.market)
                )
                codes = first_failure(codes, np.where(flat, code, NO_FAILURE))
            sigmas[:, column] = np.where(holding & (values > 0.0), values, 1.0)
        return sigmas, codes

    def _inverse_volatility(
        self, node: WeightInverseVolatility, sessions: SessionIndex
    ) -> SessionAllocation:
        children = node.children
        m = sessions.size
        if len(children) == 1:
            only = self.evaluate(children[0], sessions)
            self.volatility_records[node] = _InverseVolatilityRecord(
                sessions, (describe_block(children[0]),), np.full((m, 1), np.nan), np.ones((m, 1))
            )
            return only
        allocations = [self.evaluate(child, sessions) for child in children]
        if any(isinstance(child, Asset) for child in children):
            return self._inverse_volatility_of_tickers(node, sessions, allocations)
        sigma_of_child = np.empty((m, len(children)))
        codes = no_failures(m)
        for column, allocation in enumerate(allocations):
            sigmas, sigma_codes = self._sigmas(node, allocation, sessions)
            codes = first_failure(codes, first_failure(allocation.failures, sigma_codes))
            held = allocation.weights * (allocation.weights > 0.0)
            totals = held.sum(axis=1)
            safe_totals = np.where(totals > 0.0, totals, 1.0)
            sigma_of_child[:, column] = (held * sigmas).sum(axis=1) / safe_totals
        usable = (codes[:, None] == NO_FAILURE) & (sigma_of_child > 0.0)
        inverse = np.divide(1.0, sigma_of_child, out=np.zeros_like(sigma_of_child), where=usable)
        row_totals = inverse.sum(axis=1, keepdims=True)
        weights = np.divide(inverse, row_totals, out=np.zeros_like(inverse), where=row_totals > 0)
        labels = tuple(describe_block(child) for child in children)
        self.volatility_records[node] = _InverseVolatilityRecord(
            sessions, labels, sigma_of_child, weights
        )
        parts = [WeightedPart(weights[:, i], allocations[i]) for i in range(len(children))]
        return combine(sessions, parts, failures=codes)

    def _inverse_volatility_of_tickers(
        self,
        node: WeightInverseVolatility,
        sessions: SessionIndex,
        allocations: list[SessionAllocation],
    ) -> SessionAllocation:
        """Assets (or assets mixed with blocks): every distinct ticker held by any child gets
        `(1/σ_t) / Σ (1/σ)`; the blocks' internal weights are not used
        (docs/strategy-language.md, weight-inverse-volatility)."""
        union = combine(sessions, [WeightedPart(1.0, a) for a in allocations])
        sigmas, sigma_codes = self._sigmas(node, union, sessions)
        codes = first_failure(union.failures, sigma_codes)
        held = (union.weights > 0.0) & (codes[:, None] == NO_FAILURE)
        inverse = np.where(held, 1.0 / sigmas, 0.0)
        row_totals = inverse.sum(axis=1, keepdims=True)
        weights = np.divide(inverse, row_totals, out=np.zeros_like(inverse), where=row_totals > 0)
        self.volatility_records[node] = _InverseVolatilityRecord(
            sessions, union.tickers, np.where(held, sigmas, np.nan), weights
        )
        return SessionAllocation(sessions, union.tickers, weights, codes)

    def forget_allocations(self) -> None:
        """Drops every node's allocation once the root's is known: the traces, which keep the
        run alive, need only the decision records."""
        self._memo.clear()

    def trace_entries(
        self, body: Block, session: int, indicators: bool = True
    ) -> tuple[TraceEntry, ...]:
        entries: list[TraceEntry] = []
        bar_day = self.market.session_date(session).isoformat() if indicators else None
        self.trace(body, session, bar_day, entries)
        return tuple(entries)

    def trace(
        self, node: Block, session: int, bar_day: str | None, entries: list[TraceEntry]
    ) -> None:
        """Append the decisions of the taken path below `node` at `session`, each condition's
        and ranking's indicator values too unless `bar_day` is None."""
        self._trace_all((node,), session, bar_day, entries)

    def _trace_all(
        self,
        nodes: Iterable[Block],
        session: int,
        bar_day: str | None,
        entries: list[TraceEntry],
    ) -> None:
        """`trace` of each node, dispatched here rather than through `trace`: a path has four
        times more nodes than decisions (groups, equal weights, assets, which have no
        tracer), and a backtest walks a thousand paths per file."""
        tracers = self._trace_by_type
        for node in nodes:
            tracer = tracers.get(type(node))
            if tracer is not None:
                tracer(node, session, bar_day, entries)

    def _trace_children(
        self,
        node: BlockVector | Group | WeightEqual,
        session: int,
        bar_day: str | None,
        entries: list[TraceEntry],
    ) -> None:
        tracers = self._trace_by_type
        for child in self._decisions_under(node):
            tracers[type(child)](child, session, bar_day, entries)

    def _decisions_under(self, node: BlockVector | Group | WeightEqual) -> tuple[Block, ...]:
        """The blocks below `node` that trace a decision (an `if`, a filter, a weighting), in
        walk order, through the vectors, groups and equal weights between them: a path has
        more of those and of assets than decisions, and a backtest walks a thousand paths per
        file, so the blocks in between are stepped over once per node, not at every walk."""
        found = self._decisions.get(node)
        if found is None:
            found = ()
            for child in node.children:
                if isinstance(child, _PASS_THROUGH):
                    found += self._decisions_under(child)
                elif type(child) in self._trace_by_type:
                    found += (child,)
            self._decisions[node] = found
        return found

    def _trace_specified(
        self, node: WeightSpecified, session: int, bar_day: str | None, entries: list[TraceEntry]
    ) -> None:
        chosen = (c for w, c in zip(node.weights, node.children, strict=True) if w > 0.0)
        self._trace_all(chosen, session, bar_day, entries)

    def _trace_if(
        self, node: If, session: int, bar_day: str | None, entries: list[TraceEntry]
    ) -> None:
        record = self.if_records[node]
        row = _rows(record, session)
        taken = bool(record.taken[row])
        condition = node.condition
        if isinstance(condition, BoolLiteral):
            entries.append(
                {
                    "node": "if",
                    "span": span_text(node),
                    "condition": "true" if condition.value else "false",
                    "left": None,
                    "right": None,
                    "branch": "then" if taken else "else",
                }
            )
        else:
            entries.append(
                {
                    "node": "if",
                    "span": span_text(node),
                    "condition": condition.text,
                    "left": float(record.left[row]),
                    "right": float(record.right[row]),
                    "branch": "then" if taken else "else",
                }
            )
            if bar_day is not None:
                self._trace_operands(condition, row, record, session, bar_day, entries)
        self.trace(node.then if taken else node.otherwise, session, bar_day, entries)

    def _trace_operands(
        self,
        condition: Comparison,
        row: int,
        record: _IfRecord,
        session: int,
        bar_day: str,
        entries: list[TraceEntry],
    ) -> None:
        for operand, value in (
            (condition.left, record.left[row]),
            (condition.right, record.right[row]),
        ):
            if isinstance(operand, IndicatorCall):
                entries.append(
                    self._indicator_entry(
                        operand.span,
                        operand.ticker,
                        operand.indicator,
                        operand.window,
                        float(value),
                        session,
                        bar_day,
                    )
                )

    def _indicator_entry(
        self,
        span: Span,
        ticker: str,
        indicator: IndicatorName,
        window: int | None,
        value: float,
        session: int,
        bar_day: str,
    ) -> TraceEntry:
        return {
            "node": "indicator",
            "span": f"{span.line}:{span.column}",
            "ticker": ticker,
            "indicator": indicator,
            "window": window,
            "value": value,
            "as_of": bar_day,
            "bars_used": self.market.bars_used(ticker, indicator, window, session),
        }

    def _trace_filter(
        self, node: Filter, session: int, bar_day: str | None, entries: list[TraceEntry]
    ) -> None:
        record = self.filter_records[node]
        row = _rows(record, session)
        selected = record.selected[row]
        candidates: list[TraceEntry] = []
        for column, label in enumerate(record.labels):
            candidate: TraceEntry = {"candidate": label}
            if record.scores is not None:
                candidate["score"] = float(record.scores[row, column])
            candidates.append(candidate)
        window = "" if node.rank.window is None else f" {node.rank.window}"
        entries.append(
            {
                "node": "filter",
                "span": span_text(node),
                "rank": f"{node.rank.indicator}{window}",
                "select": f"{node.select} {node.count}",
                "candidates": candidates,
                "selected": [
                    label for label, chosen in zip(record.labels, selected, strict=True) if chosen
                ],
            }
        )
        asset_form = all(isinstance(child, Asset) for child in node.children)
        if bar_day is not None and record.scores is not None:
            scored = (
                record.labels
                if asset_form
                else [child.ticker if isinstance(child, Asset) else None for child in node.children]
            )
            for column, ticker in enumerate(scored):
                if ticker is not None:
                    entries.append(
                        self._indicator_entry(
                            node.rank.span,
                            ticker,
                            node.rank.indicator,
                            node.rank.window,
                            float(record.scores[row, column]),
                            session,
                            bar_day,
                        )
                    )
        if asset_form:
            return
        winners = (c for c, chosen in zip(node.children, selected, strict=True) if chosen)
        self._trace_all(winners, session, bar_day, entries)

    def _trace_inverse_volatility(
        self,
        node: WeightInverseVolatility,
        session: int,
        bar_day: str | None,
        entries: list[TraceEntry],
    ) -> None:
        record = self.volatility_records[node]
        row = _rows(record, session)
        children: list[TraceEntry] = []
        for column, label in enumerate(record.labels):
            weight = float(record.weights[row, column])
            sigma = float(record.sigmas[row, column])
            if weight > 0.0:
                children.append(
                    {"child": label, "sigma": None if np.isnan(sigma) else sigma, "weight": weight}
                )
        entries.append(
            {
                "node": "weight-inverse-volatility",
                "span": span_text(node),
                "window": node.window,
                "children": children,
            }
        )
        self._trace_all(node.children, session, bar_day, entries)


def _weights_at(allocation: SessionAllocation, row: int, strategy: str) -> dict[str, float]:
    # The row as Python floats at once (`tolist`): comparing and converting numpy scalars one by
    # one cost more, for every ticker of every session a backtest evaluates.
    weights = {
        ticker: weight
        for ticker, weight in zip(allocation.tickers, allocation.weights[row].tolist(), strict=True)
        if weight > 0.0
    }
    total = sum(weights.values())
    if not weights or abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
        raise AssertionError(f"{strategy}: weights sum to {total!r}, not 1: {weights}")
    return weights


def evaluate_symphony(
    symphony: Symphony,
    bars: BarSnapshot,
    as_of: Sequence[date],
    *,
    trace: bool = True,
    market: MarketSeries | None = None,
) -> list[Evaluation]:
    """The allocation (or the error) of `symphony` at each as-of date, in the order given.

    Pure: reads only `bars`. The as-of bar of a date is the last session on or before it.
    Several files evaluated against the same bars can share `market` (a `MarketSeries` of
    `bars`) so each indicator series is computed once for all of them.
    """
    if market is None:
        market = MarketSeries(bars)
    elif market.bars is not bars:
        raise ValueError("market must wrap the same BarSnapshot as bars")
    run = _Run(symphony, market)
    strategy = symphony.file_name
    # Each date's session (as `BarSnapshot.index_of` finds it) and, below, its row in one search
    # each, not one per date: a backtest evaluates every session of the bars for every file.
    days = np.array([np.datetime64(day, "D") for day in as_of], dtype="datetime64[D]")
    found = np.searchsorted(bars.sessions, days, side="right") - 1
    session_of: list[int | BarDataError] = []
    for day, index in zip(as_of, found.tolist(), strict=True):
        try:
            session_of.append(index if index >= 0 else bars.index_of(day))
        except BarDataError as problem:
            session_of.append(problem)
    known = np.array([s for s in session_of if isinstance(s, int)], dtype=np.int64)
    result = run.evaluate(symphony.body, np.unique(known))
    run.forget_allocations()
    rows = result.rows_of(known).tolist()
    codes = result.failures[rows].tolist()
    located = iter(zip(rows, codes, strict=True))
    evaluations: list[Evaluation] = []
    for day, session in zip(as_of, session_of, strict=True):
        if isinstance(session, BarDataError):
            error = DslEvaluationError(
                strategy,
                symphony.body.span.line,
                symphony.body.span.column,
                f"{session}; choose a later as-of date or load older bars",
                strategy=strategy,
                as_of=day,
            )
            evaluations.append(Evaluation(strategy, day, None, error, None))
            continue
        row, code = next(located)
        if code != NO_FAILURE:
            error = run.failures.error(code, file=strategy, session=session, as_of=day)
            evaluations.append(Evaluation(strategy, day, None, error, None))
            continue
        decision_trace = None
        if trace:
            decision_trace = DecisionTrace(partial(run.trace_entries, symphony.body, session))
        weights = _weights_at(result, row, strategy)
        evaluations.append(Evaluation(strategy, day, weights, None, decision_trace))
    return evaluations
