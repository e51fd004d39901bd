"""One rendering path for a workflow's report: subject, HTML and plain text
(docs/trading-rules.md, Subjects / Report contents), used alike by the email, the webhook and the
files `alchemiser run` writes.

Templates run with `StrictUndefined`, so a missing field raises instead of printing an empty cell;
any failure while building or rendering the report falls back to the minimal report
(docs/trading-rules.md, Minimal report), built without templates, so the owner still hears how the
run ended.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

import structlog
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from services.notify import formatting
from services.notify.report import (
    SYNTHETIC_LABEL,
    VALUATION_NOTE,
    OrderRow,
    TraceLine,
    WorkflowReport,
    build_report,
)
from services.pnl import PnlView
from shared.events import (
    Event,
    TradeExecuted,
    WorkflowCompleted,
    WorkflowStarted,
)
from shared.workflow import step_named, workflow_state

log = structlog.get_logger(__name__)

APP_NAME = "Alchemiser"

RECOMMENDED_ACTIONS: tuple[str, ...] = (
    "Read the logs for the correlation id; alchemiser events --workflow ID lists its events.",
    "Verify broker connectivity and credentials.",
    "Check that the account is active and funded.",
    "Review the strategy configuration and limits.",
    "Check market hours and trading halts.",
    "If it persists, escalate quoting the correlation id.",
)
"""The failure email's list, in order (docs/trading-rules.md, Report contents)."""

_ORDER_STATUSES = {
    "filled": "Filled",
    "partially_filled": "Partial Fill",
    "canceled": "Cancelled",
    "cancelled": "Cancelled",
    "expired": "Expired",
    "rejected": "Rejected",
    "new": "Pending",
    "accepted": "Pending",
    "pending_new": "Pending",
    "requested": "Requested",
    "submitted": "Pending",
    "unplaced": "Not Placed",
}


@dataclass(frozen=True)
class RenderedReport:
    subject: str
    html: str
    text: str
    summary: str
    """A few lines for chat channels (the webhook, apprise), where the whole report is too
    long: the outcome, each trade (side, symbol, dollars traded, status) and the totals."""
    fallback: bool = False
    """True when this is the minimal report sent because the full one could not be rendered."""


DRY_RUN_LABEL = "DRY RUN: nothing was sent to the broker; these are the orders it would send"
"""How every report of a dry run says so (the console, the email, chat)."""


def subject(report: WorkflowReport) -> str:
    dry = "[DRY RUN]" if report.dry_run else ""
    if report.failure is None:
        return f"{dry}[SUCCESS] {APP_NAME} - {report.mode} Trading Report"
    code = f"[{report.failure.code}]" if report.failure.code else ""
    return f"{dry}[FAILURE]{code} {APP_NAME} - {report.mode} Trading Report"


def step_text(step: TraceLine) -> str:
    """One decision step in words: the condition with its operand values and the branch taken,
    the filter's winners with their scores, or the inverse-volatility weights. (The parts are
    joined from lists: a backtest's report words 200,000 steps, and a generator is slower.)"""
    if step.kind == "if":
        operands = ", ".join([f"{name} {formatting.indicator(v)}" for name, v in step.values])
        shown = f" ({operands})" if operands else ""
        return f"if {step.condition or 'condition'}{shown} → {step.branch or 'no'} branch"
    if step.kind == "filter":
        values = dict(step.values)
        winners = step.selected or tuple(values)
        scored = ", ".join(
            [
                f"{symbol} (score {formatting.indicator(values[symbol])})"
                if symbol in values
                else symbol
                for symbol in winners
            ]
        )
        return f"filter selected {scored or 'nothing'}"
    if step.kind == "weight-inverse-volatility":
        weights = ", ".join(
            [
                f"{symbol} {formatting.percent(Decimal(str(v)))}"
                if Decimal(str(v)).is_finite()
                else f"{symbol} n/a"
                for symbol, v in step.values
            ]
        )
        return f"inverse-volatility weights: {weights}"
    details = ", ".join([f"{name} {formatting.indicator(v)}" for name, v in step.values])
    return f"{step.kind}: {details}" if details else step.kind


