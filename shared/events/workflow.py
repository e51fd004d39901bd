"""Workflow lifecycle events: start, completion and failure
(docs/trading-rules.md, Event payloads / Workflow status / Failure steps)."""

from __future__ import annotations

from datetime import date
from typing import Literal, Self
from uuid import UUID

from pydantic import Field, model_validator

from shared.events.envelope import Event, Frozen
from shared.events.types import FailureStep, Money, NonEmptyStr


class WorkflowConfiguration(Frozen):
    live_trading: bool


class WorkflowStarted(Event):
    """Version 2 adds the dry run (`workflow_type` `dry_run`) and `notify`; version 1 documents
    are lifted by the upcaster in `shared.events.catalogue` (docs/trading-rules.md, Dry runs)."""

    event_type: Literal["WorkflowStarted"] = "WorkflowStarted"
    schema_version: Literal[2] = 2
    workflow_type: Literal["trading", "liquidation", "dry_run"] = "trading"
    """The workflow's kind (`shared.workflow.WorkflowKind`), recorded here once; the endings'
    `workflow_type` predates kinds and always says `trading`."""
    requested_by: NonEmptyStr
    configuration: WorkflowConfiguration
    trading_date: date
    force: bool
    idempotency_key: NonEmptyStr
    """The daily run key; for a dry run `dry-run:` and that key, which nothing checks."""
    notify: bool = True
    """Whether notify reports the run on its channels: always for a run, for a dry run only when
    its requester asked (`email`)."""

    @model_validator(mode="after")
    def _only_a_dry_run_goes_unreported(self) -> Self:
        if not self.notify and self.workflow_type != "dry_run":
            raise ValueError("notify may be false only for a dry run; a run is always reported")
        return self


class CompletionSummary(Frozen):
    orders_placed: int = Field(ge=0)
    orders_succeeded: int = Field(ge=0)
    total_trade_value: Money
    execution_plan_id: UUID | None = None


class WorkflowCompleted(Event):
    event_type: Literal["WorkflowCompleted"] = "WorkflowCompleted"
    schema_version: Literal[1] = 1
    workflow_type: Literal["trading"] = "trading"
    workflow_duration_ms: int = Field(ge=0)
    """occurred_at(WorkflowCompleted) − occurred_at(WorkflowStarted), not the execution time."""
    success: Literal[True] = True
    summary: CompletionSummary


class FailureDetails(Frozen):
    original_event_type: str | None = None
    original_event_id: str | None = None


class WorkflowFailed(Event):
    """Version 2 adds `deadline_exceeded` and `stalled_step` for the watchdog
    (docs/trading-rules.md, Deadline watchdog); version 1 documents are lifted by the upcaster in
    `shared.events.catalogue`."""

    event_type: Literal["WorkflowFailed"] = "WorkflowFailed"
    schema_version: Literal[2] = 2
    workflow_type: Literal["trading"] = "trading"
    failure_reason: NonEmptyStr
    failure_step: FailureStep
    error_details: FailureDetails = FailureDetails()
    deadline_exceeded: bool = False
    stalled_step: FailureStep | None = None

    @model_validator(mode="after")
    def _deadline_names_the_stalled_step(self) -> Self:
        if self.deadline_exceeded and self.stalled_step is None:
            raise ValueError("stalled_step is required when deadline_exceeded is true")
        if not self.deadline_exceeded and self.stalled_step is not None:
            raise ValueError("stalled_step is only set when deadline_exceeded is true")
        return self
