"""The deadline watchdog: a running workflow with no new event for
`ALCHEMISER_WORKFLOW_DEADLINE_S` fails, naming the step it was waiting on and the service that
runs it, so a stopped service never leaves a run hanging unreported.

The failure is appended to the workflow's `deadline/` stream expecting it to be empty, so with
several strategy replicas exactly one records it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, Callable

import structlog

from shared.events import Event
from shared.events.workflow import WorkflowFailed
from shared.service.runtime import Periodic, PeriodicContext, PeriodicOutcome
from shared.workflow import workflow_state

log = structlog.get_logger(__name__)

LOOKBACK = dt.timedelta(days=7)
MAX_CHECK_INTERVAL_S = 5.0


def deadline_failure(
    events: list[Event], deadline_s: float, now: dt.datetime
) -> WorkflowFailed | None:
    """The failure naming the step the workflow waits on; None when it finished after it was
    found overdue."""
    state = workflow_state(events)
    stalled = state.awaiting.failure_step if state is not None else None
    if state is None or state.finished or stalled is None:
        return None
    last, step = events[-1], state.awaiting
    return WorkflowFailed(
        correlation_id=last.correlation_id,
        causation_id=str(last.event_id),
        account_id=last.account_id,
        source="strategy",
        occurred_at=now,
        failure_step=stalled,
        deadline_exceeded=True,
        stalled_step=stalled,
        failure_reason=(
            f"no progress for {deadline_s:.0f} s after {last.event_type} at "
            f"{last.occurred_at.isoformat()}: the {step.service} service did not answer "
            f"({stalled}); check that it is running and read its logs for workflow "
            f"{last.correlation_id}"
        ),
        error_details={
            "original_event_type": last.event_type,
            "original_event_id": str(last.event_id),
        },
    )


def deadline_watchdog(
    deadline_s: float, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
) -> Periodic:
    """The check, run by the runtime about four times per deadline (at most every 5 s)."""

    async def fail_overdue(context: PeriodicContext) -> AsyncGenerator[PeriodicOutcome, None]:
        """The deadline failure of every overdue running workflow."""
        now = clock()
        horizon = now - max(LOOKBACK, dt.timedelta(seconds=2 * deadline_s))
        for workflow in await context.store.unfinished_workflows(horizon):
            if (now - workflow.last_event_at).total_seconds() < deadline_s:
                continue
            events = [
                item.event for item in await context.store.read_correlation(workflow.workflow_id)
            ]
            failure = deadline_failure(events, deadline_s, now)
            if failure is None:
                continue
            log.warning(
                "workflow deadline exceeded",
                correlation_id=workflow.workflow_id,
                stalled_step=failure.stalled_step,
            )
            yield PeriodicOutcome(f"deadline/{workflow.workflow_id}", [failure], expected_version=0)

    return Periodic("deadline-watchdog", min(deadline_s / 4, MAX_CHECK_INTERVAL_S), fail_overdue)
