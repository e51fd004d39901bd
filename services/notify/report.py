"""The report of one workflow, built from its recorded events alone
(docs/trading-rules.md, Report contents).

Pure: no I/O, no clock, no settings object. The same events always give the same report, so the
email, the webhook post and the `out/<workflow>.html` file of `alchemiser run` say the same thing,
and a report can be rebuilt from the store at any time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Literal, TypeVar

from shared.events import (
    DecisionStep,
    Event,
    NotificationSent,
    OpenOrder,
    OrderCancelled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderRequested,
    OrderSubmitted,
    RebalancePlanned,
    SignalGenerated,
    TradeExecuted,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowStarted,
)
from shared.workflow import workflow_state

Outcome = Literal["success", "failure"]
E = TypeVar("E", bound=Event)


class ReportError(ValueError):
    """The events do not describe a finished workflow; the message names what is missing."""


@dataclass(frozen=True)
class TraceLine:
    """One step of a strategy's decision path, ready to print."""

    kind: str
    span: str | None
    condition: str | None
    branch: str | None
    values: tuple[tuple[str, float], ...]
    selected: tuple[str, ...]


@dataclass(frozen=True)
class StrategyReport:
    strategy: str
    weight: Decimal
    allocation: tuple[tuple[str, Decimal], ...]
    trace: tuple[TraceLine, ...]
    trace_truncated: bool


@dataclass(frozen=True)
class PlanRow:
    symbol: str
    action: str
    target_weight: Decimal
    current_weight: Decimal
    target_value: Decimal
    current_value: Decimal
    trade_amount: Decimal


@dataclass(frozen=True)
class OrderRow:
    symbol: str
    side: str
    requested_qty: Decimal
    filled_qty: Decimal
    avg_fill_price: Decimal | None
    final_status: str
    attempts: int
    success: bool
    error_message: str | None

    @property
    def filled_value(self) -> Decimal | None:
        """Dollars traded: the filled shares at their average fill price; None when nothing
        filled."""
        if self.avg_fill_price is None or self.filled_qty.is_zero():
            return None
        return self.filled_qty * self.avg_fill_price


@dataclass(frozen=True)
class SkippedRow:
    symbol: str
    side: str
    reason: str


@dataclass(frozen=True)
class HoldingRow:
    """One symbol held before or after the run, with its value at the price used for it."""

    symbol: str
    qty_before: Decimal
    value_before: Decimal
    qty_after: Decimal
    value_after: Decimal
    weight_after: Decimal | None


@dataclass(frozen=True)
class Portfolio:
    """Before = the plan's snapshot; after = before plus the recorded fills, a position that
    traded valued at its average fill price, one that did not at its snapshot market value, so
    a run without fills ends where it started (no new quote is asked for: the report only says
    what the events say)."""

    holdings: tuple[HoldingRow, ...]
    cash_before: Decimal
    cash_after: Decimal
    total_before: Decimal
    total_after: Decimal
    after_known: bool
    """False when no `TradeExecuted` was recorded, so the fills are unknown."""


@dataclass(frozen=True)
class Failure:
    reason: str
    step: str
    deadline_exceeded: bool
    stalled_step: str | None
    code: str | None
    """The error catalogue code (docs/trading-rules.md, Error codes) the failure maps to, for the
    subject line."""


@dataclass(frozen=True)
class Execution:
    orders_placed: int
    orders_succeeded: int
    total_trade_value: Decimal
    failed_symbols: tuple[str, ...]
    orders: tuple[OrderRow, ...]
    skipped: tuple[SkippedRow, ...]


@dataclass(frozen=True)
class WorkflowReport:
    workflow_id: str
    account_id: str
    mode: Literal["PAPER", "LIVE"]
    outcome: Outcome
    finished_at: datetime
    trading_date: date | None
    strategies: tuple[StrategyReport, ...]
    consolidated: tuple[tuple[str, Decimal], ...]
    plan: tuple[PlanRow, ...] | None
    trades_required: bool
    execution: Execution | None
    portfolio: Portfolio | None
    foreign_open_orders: tuple[OpenOrder, ...]
    failure: Failure | None
    order_activity: tuple[OrderRow, ...] = ()
    """Orders as the per-order events recorded them, when the workflow ended without a
    `TradeExecuted` (execution failed or stalled mid-way): what reached the broker."""

    @property
    def succeeded(self) -> bool:
        return self.outcome == "success"


def channels_notified(events: Sequence[Event]) -> frozenset[tuple[str, str | None]]:
    """(channel, target) pairs that already have their one `NotificationSent` for this
    workflow: each apprise URL is notified once, like the email and the webhook."""
    return frozenset(
        (event.channel, event.target) for event in events if isinstance(event, NotificationSent)
    )


