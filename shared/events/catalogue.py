"""The event types of DESIGN §3 registered as current, and the upcasters of older versions."""

from __future__ import annotations

from shared.events.notifications import NotificationSent
from shared.events.orders import (
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderRequested,
    OrderSubmitted,
)
from shared.events.plans import RebalancePlanned
from shared.events.registry import Document, register_event, register_upcaster
from shared.events.signals import SignalGenerated
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
    WorkflowCompleted,
    WorkflowFailed,
    NotificationSent,
)

for _event_type in EVENT_TYPES:
    register_event(_event_type)


@register_upcaster("WorkflowFailed", from_version=1)
def workflow_failed_v1_to_v2(document: Document) -> Document:
    """Version 1 (the reference's shape) had no deadline watchdog: it never timed out."""
    return {**document, "schema_version": 2, "deadline_exceeded": False, "stalled_step": None}
