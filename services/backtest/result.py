"""What one backtest produced: the object `alchemiser backtest --format json` prints and the
HTML report draws, as one set of frozen dataclasses so the two can never disagree.

`write_json` writes the JSON object of the command's contract (numbers as JSON numbers, dates as
`YYYY-MM-DD`), plus `allocations`, the holdings' weights per session that the report stacks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Literal, TextIO

from pydantic import JsonValue

from services.backtest.metrics import Metric

Timing = Literal["close", "previous-close"]
TIMINGS: tuple[Timing, ...] = ("close", "previous-close")


@dataclass(frozen=True)
class EquityPoint:
    date: date
    value: Decimal
    """The value at the session's close after its trades and costs."""


@dataclass(frozen=True)
class Run:
    """A curve and its statistics: a benchmark's buy and hold, or one strategy file backtested
    on its own."""

    metrics: Mapping[str, Metric]
    equity: tuple[EquityPoint, ...]


@dataclass(frozen=True)
class Order:
    symbol: str
    side: Literal["BUY", "SELL"]
    quantity: Decimal
    price: Decimal
    """The fill price: the close with slippage, not rounded."""
    value: Decimal


@dataclass(frozen=True)
class Costs:
    slippage: Decimal
    """What filling away from the close cost: Σ |fill price − close| × quantity."""
    fees: Decimal

    @property
    def total(self) -> Decimal:
        return self.slippage + self.fees


@dataclass(frozen=True, slots=True)
class DecisionPaths:
    """Per strategy file, the decision path that gave its targets on one session, kept as the
    JSON text the output writes: `{file: [step, …]}`, each step the fields of a `DecisionStep`
    (`kind`, `span`, `condition`, `branch`, `values`, `selected`). A backtest of ten files holds
    about 200 steps per rebalance and a thousand rebalances; as text they take a fifth of the
    memory of step objects, are written out as they are, and the report decodes one rebalance
    at a time.

    Beside it, `lines_text`: the same steps as the report words them, `{file: [[span, words],
    …]}` as JSON text, worded when the path is made. Texts only, it decodes in a quarter of the
    time the steps' numbers take, and the report decoded every step to word it."""

    text: str
    lines_text: str

    @classmethod
    def of(
        cls,
        paths: Mapping[str, Iterable[Mapping[str, Any]]],
        words: Callable[[Mapping[str, Any]], str],
    ) -> DecisionPaths:
        steps = {file: list(file_steps) for file, file_steps in paths.items()}
        lines = {
            file: [[step["span"], words(step)] for step in file_steps]
            for file, file_steps in steps.items()
        }
        return cls(json.dumps(steps, allow_nan=False), json.dumps(lines))

    def lines(self) -> dict[str, list[list[str]]]:
        """Each file's steps as `[span, words]`, in path order."""
        decoded: dict[str, list[list[str]]] = json.loads(self.lines_text)
        return decoded


@dataclass(frozen=True)
class Rebalance:
    date: date
    orders: tuple[Order, ...]
    costs: Costs
    decision: DecisionPaths


@dataclass(frozen=True)
class TimingOutcome:
    cagr: float | None
    max_drawdown: float | None


@dataclass(frozen=True)
class Allocation:
    date: date
    weights: Mapping[str, float]
    """Each holding's value at the session's close over E_i; cash is what they leave of 1."""


@dataclass(frozen=True)
class Parameters:
    options: Mapping[str, JsonValue]
    """Every effective option by its flag's name without dashes (`start`, `capital`,
    `rebalance`, `slippage_bps`, `timing`, `benchmark`, …)."""
    files: Mapping[str, str]
    """Each strategy file's base name and the hash of its text."""
    strategy_files_hash: str
    bars_hash: str
    engine_version: str
    synthetic_data: bool
    """The bars are the generated sample, not market history."""

    def to_json(self) -> dict[str, JsonValue]:
        return {
            **self.options,
            "files": dict(self.files),
            "strategy_files_hash": self.strategy_files_hash,
            "bars_hash": self.bars_hash,
            "engine_version": self.engine_version,
            "synthetic_data": self.synthetic_data,
        }


@dataclass(frozen=True)
class BacktestResult:
    parameters: Parameters
    metrics: Mapping[str, Metric]
    equity: tuple[EquityPoint, ...]
    benchmarks: Mapping[str, Run]
    """By symbol; each run's metrics hold the benchmark's own statistics and the portfolio's
    beta, alpha, correlation, R², tracking error and information ratio against it."""
    strategies: Mapping[str, Run]
    """By file base name: each file backtested on its own."""
    rebalances: tuple[Rebalance, ...]
    costs: Costs
    timing_sensitivity: Mapping[Timing, TimingOutcome]
    data_warnings: tuple[str, ...]
    allocations: tuple[Allocation, ...]

    def write_json(self, out: TextIO) -> None:
        """The JSON object, one rebalance at a time: the decision paths are most of it (tens of
        megabytes for ten files), so it is never built as one document. The text is what
        `json.dumps` gives for the whole object."""
        out.write(_open_object(self._head()) + ', "rebalances": [')
        for number, rebalance in enumerate(self.rebalances):
            if number:
                out.write(", ")
            out.write(_open_object(_rebalance(rebalance)))
            out.write(f', "decision": {rebalance.decision.text}}}')
        out.write("], " + _dumps(self._tail())[1:])

    def _head(self) -> dict[str, JsonValue]:
        return {
            "parameters": self.parameters.to_json(),
            "metrics": dict(self.metrics),
            "equity": _equity(self.equity),
            "benchmarks": {name: _run(run) for name, run in self.benchmarks.items()},
            "strategies": {name: _run(run) for name, run in self.strategies.items()},
        }

    def _tail(self) -> dict[str, JsonValue]:
        return {
            "costs": _costs(self.costs),
            "timing_sensitivity": {
                timing: {"cagr": outcome.cagr, "max_drawdown": outcome.max_drawdown}
                for timing, outcome in self.timing_sensitivity.items()
            },
            "data_warnings": list(self.data_warnings),
            "allocations": [
                {"date": point.date.isoformat(), "weights": dict(point.weights)}
                for point in self.allocations
            ],
        }


def _dumps(value: JsonValue) -> str:
    return json.dumps(value, allow_nan=False)


def _open_object(fields: dict[str, JsonValue]) -> str:
    """A non-empty object's text without its closing brace, for more fields to follow."""
    return _dumps(fields)[:-1]


def _equity(points: tuple[EquityPoint, ...]) -> list[JsonValue]:
    return [{"date": point.date.isoformat(), "value": float(point.value)} for point in points]


def _run(run: Run) -> dict[str, JsonValue]:
    return {"metrics": dict(run.metrics), "equity": _equity(run.equity)}


def _costs(costs: Costs) -> dict[str, JsonValue]:
    return {"slippage": float(costs.slippage), "fees": float(costs.fees)}


def _rebalance(rebalance: Rebalance) -> dict[str, JsonValue]:
    """A rebalance's fields before its decision paths, which `write_json` adds as text."""
    return {
        "date": rebalance.date.isoformat(),
        "orders": [
            {
                "symbol": order.symbol,
                "side": order.side,
                "quantity": float(order.quantity),
                "price": float(order.price),
                "value": float(order.value),
            }
            for order in rebalance.orders
        ],
        "costs": _costs(rebalance.costs),
    }