def build_report(events: Sequence[Event], *, default_live: bool = False) -> WorkflowReport:
    """The report of a finished workflow. `default_live` gives the mode only when the
    workflow's `WorkflowStarted` is missing from the events."""
    state = workflow_state(events)
    terminal = state.ending if state is not None else None
    if terminal is None:
        raise ReportError("the workflow has neither WorkflowCompleted nor WorkflowFailed yet")
    started = _first(events, WorkflowStarted)
    signal = _first(events, SignalGenerated)
    planned = _first(events, RebalancePlanned)
    executed = _first(events, TradeExecuted)
    live = started.configuration.live_trading if started is not None else default_live
    return WorkflowReport(
        workflow_id=terminal.correlation_id,
        account_id=terminal.account_id,
        mode="LIVE" if live else "PAPER",
        outcome="success" if isinstance(terminal, WorkflowCompleted) else "failure",
        finished_at=terminal.occurred_at,
        trading_date=started.trading_date if started is not None else None,
        strategies=_strategies(signal),
        consolidated=_sorted_weights(
            signal.consolidated_portfolio.target_allocations if signal is not None else {}
        ),
        plan=_plan(planned),
        trades_required=planned.trades_required if planned is not None else False,
        execution=_execution(executed),
        portfolio=_portfolio(planned, executed),
        foreign_open_orders=_foreign_orders(planned, executed),
        failure=_failure(terminal, [e.reason for e in events if isinstance(e, OrderRejected)]),
        order_activity=_order_activity(events) if executed is None else (),
    )


def _first(events: Sequence[Event], kind: type[E]) -> E | None:
    for event in events:
        if isinstance(event, kind):
            return event
    return None


def _sorted_weights(weights: dict[str, Decimal]) -> tuple[tuple[str, Decimal], ...]:
    return tuple(sorted(weights.items(), key=lambda item: (-item[1], item[0])))


def _strategies(signal: SignalGenerated | None) -> tuple[StrategyReport, ...]:
    if signal is None:
        return ()
    return tuple(
        StrategyReport(
            strategy=item.strategy,
            weight=item.weight,
            allocation=_sorted_weights(item.allocation),
            trace=tuple(_trace_line(step) for step in item.trace),
            trace_truncated=item.trace_truncated,
        )
        for item in signal.strategies
    )


def _trace_line(step: DecisionStep) -> TraceLine:
    return TraceLine(
        kind=step.kind,
        span=step.span,
        condition=step.condition,
        branch=step.branch,
        values=tuple(step.values.items()),
        selected=step.selected,
    )


def _plan(planned: RebalancePlanned | None) -> tuple[PlanRow, ...] | None:
    if planned is None:
        return None
    return tuple(
        PlanRow(
            symbol=item.symbol,
            action=item.action,
            target_weight=item.target_weight,
            current_weight=item.current_weight,
            target_value=item.target_value,
            current_value=item.current_value,
            trade_amount=item.trade_amount,
        )
        for item in sorted(planned.items, key=lambda item: item.symbol)
    )


def _execution(executed: TradeExecuted | None) -> Execution | None:
    if executed is None:
        return None
    data = executed.execution_data
    return Execution(
        orders_placed=executed.orders_placed,
        orders_succeeded=executed.orders_succeeded,
        total_trade_value=data.total_trade_value,
        failed_symbols=executed.failed_symbols,
        orders=tuple(
            OrderRow(
                symbol=order.symbol,
                side=order.action,
                requested_qty=order.requested_qty,
                filled_qty=order.filled_qty,
                avg_fill_price=order.avg_fill_price,
                final_status=order.final_status,
                attempts=len(order.attempts),
                success=order.success,
                error_message=order.error_message,
            )
            for order in data.orders
        ),
        skipped=tuple(
            SkippedRow(symbol=item.symbol, side=item.action, reason=item.reason)
            for item in executed.skipped
        ),
    )


@dataclass
class _Chain:
    """One symbol's orders on one side, folded from its per-order events."""

    requested_qty: Decimal | None = None
    attempts: int = 0
    status: str = "requested"
    error: str | None = None
    fills: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    """Per client order id, the broker order's cumulative fill and its average price."""