def strategy_label(strategy: str) -> str:
    """`1-KMLM.clj` reads `1-KMLM` in capitals: the file name without the extension every
    strategy file shares (docs/trading-rules.md, Report contents)."""
    return strategy.removesuffix(".clj").upper()


def order_status(status: str) -> str:
    return _ORDER_STATUSES.get(status.lower(), status.replace("_", " ").capitalize())


def step_name(step: str | None) -> str:
    """`Trade execution (execution service)`: the step in words and the service that runs it,
    so the owner knows whose logs to read."""
    if step is None:
        return formatting.MISSING
    known = step_named(step)
    if known is None:
        return step
    return f"{known.name.replace('_', ' ').capitalize()} ({known.service} service)"


@cache
def templates() -> Environment:
    environment = Environment(
        loader=PackageLoader("services.notify", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(
        money=formatting.money,
        signed_money=formatting.signed_money,
        qty=formatting.quantity,
        pct=formatting.percent,
        ts=formatting.timestamp,
        step_text=step_text,
        step_name=step_name,
        status=order_status,
        strategy_label=strategy_label,
    )
    return environment


def _context_rows(report: WorkflowReport) -> list[tuple[str, str]]:
    """The failure email's execution context; rows with no value are left out
    (docs/trading-rules.md, Report contents)."""
    rows: list[tuple[str, str]] = []
    if report.execution is not None:
        rows.append(("Orders Placed", str(report.execution.orders_placed)))
        rows.append(("Orders Succeeded", str(report.execution.orders_succeeded)))
    rows.append(("Correlation ID", report.workflow_id))
    if report.execution is not None and report.execution.failed_symbols:
        rows.append(("Failed Symbols", ", ".join(report.execution.failed_symbols)))
    return rows


SUMMARY_TRADES = 12
"""Trades named one by one in the chat summary; more are counted on one line."""


def _trade_lines(orders: Sequence[OrderRow]) -> list[str]:
    lines = [
        f"{order.side} {order.symbol} {formatting.money(order.filled_value)} "
        f"({order_status(order.final_status)})"
        for order in orders[:SUMMARY_TRADES]
    ]
    if len(orders) > SUMMARY_TRADES:
        lines.append(f"… and {len(orders) - SUMMARY_TRADES} more order(s) in the email")
    return lines


PNL_NOTE = (
    "P&L from the first lots of the recorded fills (first in, first out), marked at this run's "
    "planning prices; the unattributed line is what no strategy's target owns: the cash "
    "reserve, trades not made in full, trading costs and rounding."
)
"""How the email's P&L was figured, said under it (docs/trading-rules.md, Profit and loss)."""


def _summary(report: WorkflowReport, title: str, neutral: bool, pnl: PnlView | None = None) -> str:
    lines = [f"*{title}* ({formatting.timestamp(report.finished_at)})"]
    if report.synthetic_data:
        lines.append(f"Bars: {SYNTHETIC_LABEL}")
    if report.dry_run:
        lines.append(DRY_RUN_LABEL)
    if report.failure is not None:
        lines.append(f"Failed in {step_name(report.failure.step)}: {report.failure.reason}")
    execution, preview = report.execution, report.preview
    if preview is not None:
        lines.append(f"{len(preview.orders)} order(s) previewed, none sent")
        lines.extend(
            f"would {order.side} {order.symbol} {formatting.quantity(order.qty)} "
            f"~{formatting.money(order.estimated_notional)}"
            for order in preview.orders[:SUMMARY_TRADES]
        )
    elif execution is not None and execution.orders_placed:
        lines.append(
            f"{execution.orders_succeeded} of {execution.orders_placed} order(s) succeeded, "
            f"{formatting.money(execution.total_trade_value)} traded"
        )
    elif report.failure is None:
        lines.append("No rebalancing was required")
    if preview is None:
        lines.extend(
            _trade_lines(execution.orders if execution is not None else report.order_activity)
        )
    if report.portfolio is not None and report.portfolio.after_known and not neutral:
        lines.append(f"Portfolio value {formatting.money(report.portfolio.total_after)}")
    if pnl is not None:
        lines.append(
            f"P&L day {formatting.signed_money(pnl.day_pnl)}, "
            f"total {formatting.signed_money(pnl.pnl)}"
        )
    lines.append(f"Workflow {report.workflow_id}")
    return "\n".join(lines)


def render_report(
    report: WorkflowReport,
    *,
    neutral: bool,
    environment: Environment | None = None,
    pnl: PnlView | None = None,
) -> RenderedReport:
    environment = environment or templates()
    if report.failure is None:
        title, status_text = (
            f"{report.mode} Multi-Strategy Execution Report",
            "Completed Successfully",
        )
    else:
        title, status_text = f"{report.mode} Trading Execution Failed", "Failed"
    if report.dry_run:
        title = f"{title} (Dry Run)"
    variables = {
        "app": APP_NAME,
        "report": report,
        "neutral": neutral,
        "title": title,
        "status_text": status_text,
        "subject": subject(report),
        "context_rows": _context_rows(report),
        "actions": RECOMMENDED_ACTIONS,
        "synthetic_label": SYNTHETIC_LABEL,
        "dry_run_label": DRY_RUN_LABEL,
        "valuation_note": VALUATION_NOTE,
        "pnl": pnl,
        "pnl_note": PNL_NOTE,
    }
    return RenderedReport(
        subject=subject(report),
        html=environment.get_template("report.html.j2").render(variables),
        text=environment.get_template("report.txt.j2").render(variables),
        summary=_summary(report, title, neutral, pnl),
    )


def render_fallback(events: Sequence[Event], *, default_live: bool) -> RenderedReport:
    """The minimal report (docs/trading-rules.md, Minimal report): mode, status, orders placed and
    succeeded, total trade value, correlation id and timestamp, read straight off the events with
    no template."""
    state = workflow_state(events)
    terminal = state.ending if state is not None else None
    executed = next((event for event in events if isinstance(event, TradeExecuted)), None)
    started_live = next(
        (
            event.configuration.live_trading
            for event in events
            if isinstance(event, WorkflowStarted)
        ),
        default_live,
    )
    mode = "LIVE" if started_live else "PAPER"
    succeeded = isinstance(terminal, WorkflowCompleted)
    status = "Completed Successfully" if succeeded else "Failed"
    placed = str(executed.orders_placed) if executed else "0"
    ok = str(executed.orders_succeeded) if executed else "0"
    total = formatting.money(executed.execution_data.total_trade_value if executed else Decimal(0))
    workflow_id = (
        terminal.correlation_id if terminal else (events[0].correlation_id if events else "")
    )
    moment = formatting.timestamp(terminal.occurred_at) if terminal else formatting.MISSING
    rows = [
        ("Mode", mode),
        ("Status", status),
        ("Orders placed", placed),
        ("Orders succeeded", ok),
        ("Total trade value", total),
        ("Correlation ID", workflow_id),
        ("Timestamp", moment),
    ]
    cells = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{html.escape(value)}</td></tr>"
        for label, value in rows
    )
    outcome = "SUCCESS" if succeeded else "FAILURE"
    return RenderedReport(
        subject=f"[{outcome}] {APP_NAME} - {mode} Trading Report",
        html=(
            f"<!DOCTYPE html><html><body><h1>{APP_NAME} {mode} Trading Report</h1>"
            f"<table>{cells}</table><p>The full report could not be rendered; this is the "
            "minimal one. This report is informational and not investment advice.</p>"
            "</body></html>"
        ),
        text=(
            f"Trading execution completed. Success: {succeeded}\n\n"
            + "".join(f"{label}: {value}\n" for label, value in rows)
        ),
        summary=f"*{APP_NAME} {mode} trading report*: {status}, workflow {workflow_id}",
        fallback=True,
    )


def render_workflow(
    events: Sequence[Event],
    *,
    neutral: bool,
    default_live: bool,
    environment: Environment | None = None,
    pnl: PnlView | None = None,
) -> RenderedReport:
    """The full report, or the minimal one when building or rendering the full one fails;
    `pnl` is the account's P&L after the run, when it could be folded."""
    try:
        report = build_report(events, default_live=default_live)
        return render_report(report, neutral=neutral, environment=environment, pnl=pnl)
    except Exception:
        log.exception("report rendering failed; sending the minimal report")
        return render_fallback(events, default_live=default_live)
