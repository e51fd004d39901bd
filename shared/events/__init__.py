"""The event contract between the four services
(docs/architecture.md, Event contract; docs/trading-rules.md, Events)."""

from shared.events.catalogue import EVENT_TYPES
from shared.events.codec import decode, decode_document, encode
from shared.events.envelope import ENVELOPE_FIELDS, Event
from shared.events.errors import (
    EventDecodeError,
    InvalidEventError,
    MalformedEventError,
    UnknownEventError,
)
from shared.events.ids import (
    CLIENT_ORDER_ID_PREFIX,
    client_order_id,
    daily_run_key,
    plan_id,
    signal_fingerprint,
)
from shared.events.market import AccountSnapshot, OpenOrder, PositionSnapshot
from shared.events.notifications import NotificationSent
from shared.events.orders import (
    OrderCancelled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderRequested,
    OrderSubmitted,
)
from shared.events.plans import (
    AllocationComparison,
    PlanItem,
    PlanMetadata,
    RebalancePlan,
    RebalancePlanned,
)
from shared.events.previews import OrdersPreviewed, PreviewedOrder
from shared.events.registry import register_event, register_upcaster
from shared.events.signals import (
    ConsolidatedPortfolio,
    DecisionStep,
    SignalComputed,
    SignalGenerated,
    StrategySignal,
    signal_content_hash,
)
from shared.events.trades import (
    ExecutionData,
    OrderAttempt,
    OrderResult,
    SkippedItem,
    TradeExecuted,
)
from shared.events.workflow import (
    CompletionSummary,
    FailureDetails,
    WorkflowCompleted,
    WorkflowConfiguration,
    WorkflowFailed,
    WorkflowStarted,
)

__all__ = [
    "CLIENT_ORDER_ID_PREFIX",
    "ENVELOPE_FIELDS",
    "EVENT_TYPES",
    "AccountSnapshot",
    "AllocationComparison",
    "CompletionSummary",
    "ConsolidatedPortfolio",
    "DecisionStep",
    "Event",
    "EventDecodeError",
    "ExecutionData",
    "FailureDetails",
    "InvalidEventError",
    "MalformedEventError",
    "NotificationSent",
    "OpenOrder",
    "OrderAttempt",
    "OrderCancelled",
    "OrderEvent",
    "OrderFilled",
    "OrderRejected",
    "OrderRequested",
    "OrderResult",
    "OrderSubmitted",
    "OrdersPreviewed",
    "PlanItem",
    "PlanMetadata",
    "PositionSnapshot",
    "PreviewedOrder",
    "RebalancePlan",
    "RebalancePlanned",
    "SignalComputed",
    "SignalGenerated",
    "SkippedItem",
    "StrategySignal",
    "TradeExecuted",
    "UnknownEventError",
    "WorkflowCompleted",
    "WorkflowConfiguration",
    "WorkflowFailed",
    "WorkflowStarted",
    "client_order_id",
    "daily_run_key",
    "decode",
    "decode_document",
    "encode",
    "plan_id",
    "register_event",
    "register_upcaster",
    "signal_content_hash",
    "signal_fingerprint",
]
