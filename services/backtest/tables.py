"""`alchemiser backtest --format table`: the result as rich tables for a terminal — the metrics
beside the benchmarks', the return of each calendar year, the costs and the timing sensitivity,
then the data warnings. The numbers read as the HTML report prints them."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from services.backtest import metrics
from services.backtest.report import METRIC_ROWS, RELATIVE_ROWS, metric_text
from services.backtest.result import BacktestResult, Run
from services.notify import formatting


def print_tables(result: BacktestResult, console: Console) -> None:
    options = result.parameters.options
    console.print(
        f"[bold]Backtest[/bold] {', '.join(result.parameters.files)}: {options['start']} to "
        f"{options['end']}, rebalance {options['rebalance']}, timing {options['timing']}"
    )
    if result.parameters.synthetic_data:
        console.print("[bold red]Synthetic sample data[/bold red]: not market history.")
    console.print(_metrics_table(result))
    console.print(_yearly_table(result))
    console.print(_costs_table(result))
    console.print(_timing_table(result))
    for warning in result.data_warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)


def _metrics_table(result: BacktestResult) -> Table:
    table = Table(title="Metrics")
    table.add_column("Metric")
    table.add_column("Portfolio", justify="right")
    for symbol in result.benchmarks:
        table.add_column(symbol, justify="right")
    for key, label, kind in METRIC_ROWS:
        benchmarks = [metric_text(run.metrics.get(key), kind) for run in result.benchmarks.values()]
        table.add_row(label, metric_text(result.metrics.get(key), kind), *benchmarks)
    for key, label, kind in RELATIVE_ROWS:
        benchmarks = [metric_text(run.metrics.get(key), kind) for run in result.benchmarks.values()]
        table.add_row(f"{label} (portfolio vs)", "", *benchmarks)
    return table


def _yearly_table(result: BacktestResult) -> Table:
    runs: dict[str, Run] = {"Portfolio": Run(result.metrics, result.equity), **result.benchmarks}
    yearly = {
        name: metrics.yearly_returns(
            metrics.Curve.of([p.date for p in run.equity], [p.value for p in run.equity])
        )
        for name, run in runs.items()
    }
    table = Table(title="Return per calendar year")
    table.add_column("Year")
    for name in runs:
        table.add_column(name, justify="right")
    for year in yearly["Portfolio"]:
        table.add_row(
            str(year), *(metric_text(returns.get(year), "return") for returns in yearly.values())
        )
    return table


def _costs_table(result: BacktestResult) -> Table:
    table = Table(title="Costs")
    table.add_column("Cost")
    table.add_column("Amount", justify="right")
    table.add_row("Slippage", formatting.money(result.costs.slippage))
    table.add_row("Fees", formatting.money(result.costs.fees))
    table.add_row("Total", formatting.money(result.costs.total))
    table.add_row("Cost drag (CAGR)", metric_text(result.metrics.get("cost_drag"), "fraction"))
    return table


def _timing_table(result: BacktestResult) -> Table:
    table = Table(title="Timing sensitivity")
    table.add_column("Timing")
    table.add_column("CAGR", justify="right")
    table.add_column("Max drawdown", justify="right")
    for timing, outcome in result.timing_sensitivity.items():
        table.add_row(
            timing,
            metric_text(outcome.cagr, "return"),
            metric_text(outcome.max_drawdown, "fraction"),
        )
    return table
