"""The business series an operator alerts on (docs/operations.md, Metrics): workflows by status,
orders by outcome, traded value, slippage against the planning price, portfolio value per account
and the last successful run.

Notify keeps them all: it is the one service that sees every ending (execution completes a
workflow, any service may fail it) and reads the finished workflow's whole history, where the
plan's planning prices (portfolio's event) and the fills (execution's) meet, which slippage
needs together. A workflow is counted once, on its first ending, after notify committed its
handling: a redelivery, a second replica or a late failure after a completion counts nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

import structlog
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.registry import Collector

from services.notify.report import OrderRow, build_report
from shared.events import Event, RebalancePlanned, WorkflowCompleted, WorkflowFailed

log = structlog.get_logger(__name__)

BPS = Decimal(10_000)
SLIPPAGE_BUCKETS_BPS = (-50.0, -20.0, -10.0, -5.0, -2.0, 0.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
"""Basis points; positive is a cost (bought above, sold below the planning price). Slippage can
be negative (price improvement), so the histogram has no `_sum` (the client leaves it out when a
bucket is negative) and the dollars are a gauge, which may fall, rather than a counter."""


@dataclass(frozen=True)
class OrderObservation:
    side: str
    outcome: str
    filled_value: Decimal
    slippage: Decimal | None
    """Dollars paid beyond the planning price for the filled shares, positive when it cost
    (bought above, sold below); None without a fill or a planning price."""
    slippage_bps: Decimal | None
    """The same per share, in basis points of the planning price."""


@dataclass(frozen=True)
class RunObservation:
    account_id: str
    status: Literal["completed", "failed"]
    finished_at: datetime
    orders: tuple[OrderObservation, ...]
    portfolio_value: Decimal | None


def first_ending(events: Sequence[Event]) -> WorkflowCompleted | WorkflowFailed | None:
    return next((e for e in events if isinstance(e, WorkflowCompleted | WorkflowFailed)), None)


def planning_prices(events: Sequence[Event]) -> dict[str, Decimal]:
    """Each symbol's planning price: the mid of the quote the plan used
    (docs/trading-rules.md, Planning prices)."""
    plan = next((e for e in events if isinstance(e, RebalancePlanned)), None)
    if plan is None:
        return {}
    mids = {quote.symbol: quote.mid() for quote in plan.snapshot.quotes}
    return {symbol: mid for symbol, mid in mids.items() if mid is not None}


def order_observation(order: OrderRow, prices: dict[str, Decimal]) -> OrderObservation:
    planned = prices.get(order.symbol)
    filled_value = order.filled_value
    if filled_value is None or order.avg_fill_price is None or planned is None:
        return OrderObservation(
            order.side, order.final_status, filled_value or Decimal(0), None, None
        )
    per_share = (
        order.avg_fill_price - planned if order.side == "BUY" else planned - order.avg_fill_price
    )
    return OrderObservation(
        side=order.side,
        outcome=order.final_status,
        filled_value=filled_value,
        slippage=per_share * order.filled_qty,
        slippage_bps=per_share / planned * BPS,
    )


def observe_run(
    events: Sequence[Event], ending: WorkflowCompleted | WorkflowFailed
) -> RunObservation:
    """What one finished workflow adds to the series. When its events do not make a report (the
    same failure that sends the minimal report), only its status and time are observed: a
    metric never costs the owner the report."""
    orders: tuple[OrderObservation, ...] = ()
    value: Decimal | None = None
    try:
        report = build_report(events)
    except Exception:
        log.exception("report unbuildable; the metrics count this run's status only")
        report = None
    if report is not None:
        prices = planning_prices(events)
        rows = report.execution.orders if report.execution is not None else report.order_activity
        skipped = report.execution.skipped if report.execution is not None else ()
        orders = (
            *(order_observation(row, prices) for row in rows),
            *(OrderObservation(row.side, "skipped", Decimal(0), None, None) for row in skipped),
        )
        if report.portfolio is not None:
            portfolio = report.portfolio
            value = portfolio.total_after if portfolio.after_known else portfolio.total_before
    return RunObservation(
        account_id=ending.account_id,
        status="completed" if isinstance(ending, WorkflowCompleted) else "failed",
        finished_at=ending.occurred_at,
        orders=orders,
        portfolio_value=value,
    )


class RunMetrics:
    """The series, unregistered: the service runtime serves them on notify's /metrics."""

    def __init__(self) -> None:
        self.workflows = Counter(
            "alchemiser_workflows_total",
            "Workflows finished, by account and status (completed, failed)",
            ["account", "status"],
            registry=None,
        )
        self.orders = Counter(
            "alchemiser_orders_total",
            "Order chains of finished workflows, by account, side and outcome",
            ["account", "side", "outcome"],
            registry=None,
        )
        self.traded_value = Counter(
            "alchemiser_traded_value_dollars_total",
            "Dollars filled (filled shares at their average fill price), by account and side",
            ["account", "side"],
            registry=None,
        )
        self.slippage = Gauge(
            "alchemiser_slippage_dollars",
            "Net dollars paid beyond the planning price on filled shares since the process "
            "started, by account and side (negative: price improvement)",
            ["account", "side"],
            registry=None,
        )
        self.slippage_bps = Histogram(
            "alchemiser_order_slippage_bps",
            "Average fill against the planning price of each filled order chain, in basis points "
            "(positive: a cost)",
            ["account", "side"],
            buckets=SLIPPAGE_BUCKETS_BPS,
            registry=None,
        )
        self.portfolio_value = Gauge(
            "alchemiser_portfolio_value_dollars",
            "Portfolio value after the account's last finished workflow",
            ["account"],
            registry=None,
        )
        self.last_success = Gauge(
            "alchemiser_last_successful_run_timestamp_seconds",
            "When the account's last completed workflow ended (Unix time)",
            ["account"],
            registry=None,
        )

    @property
    def collectors(self) -> tuple[Collector, ...]:
        return (
            self.workflows,
            self.orders,
            self.traded_value,
            self.slippage,
            self.slippage_bps,
            self.portfolio_value,
            self.last_success,
        )

    def record(self, run: RunObservation) -> None:
        account = run.account_id
        self.workflows.labels(account=account, status=run.status).inc()
        for order in run.orders:
            self.orders.labels(account=account, side=order.side, outcome=order.outcome).inc()
            if order.filled_value:
                self.traded_value.labels(account=account, side=order.side).inc(
                    float(order.filled_value)
                )
            if order.slippage is not None and order.slippage_bps is not None:
                self.slippage.labels(account=account, side=order.side).inc(float(order.slippage))
                self.slippage_bps.labels(account=account, side=order.side).observe(
                    float(order.slippage_bps)
                )
        if run.portfolio_value is not None:
            self.portfolio_value.labels(account=account).set(float(run.portfolio_value))
        if run.status == "completed":
            self.last_success.labels(account=account).set(run.finished_at.timestamp())
