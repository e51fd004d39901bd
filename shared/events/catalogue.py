"""The event types registered as current, and the upcasters of older versions
(docs/architecture.md, Event contract; docs/trading-rules.md, Event catalogue)."""

from __future__ import annotations

from shared.events.control import HaltOrdersCancelled, TradingHalted, TradingResumed
from shared.events.notifications import NotificationSent
from shared.events.orders import (
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderRequested,
    OrderSubmitted,
)
from shared.events.plans import RebalancePlanned
from shared.events.previews import OrdersPreviewed
from shared.events.registry import Document, register_event, register_upcaster
from shared.events.signals import SignalComputed, SignalGenerated
from shared.events.trades import TradeExecuted
from shared.events.workflow import WorkflowCompleted, WorkflowFailed, WorkflowStarted

EVENT_TYPES = (
    WorkflowStarted,
    SignalGenerated,
    RebalancePlanned,
    OrderRequested,
    OrderSubmitted,
    OrderFilled,
    OrderCancelled,
    OrderRejected,
    TradeExecuted,
    OrdersPreviewed,
    WorkflowCompleted,
    WorkflowFailed,
    NotificationSent,
    TradingHalted,
    TradingResumed,
    HaltOrdersCancelled,
    SignalComputed,
)

for _event_type in EVENT_TYPES:
    register_event(_event_type)


@register_upcaster("WorkflowFailed", from_version=1)
def workflow_failed_v1_to_v2(document: Document) -> Document:
    """Version 1 was written before the deadline watchdog existed: it never timed out."""
    return {**document, "schema_version": 2, "deadline_exceeded": False, "stalled_step": None}


@register_upcaster("WorkflowStarted", from_version=1)
def workflow_started_v1_to_v2(document: Document) -> Document:
    """Version 1 was written before dry runs: every run was a trading run, always reported."""
    return {**document, "schema_version": 2, "notify": True}


@register_upcaster("NotificationSent", from_version=1)
def notification_sent_v1_to_v2(document: Document) -> Document:
    """Version 1 was written before apprise: its channels (email, webhook) have no target."""
    return {**document, "schema_version": 2, "target": None}


@register_upcaster("SignalGenerated", from_version=1)
def signal_generated_v1_to_v2(document: Document) -> Document:
    """Version 1 had a `detail` on each trace step and `constraints` on the consolidated
    portfolio that nothing ever set: drop them where they are null. A non-null value is kept, so
    validation rejects the event instead of losing data silently."""
    lifted = {**document, "schema_version": 2}
    portfolio = lifted.get("consolidated_portfolio")
    if isinstance(portfolio, dict):
        lifted["consolidated_portfolio"] = _without_null(portfolio, "constraints")
    strategies = lifted.get("strategies")
    if isinstance(strategies, list):
        lifted["strategies"] = [_steps_without_detail(item) for item in strategies]
    return lifted


@register_upcaster("SignalGenerated", from_version=2)
def signal_generated_v2_to_v3(document: Document) -> Document:
    """Version 2 did not say whether its bars were the synthetic sample; nothing recorded then
    can tell, so it reads as market bars, as it was reported at the time."""
    return {**document, "schema_version": 3, "synthetic_bars": False}


@register_upcaster("SignalGenerated", from_version=3)
def signal_generated_v3_to_v4(document: Document) -> Document:
    """Version 3 was evaluated by its own workflow, before shared signals: no shared signal, no
    content hash."""
    return {**document, "schema_version": 4, "shared_signal_id": None, "content_hash": None}


def _steps_without_detail(strategy: object) -> object:
    if not isinstance(strategy, dict) or not isinstance(strategy.get("trace"), list):
        return strategy
    steps = [
        _without_null(step, "detail") if isinstance(step, dict) else step
        for step in strategy["trace"]
    ]
    return {**strategy, "trace": steps}


def _without_null(document: dict[str, object], key: str) -> dict[str, object]:
    if key in document and document[key] is None:
        return {name: value for name, value in document.items() if name != key}
    return document