def _order_activity(events: Sequence[Event]) -> tuple[OrderRow, ...]:
    chains: dict[tuple[str, str], _Chain] = {}
    for event in events:
        if not isinstance(event, OrderEvent):
            continue
        chain = chains.setdefault((event.symbol, event.side), _Chain())
        if isinstance(event, OrderRequested):
            chain.attempts += 1
            chain.requested_qty = chain.requested_qty or event.qty
            chain.status = "requested"
        elif isinstance(event, OrderSubmitted):
            chain.status = "submitted"
        elif isinstance(event, OrderFilled):
            chain.fills[event.client_order_id] = (event.filled_qty, event.avg_fill_price)
            chain.status = "filled" if event.complete else "partially_filled"
        elif isinstance(event, OrderCancelled):
            chain.status = "canceled"
        elif isinstance(event, OrderRejected):
            chain.status, chain.error = "rejected", event.reason
    rows = []
    for (symbol, side), chain in chains.items():
        fills = list(chain.fills.values())
        filled = sum((qty for qty, _ in fills), Decimal(0))
        cost = sum((qty * price for qty, price in fills), Decimal(0))
        rows.append(
            OrderRow(
                symbol=symbol,
                side=side,
                requested_qty=chain.requested_qty or Decimal(0),
                filled_qty=filled,
                avg_fill_price=(cost / filled).quantize(Decimal("0.0001")) if filled else None,
                final_status=chain.status,
                attempts=chain.attempts,
                success=chain.status == "filled",
                error_message=chain.error,
            )
        )
    return tuple(rows)


def _portfolio(
    planned: RebalancePlanned | None, executed: TradeExecuted | None
) -> Portfolio | None:
    if planned is None:
        return None
    snapshot = planned.snapshot
    qty_before = {position.symbol: position.qty for position in snapshot.positions}
    value_before = {position.symbol: position.market_value for position in snapshot.positions}
    fill_price: dict[str, Decimal] = {}
    qty_after = dict(qty_before)
    cash_after = snapshot.cash
    fills = executed.execution_data.orders if executed is not None else ()
    for order in fills:
        if order.filled_qty <= 0 or order.avg_fill_price is None:
            continue
        signed = order.filled_qty if order.action == "BUY" else -order.filled_qty
        qty_after[order.symbol] = qty_after.get(order.symbol, Decimal(0)) + signed
        cash_after -= signed * order.avg_fill_price
        fill_price[order.symbol] = order.avg_fill_price
    values_after = {
        symbol: qty * fill_price[symbol] if symbol in fill_price else value_before[symbol]
        for symbol, qty in qty_after.items()
    }
    total_after = cash_after + sum(values_after.values(), Decimal(0))
    holdings = tuple(
        HoldingRow(
            symbol=symbol,
            qty_before=qty_before.get(symbol, Decimal(0)),
            value_before=value_before.get(symbol, Decimal(0)),
            qty_after=qty_after[symbol],
            value_after=values_after[symbol],
            weight_after=values_after[symbol] / total_after if total_after > 0 else None,
        )
        for symbol in sorted(qty_after)
    )
    return Portfolio(
        holdings=holdings,
        cash_before=snapshot.cash,
        cash_after=cash_after,
        total_before=snapshot.portfolio_value,
        total_after=total_after,
        after_known=executed is not None,
    )


def _foreign_orders(
    planned: RebalancePlanned | None, executed: TradeExecuted | None
) -> tuple[OpenOrder, ...]:
    """Execution's list when it ran (it looked again just before trading), else the plan's."""
    if executed is not None:
        return executed.foreign_open_orders
    if planned is not None:
        return tuple(order for order in planned.open_orders if not order.own)
    return ()


def _failure(
    terminal: WorkflowCompleted | WorkflowFailed, rejections: Sequence[str]
) -> Failure | None:
    if not isinstance(terminal, WorkflowFailed):
        return None
    return Failure(
        reason=terminal.failure_reason,
        step=terminal.failure_step,
        deadline_exceeded=terminal.deadline_exceeded,
        stalled_step=terminal.stalled_step,
        code=failure_code(terminal, rejections),
    )


_CODES_BY_WORDING: tuple[tuple[str, str], ...] = (
    ("buying power", "TRD_BUYING_POWER"),
    ("insufficient funds", "TRD_INSUFFICIENT_FUNDS"),
    ("market is closed", "TRD_MARKET_CLOSED"),
    ("market closed", "TRD_MARKET_CLOSED"),
    ("rate limit", "DATA_RATE_LIMIT"),
)


def failure_code(terminal: WorkflowFailed, rejections: Sequence[str]) -> str | None:
    """The catalogue code the failure's own words (then the broker's rejections) point to; a
    stalled execution is an order timeout; None when nothing maps
    (docs/trading-rules.md, Error codes)."""
    for text in (terminal.failure_reason, *rejections):
        lowered = text.lower()
        for wording, code in _CODES_BY_WORDING:
            if wording in lowered:
                return code
    if terminal.deadline_exceeded and terminal.stalled_step == "trade_execution":
        return "TRD_ORDER_TIMEOUT"
    return None
