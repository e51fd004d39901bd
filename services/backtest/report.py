"""The backtest's HTML report: one self-contained page that opens offline.

Everything the page needs is inside it: the chart library (uPlot, vendored under `vendor/` and
shipped as package data) and its style sheet are inlined, the figures travel as JSON in the
page, and nothing is fetched from anywhere, so the file can be mailed, archived or opened on a
machine without network access. Tables are rendered here, so the numbers read without
JavaScript; only the charts are drawn in the browser.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any, TextIO

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from pydantic import JsonValue

from services.backtest import metrics
from services.backtest.metrics import Curve, Metric
from services.backtest.result import BacktestResult, EquityPoint, Rebalance
from services.notify import formatting
from services.notify.rendering import step_text
from services.notify.report import TraceLine

METRIC_ROWS: tuple[tuple[str, str, str], ...] = (
    ("total_return", "Total return", "return"),
    ("cagr", "CAGR", "return"),
    ("volatility", "Volatility (annualised)", "fraction"),
    ("sharpe", "Sharpe ratio", "ratio"),
    ("sortino", "Sortino ratio", "ratio"),
    ("max_drawdown", "Max drawdown", "fraction"),
    ("max_drawdown_days", "Longest drawdown (sessions)", "count"),
    ("calmar", "Calmar ratio", "ratio"),
    ("best_day", "Best day", "return"),
    ("worst_day", "Worst day", "return"),
    ("win_rate_days", "Days up", "fraction"),
    ("return_1m", "Last month", "return"),
    ("return_3m", "Last 3 months", "return"),
    ("return_1y", "Last 12 months", "return"),
    ("time_in_market", "Time in market", "fraction"),
    ("turnover", "Turnover per year (×)", "ratio"),
    ("rebalance_count", "Rebalances", "count"),
    ("cost_drag", "Cost drag (CAGR)", "fraction"),
)
"""The metrics table's rows: key, label and how the value reads (a return is a fraction
coloured by its sign)."""

RELATIVE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("beta", "Beta", "ratio"),
    ("alpha", "Alpha (annualised)", "return"),
    ("correlation", "Correlation", "ratio"),
    ("r_squared", "R²", "ratio"),
    ("tracking_error", "Tracking error", "fraction"),
    ("information_ratio", "Information ratio", "ratio"),
)

HEAT_FULL_SCALE = 0.10
"""A monthly return of ±10 % or more gets the heatmap's strongest colour."""

_WHITE = (255, 255, 255)
_GAIN = (99, 190, 123)
_LOSS = (248, 105, 107)
"""At full strength both still give the page's dark text a contrast ratio above 4.5."""


def write_report(result: BacktestResult, *pages: TextIO) -> None:
    """The page, written to each of `pages` as it is rendered: its ledger of every rebalance's
    decision paths is tens of megabytes for ten files, so neither the page nor the ledger is
    held whole. The template's `ledger_entry` macro renders one rebalance into one piece of
    the stream: a ledger of ten files has over a million pieces, and streaming each one on its
    own cost more than rendering it."""
    curve = _curve(result.equity)
    stream = (
        templates()
        .get_template("report.html.j2")
        .stream(
            result=result,
            first=result.equity[0].date,
            last=result.equity[-1].date,
            metric_rows=METRIC_ROWS,
            relative_rows=RELATIVE_ROWS,
            heatmap=_heatmap(curve),
            ledger=_Ledger(result.rebalances),
            chart_data=_chart_data(result, curve),
            uplot_js=_vendored("uPlot.iife.min.js"),
            uplot_css=_vendored("uPlot.min.css"),
        )
    )
    for text in stream:
        for page in pages:
            page.write(text)


