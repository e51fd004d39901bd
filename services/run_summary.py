"""The tables `alchemiser run` ends with — signals, plan, orders and fills, portfolio — drawn
from the same report model as the email, so the console and the email never disagree."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path

from services.notify.formatting import money, percent, quantity, signed_money
from services.notify.rendering import DRY_RUN_LABEL
from services.notify.report import (
    SYNTHETIC_LABEL,
    VALUATION_NOTE,
    ReportError,
    WorkflowReport,
    build_report,
)
from services.strategy.workflow_status import WorkflowView
from shared.decimal_places import Places, shown
from shared.events import Event


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)
    ]
    line = "  ".join(f"{{:<{width}}}" for width in widths)
    return [
        ("  " + line.format(*cells)).rstrip()
        for cells in (headers, ["-" * width for width in widths], *rows)
    ]


def summary_lines(
    view: WorkflowView, events: Sequence[Event], report_files: tuple[Path, Path] | None = None
) -> Iterator[str]:
    """The run's summary; `report_files` are where `alchemiser run` wrote its email, when it
    did (`alchemiser trigger --wait` writes none)."""
    elapsed = (
        f" in {(view.finished_at - view.started_at).total_seconds():.1f} s"
        if view.finished_at and view.started_at
        else ""
    )
    kind = "Dry run" if view.dry_run else "Workflow"
    yield f"{kind} {view.id} (account {view.account_id}): {view.status.upper()}{elapsed}"
    if view.dry_run:
        yield f"  {DRY_RUN_LABEL}"
    if view.failure_reason:
        yield f"  reason: {view.failure_reason}"
    try:
        report = build_report(events)
    except ReportError as error:
        yield f"  no report: {error}"
        return
    if report.synthetic_data:
        yield f"  bars: {SYNTHETIC_LABEL}"
    yield from _signals(report)
    yield from _plan(report)
    yield from _preview(report)
    yield from _orders(report)
    yield from _portfolio(report)
    if report_files is not None:
        html, text = report_files
        yield ""
        yield f"Email written to {html} and {text}"


def _signals(report: WorkflowReport) -> Iterator[str]:
    if not report.strategies:
        return
    yield ""
    yield "Signals"
    rows = [
        [
            strategy.strategy,
            percent(strategy.weight),
            ", ".join(f"{symbol} {percent(weight)}" for symbol, weight in strategy.allocation),
        ]
        for strategy in report.strategies
    ]
    rows.append(
        ["consolidated", "", ", ".join(f"{s} {percent(w)}" for s, w in report.consolidated)]
    )
    yield from table(["strategy", "weight", "allocation"], rows)


def _plan(report: WorkflowReport) -> Iterator[str]:
    if not report.plan:
        return
    yield ""
    yield "Plan"
    yield from table(
        ["symbol", "action", "target", "current", "target $", "current $", "trade $", "why"],
        [
            [
                row.symbol,
                row.action,
                percent(row.target_weight),
                percent(row.current_weight),
                money(row.target_value),
                money(row.current_value),
                signed_money(row.trade_amount),
                row.note or "",
            ]
            for row in report.plan
        ],
    )


def _preview(report: WorkflowReport) -> Iterator[str]:
    preview = report.preview
    if preview is None:
        return
    yield ""
    yield (
        f"Orders previewed (none sent): {len(preview.orders)}, "
        f"about {money(preview.estimated_total)}"
    )
    if preview.orders:
        yield from table(
            ["symbol", "side", "qty", "type", "limit", "about", "bid", "ask", "client order id"],
            [
                [
                    order.symbol,
                    order.side,
                    shown(order.qty, Places.QUANTITY),
                    order.order_type,
                    _price(order.limit_price),
                    money(order.estimated_notional),
                    _price(order.quote.bid if order.quote else None),
                    _price(order.quote.ask if order.quote else None),
                    order.client_order_id,
                ]
                for order in preview.orders
            ],
        )
    for skipped in preview.skipped:
        yield f"  would skip {skipped.action} {skipped.symbol}: {skipped.reason}"
    for stale in preview.stale_orders:
        yield (
            f"  would first cancel {stale.side} {stale.symbol} {stale.client_order_id}, "
            "left open by an earlier run"
        )


def _price(value: Decimal | None) -> str:
    """A price as the broker takes it: the cents, or 4 decimals under $1."""
    return "—" if value is None else shown(value, Places.PRICE)


def _orders(report: WorkflowReport) -> Iterator[str]:
    execution = report.execution
    if execution is None:
        return
    yield ""
    yield (
        f"Orders: {execution.orders_succeeded}/{execution.orders_placed} filled, "
        f"traded {money(execution.total_trade_value)}"
    )
    if execution.orders:
        yield from table(
            ["symbol", "side", "asked", "filled", "avg price", "status", "attempts"],
            [
                [
                    order.symbol,
                    order.side,
                    quantity(order.requested_qty),
                    quantity(order.filled_qty),
                    money(order.avg_fill_price),
                    order.final_status,
                    str(order.attempts),
                ]
                for order in execution.orders
            ],
        )
    for skipped in execution.skipped:
        yield f"  skipped {skipped.side} {skipped.symbol}: {skipped.reason}"


def _portfolio(report: WorkflowReport) -> Iterator[str]:
    portfolio = report.portfolio
    if portfolio is None:
        return
    yield ""
    yield (
        f"Portfolio: {money(portfolio.total_before)} before, "
        f"{money(portfolio.total_after) if portfolio.after_known else 'unknown'} after; "
        f"cash {money(portfolio.cash_before)} -> {money(portfolio.cash_after)}"
    )
    yield f"  {VALUATION_NOTE}"
    if portfolio.holdings:
        yield from table(
            ["symbol", "qty before", "value before", "qty after", "value after", "weight"],
            [
                [
                    row.symbol,
                    quantity(row.qty_before),
                    money(row.value_before),
                    quantity(row.qty_after),
                    money(row.value_after),
                    percent(row.weight_after),
                ]
                for row in portfolio.holdings
            ],
        )
