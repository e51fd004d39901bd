"""The shapes the workflow endpoints answer with, so the OpenAPI schema types every response
(docs/operations.md, The HTTP API). Numbers are decimal strings (`shared.decimal_places`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class TriggerResponse(BaseModel):
    id: str
    status: str


class Window(BaseModel):
    start: str
    end: str


class TriggerRefusal(BaseModel):
    detail: str
    next_window: Window | None = None
    """Outside the close window: when the next one opens; absent when the account is halted."""


class WorkflowEventView(BaseModel):
    event_id: str
    event_type: str
    causation_id: str | None
    occurred_at: str | None
    source: str
    schema_version: int | None = None
    payload: dict[str, Any] | None = None
    """With `?payloads=true` only: the event's payload, numbers as decimal strings."""


class WorkflowStatusView(BaseModel):
    id: str
    account_id: str
    kind: str
    """`trading` (a run) or `dry_run` (docs/trading-rules.md, Dry runs)."""
    dry_run: bool
    status: str
    """`running`, `completed` or `failed`."""
    started_at: str | None
    finished_at: str | None
    failure_reason: str | None
    events: list[WorkflowEventView]


class OrderEventView(BaseModel):
    event_type: str
    client_order_id: str
    side: str
    attempt: int
    event_id: str


class EventLink(BaseModel):
    event_id: str
    event_type: str


class StrategyReason(BaseModel):
    strategy: str
    file_weight: str
    allocation_weight: str
    contribution: str
    decision_path: list[dict[str, Any]]
    """The strategy's decision steps: kind, span, condition, branch, indicator values."""
    trace_truncated: bool


class WhyAnswer(BaseModel):
    workflow_id: str | None
    symbol: str
    action: str
    """BUY, SELL, HOLD or NOT_PLANNED."""
    plan_item: dict[str, Any] | None
    orders: list[dict[str, Any]]
    """The symbol's order results as `TradeExecuted` recorded them."""
    order_events: list[OrderEventView]
    target_weight: str | None
    strategies: list[StrategyReason]
    causation: list[EventLink]
    """From the symbol's last order event back to `WorkflowStarted`."""
    summary: str