@cache
def templates() -> Environment:
    environment = Environment(
        loader=PackageLoader("services.backtest", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(
        metric=metric_text,
        money=formatting.money,
        qty=formatting.quantity,
        signed=_sign_class,
        option=_option_text,
    )
    return environment


def metric_text(value: Metric, kind: str) -> str:
    """A statistic as the report prints it: a fraction or a return as a percentage with two
    decimals, a ratio with two decimals, a count as a whole number; no value as a dash."""
    if value is None or not math.isfinite(value):
        return formatting.MISSING
    if kind in ("fraction", "return"):
        return f"{value * 100:,.2f}%"
    if kind == "ratio":
        return f"{value:,.2f}"
    return f"{value:,.0f}"


def _option_text(value: JsonValue) -> str:
    if value is None:
        return formatting.MISSING
    if isinstance(value, list):
        return ", ".join(_option_text(item) for item in value) or formatting.MISSING
    return str(value)


def _sign_class(value: Metric) -> str:
    if value is None or value == 0:
        return ""
    return "gain" if value > 0 else "loss"


def _curve(points: Sequence[EquityPoint]) -> Curve:
    return Curve.of([point.date for point in points], [point.value for point in points])


def _heat(value: float | None) -> str:
    if value is None:
        return ""
    strength = min(abs(value) / HEAT_FULL_SCALE, 1.0)
    target = _GAIN if value > 0 else _LOSS
    red, green, blue = (round(w + (t - w) * strength) for w, t in zip(_WHITE, target, strict=True))
    return f"background-color: rgb({red}, {green}, {blue})"


def _heatmap(curve: Curve) -> list[dict[str, object]]:
    """One row per year: each month's return with its cell colour, and the year's return."""
    monthly = metrics.monthly_returns(curve)
    rows = []
    for year, total in metrics.yearly_returns(curve).items():
        months = [monthly.get((year, month)) for month in range(1, 13)]
        rows.append(
            {
                "year": year,
                "months": [(value, _heat(value)) for value in months],
                "total": (total, _heat(total)),
            }
        )
    return rows


class _Ledger:
    """The ledger's entries, made one at a time as the page is written."""

    def __init__(self, rebalances: Sequence[Rebalance]) -> None:
        self._rebalances = rebalances

    def __len__(self) -> int:
        return len(self._rebalances)

    def __iter__(self) -> Iterator[dict[str, object]]:
        return map(_ledger_entry, self._rebalances)


def _ledger_entry(rebalance: Rebalance) -> dict[str, object]:
    return {
        "rebalance": rebalance,
        "traded": sum((order.value for order in rebalance.orders), Decimal(0)),
        "decision": rebalance.decision.lines(),
    }


def step_words(step: Mapping[str, Any]) -> str:
    """The decision step (a `DecisionStep`'s fields) in the words of the trading report's email,
    so a backtest's "why" reads like the live one's."""
    # `_make` from a tuple in field order: a third of the keyword constructor's time, for
    # 200,000 steps in a report of ten files.
    return step_text(
        TraceLine._make(
            (
                step["kind"],
                step["span"],
                step["condition"],
                step["branch"],
                tuple(step["values"].items()),
                tuple(step["selected"]),
            )
        )
    )


def _timestamp(day: date) -> int:
    """uPlot's x values: seconds since the epoch at the session date's UTC midnight."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _aligned(dates: Sequence[date], points: Sequence[EquityPoint]) -> list[float | None]:
    by_date = {point.date: float(point.value) for point in points}
    return [by_date.get(day) for day in dates]


def _chart_data(result: BacktestResult, curve: Curve) -> dict[str, object]:
    """Every series the page draws, on the portfolio's sessions."""
    dates = curve.dates
    equity: list[dict[str, object]] = [
        {"label": "Portfolio", "kind": "portfolio", "values": [float(v) for v in curve.values]}
    ]
    equity += [
        {"label": symbol, "kind": "benchmark", "values": _aligned(dates, run.equity)}
        for symbol, run in result.benchmarks.items()
    ]
    equity += [
        {"label": name, "kind": "strategy", "values": _aligned(dates, run.equity)}
        for name, run in result.strategies.items()
    ]
    yearly = metrics.yearly_returns(curve)
    return {
        "dates": [_timestamp(day) for day in dates],
        "equity": equity,
        "drawdown": [-float(v) for v in metrics.drawdowns(curve)],
        "rollingSharpe": metrics.rolling_sharpe(curve),
        "rollingSessions": metrics.ROLLING_SHARPE_SESSIONS,
        "years": list(yearly),
        "yearly": list(yearly.values()),
        "allocation": _allocation(result),
    }


def _allocation(result: BacktestResult) -> dict[str, object]:
    """The holdings stacked from 0 to 1, cash on top. Each band carries its own weights (for
    the legend) and its upper edge (what is drawn); the largest holdings sit at the bottom."""
    points = result.allocations
    totals: dict[str, float] = {}
    for point in points:
        for symbol, weight in point.weights.items():
            totals[symbol] = totals.get(symbol, 0.0) + weight
    symbols = sorted(totals, key=lambda symbol: (-totals[symbol], symbol))
    bands: list[dict[str, object]] = []
    edge = [0.0] * len(points)
    for symbol in symbols:
        weights = [point.weights.get(symbol, 0.0) for point in points]
        edge = [low + weight for low, weight in zip(edge, weights, strict=True)]
        bands.append({"label": symbol, "weights": weights, "edge": edge})
    cash = [max(0.0, 1.0 - invested) for invested in edge]
    bands.append({"label": "Cash", "weights": cash, "edge": [1.0] * len(points)})
    return {"dates": [_timestamp(point.date) for point in points], "bands": bands}


def _vendored(name: str) -> str:
    return resources.files("services.backtest").joinpath("vendor", name).read_text("utf-8")
