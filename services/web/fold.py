"""The dashboard's read models as one fold over the store's events (docs/web.md, Read models).

A read model is a JSON document under `(projection, key)`: one per workflow, per order (each
attempt is its own client order id), per account snapshot of a run, per strategy signal of a
run, per notification of a run, per account's latest halt or resume (`*`: every account), and
per account the overview's (its latest run snapshot, its last workflow, its equity at each run;
the read models' fold adds its P&L), so the overview reads one document per account.
Events of no workflow — the control stream's, the notifications announcing them — make no
workflow document: only `WorkflowStarted` begins one. `apply` changes the documents one event
touches and nothing else, so folding page after page from a stored position gives the same
documents as folding everything from the first event: what `alchemiser projections rebuild`
does.

Pure: no I/O, no clock. Money stays a decimal string in the documents, never a float.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from shared.events import (
    Event,
    NotificationSent,
    OrderCancelled,
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
from shared.events.control import EVERY_ACCOUNT, TradingHalted, TradingResumed
from shared.events.orders import OrderEvent
from shared.eventstore.records import RecordedEvent
from shared.workflow import STEPS, TERMINAL_EVENT_TYPES, WorkflowKind

WORKFLOW = "workflow"
ORDER = "order"
ACCOUNT_RUN = "account_run"
SIGNAL = "signal"
NOTIFICATION = "notification"
HALT = "halt"
ACCOUNT = "account"
EQUITY_POINTS = 120
"""An account's equity points on the overview: its latest runs, about six months of trading
days (more make every page's account documents and the overview heavier)."""

Document = dict[str, Any]
Key = tuple[str, str]


@dataclass
class ReadModel:
    """One document with the columns pages filter and sort on."""

    projection: str
    key: str
    account_id: str
    workflow_id: str
    at: str
    """ISO-8601 UTC: when the thing began (sorts and filters by date)."""
    status: str | None
    document: Document


def keys_touched(events: Iterable[RecordedEvent]) -> set[Key]:
    """The documents whose current version `apply` needs to fold these events in."""
    keys: set[Key] = set()
    for recorded in events:
        event = recorded.event
        if isinstance(event, TradingHalted | TradingResumed):
            continue  # a halt document is made whole from its one event
        keys.add((WORKFLOW, event.correlation_id))
        keys.add((ACCOUNT, event.account_id))
        if isinstance(event, OrderEvent):
            keys.add((ORDER, event.client_order_id))
    return keys


def apply(models: dict[Key, ReadModel], recorded: RecordedEvent) -> set[Key]:
    """Fold one event into `models` (which hold every key `keys_touched` named); returns the
    keys it changed. `finish` completes the changed documents after the last event of a page."""
    event = recorded.event
    if isinstance(event, TradingHalted | TradingResumed):
        halt = _halt(event)
        models[(HALT, halt.key)] = halt
        return {(HALT, halt.key)}
    if (WORKFLOW, event.correlation_id) not in models and not isinstance(event, WorkflowStarted):
        return set()  # no workflow's: a halt's notification, execution's answer to a halt
    workflow = _workflow(models, event)
    _timeline(workflow, recorded)
    changed = {(WORKFLOW, event.correlation_id)}
    for model in _derived(workflow, event):
        models[(model.projection, model.key)] = model
        changed.add((model.projection, model.key))
    if isinstance(event, OrderEvent):
        changed.add(_order(models, workflow, event))
    if _account(models, workflow, event):
        changed.add((ACCOUNT, workflow.account_id))
    return changed


def finish(models: dict[Key, ReadModel], changed: set[Key]) -> None:
    """Time the steps of each changed workflow: once after a page's events, not after each."""
    for projection, key in changed:
        if projection == WORKFLOW:
            document = models[(projection, key)].document
            document["steps"] = list(step_timings(document))


def _account(models: dict[Key, ReadModel], workflow: ReadModel, event: Event) -> bool:
    """Move the account's document on from its workflow's event: its last workflow (the newest
    start, of two at the same instant the greater id) and, from a plan, its latest snapshot
    and equity point. True when the document changed."""
    key = (ACCOUNT, workflow.account_id)
    if key not in models:
        models[key] = ReadModel(
            projection=ACCOUNT,
            key=workflow.account_id,
            account_id=workflow.account_id,
            workflow_id=workflow.workflow_id,
            at=workflow.at,
            status=None,
            document={"latest": None, "last_workflow": None, "equity": [], "pnl": None},
        )
    account = models[key]
    document = account.document
    last = document["last_workflow"]
    summary = {
        "workflow_id": workflow.workflow_id,
        "kind": workflow.document["kind"],
        "status": workflow.status,
        "at": workflow.at,
    }
    changed = False
    if last != summary and (
        last is None
        or last["workflow_id"] == workflow.workflow_id
        or (workflow.at, workflow.workflow_id) > (last["at"], last["workflow_id"])
    ):
        document["last_workflow"] = summary
        account.workflow_id, account.at = workflow.workflow_id, workflow.at
        changed = True
    if isinstance(event, RebalancePlanned):
        run = models[(ACCOUNT_RUN, event.correlation_id)]
        latest = document["latest"]
        if latest is None or (run.at, run.key) >= (latest["at"], latest["workflow_id"]):
            document["latest"] = {**run.document, "workflow_id": run.workflow_id, "at": run.at}
        point = [event.snapshot.as_of.timestamp(), run.document["equity"], run.key]
        others = [p for p in document["equity"] if p[2] != run.key]
        document["equity"] = sorted([*others, point])[-EQUITY_POINTS:]
        changed = True
    return changed


def _workflow(models: dict[Key, ReadModel], event: Event) -> ReadModel:
    key = (WORKFLOW, event.correlation_id)
    if key not in models:
        models[key] = ReadModel(
            projection=WORKFLOW,
            key=event.correlation_id,
            account_id=event.account_id,
            workflow_id=event.correlation_id,
            at=event.occurred_at.isoformat(),
            status="running",
            document={
                "workflow_id": event.correlation_id,
                "account_id": event.account_id,
                "kind": WorkflowKind.DAILY.value,
                "started_at": event.occurred_at.isoformat(),
                "ended_at": None,
                "timeline": [],
                "orders": [],
                "fills": {},
                "traded_value": "0",
            },
        )
    return models[key]


def _timeline(workflow: ReadModel, recorded: RecordedEvent) -> None:
    event = recorded.event
    document = workflow.document
    document["timeline"].append(
        {
            "position": recorded.position,
            "event_type": event.event_type,
            "source": event.source,
            "at": event.occurred_at.isoformat(),
        }
    )
    if isinstance(event, WorkflowStarted):
        document.update(
            kind=WorkflowKind(event.workflow_type).value,
            started_at=event.occurred_at.isoformat(),
            trading_date=event.trading_date.isoformat(),
            requested_by=event.requested_by,
            force=event.force,
            live=event.configuration.live_trading,
        )
        workflow.at = event.occurred_at.isoformat()
    elif isinstance(event, WorkflowCompleted | WorkflowFailed) and document["ended_at"] is None:
        # The first ending decides, as in shared.workflow.workflow_state; a later one is only
        # shown on the timeline.
        document["ended_at"] = event.occurred_at.isoformat()
        workflow.status = "completed" if isinstance(event, WorkflowCompleted) else "failed"
        if isinstance(event, WorkflowFailed):
            document["failure"] = {"step": event.failure_step, "reason": event.failure_reason}
    elif isinstance(event, TradeExecuted):
        document["execution"] = {
            "success": event.success,
            "orders_placed": event.orders_placed,
            "orders_succeeded": event.orders_succeeded,
            "failure_reason": event.failure_reason,
        }
    elif isinstance(event, OrderFilled):
        # filled_qty is the broker order's cumulative fill: the latest report wins.
        document["fills"][event.client_order_id] = [
            event.symbol,
            str(event.filled_qty if event.side == "BUY" else -event.filled_qty),
            str(event.avg_fill_price),
        ]
        document["traded_value"] = str(
            sum(
                (
                    abs(Decimal(qty)) * Decimal(price)
                    for _, qty, price in document["fills"].values()
                ),
                Decimal(0),
            )
        )


def step_timings(document: Document) -> Iterator[Document]:
    """Each step of the workflow's kind that began: from the first event it answers to the
    first event of the step after it (or the ending, or still running; the notification, from
    the ending to its last delivery)."""
    timeline = document["timeline"]
    steps = STEPS[WorkflowKind(document["kind"])]
    starts = [
        next((entry["at"] for entry in timeline if entry["event_type"] in step.follows), None)
        for step in steps
    ]
    for index, step in enumerate(steps):
        if starts[index] is None:
            continue
        later = [start for start in starts[index + 1 :] if start is not None]
        if later:
            ended = later[0]
        elif step.follows == TERMINAL_EVENT_TYPES:
            # the notification ends with its last channel; with none configured it sends nothing
            # and takes no time (a channel still sending shows once its NotificationSent lands)
            sent = [entry["at"] for entry in timeline if entry["event_type"] == "NotificationSent"]
            ended = sent[-1] if sent else starts[index]
        else:
            ended = document["ended_at"]
        yield {"name": step.name, "service": step.service, "start": starts[index], "end": ended}


def _derived(workflow: ReadModel, event: Event) -> Iterator[ReadModel]:
    """The documents one event creates whole: a run's signals, its account snapshot and plan,
    a notification."""
    document = workflow.document
    if isinstance(event, SignalGenerated):
        document["target"] = {
            symbol: str(weight)
            for symbol, weight in event.consolidated_portfolio.target_allocations.items()
        }
        document["signals_as_of"] = event.as_of.isoformat()
        for strategy in event.strategies:
            yield ReadModel(
                projection=SIGNAL,
                key=f"{event.correlation_id}/{strategy.strategy}",
                account_id=event.account_id,
                workflow_id=event.correlation_id,
                at=event.occurred_at.isoformat(),
                status=None,
                document={
                    "as_of": event.as_of.isoformat(),
                    "strategy": strategy.strategy,
                    "weight": str(strategy.weight),
                    "allocation": {s: str(w) for s, w in strategy.allocation.items()},
                    "trace": [step.model_dump(mode="json") for step in strategy.trace],
                    "trace_truncated": strategy.trace_truncated,
                },
            )
    elif isinstance(event, RebalancePlanned):
        snapshot = event.snapshot
        before = {
            "cash": str(snapshot.cash),
            "equity": str(snapshot.portfolio_value),
            "positions": [
                {
                    "symbol": p.symbol,
                    "qty": str(p.qty),
                    "price": str(p.price),
                    "market_value": str(p.market_value),
                }
                for p in snapshot.positions
            ],
        }
        document["before"] = before
        document["plan"] = [
            {
                "symbol": item.symbol,
                "action": item.action,
                "current_weight": str(item.current_weight),
                "target_weight": str(item.target_weight),
                "trade_amount": str(item.trade_amount),
            }
            for item in event.rebalance_plan.items
        ]
        yield ReadModel(
            projection=ACCOUNT_RUN,
            key=event.correlation_id,
            account_id=event.account_id,
            workflow_id=event.correlation_id,
            at=snapshot.as_of.isoformat(),
            status=None,
            document={**before, "target": document.get("target", {})},
        )
    elif isinstance(event, NotificationSent):
        yield _of_event(
            NOTIFICATION,
            str(event.event_id),
            event,
            event.status,
            {
                "channel": event.channel,
                "target": event.target,
                "attempts": event.attempts,
                "error": event.error,
            },
        )


def _of_event(
    projection: str, key: str, event: Event, status: str | None, document: Document
) -> ReadModel:
    """A document one event makes whole, dated by that event."""
    return ReadModel(
        projection=projection,
        key=key,
        account_id=event.account_id,
        workflow_id=event.correlation_id,
        at=event.occurred_at.isoformat(),
        status=status,
        document=document,
    )


def _halt(event: TradingHalted | TradingResumed) -> ReadModel:
    """The latest halt or resume of one account (or of every account, key `*`): of an account's
    document and the `*` one, the later decides, as in `shared.events.control.halt_of`."""
    liquidations, refused = (
        (dict(event.liquidations), event.liquidation_refused)
        if isinstance(event, TradingHalted)
        else ({}, None)
    )
    return _of_event(
        HALT,
        event.account_id,
        event,
        "halted" if isinstance(event, TradingHalted) else "resumed",
        {
            "every_account": event.account_id == EVERY_ACCOUNT,
            "reason": event.reason,
            "requested_by": event.requested_by,
            "liquidations": liquidations,
            "liquidation_refused": refused,
        },
    )


ORDER_STATUS = {
    OrderRequested: "requested",
    OrderSubmitted: "submitted",
    OrderCancelled: "cancelled",
    OrderRejected: "rejected",
}


def _order(models: dict[Key, ReadModel], workflow: ReadModel, event: OrderEvent) -> Key:
    key = (ORDER, event.client_order_id)
    if key not in models:
        models[key] = ReadModel(
            projection=ORDER,
            key=event.client_order_id,
            account_id=event.account_id,
            workflow_id=event.correlation_id,
            at=event.occurred_at.isoformat(),
            status="requested",
            document={
                "client_order_id": event.client_order_id,
                "symbol": event.symbol,
                "side": event.side,
                "phase": event.phase,
                "attempt": event.attempt,
                "filled_qty": "0",
            },
        )
        workflow.document["orders"].append(event.client_order_id)
    order = models[key]
    document = order.document
    if event.broker_order_id is not None:
        document["broker_order_id"] = event.broker_order_id
    if isinstance(event, OrderRequested):
        document.update(
            qty=str(event.qty),
            order_type=event.order_type,
            limit_price=None if event.limit_price is None else str(event.limit_price),
            reason=event.reason,
        )
    elif isinstance(event, OrderFilled):
        document.update(filled_qty=str(event.filled_qty), avg_fill_price=str(event.avg_fill_price))
        order.status = "filled" if event.complete else "partially_filled"
    elif isinstance(event, OrderCancelled):
        document.update(filled_qty=str(event.filled_qty), cancel_reason=event.reason)
    elif isinstance(event, OrderRejected):
        document["reject_reason"] = event.reason
    if type(event) in ORDER_STATUS and order.status != "filled":
        order.status = ORDER_STATUS[type(event)]
    document["updated_at"] = event.occurred_at.isoformat()
    return key
