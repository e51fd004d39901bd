"""The one workflow fold: where a workflow stands, and which step it waits on, from its events."""

from __future__ import annotations

import pytest

from shared.events import Event
from shared.workflow import (
    STEPS,
    WorkflowKind,
    answering_service,
    failure_step_of,
    is_finished,
    step_named,
    workflow_state,
)
from tests.unit.events.examples import (
    order_events,
    rebalance_planned,
    signal_generated,
    trade_executed,
    workflow_completed,
    workflow_failed,
    workflow_started,
)


def awaited(events: list[Event]) -> str:
    state = workflow_state(events)
    assert state is not None
    return state.awaiting.name


def test_nothing_recorded_is_no_workflow() -> None:
    assert workflow_state([]) is None
    assert not is_finished([])


def test_each_step_is_awaited_once_the_event_it_answers_is_recorded() -> None:
    started, signal, plan = workflow_started(), signal_generated(), rebalance_planned()

    assert awaited([started]) == "signal_generation"
    assert awaited([started, signal]) == "portfolio_analysis"
    assert awaited([started, signal, plan]) == "trade_execution"
    assert awaited([started, signal, plan, *order_events(), trade_executed()]) == (
        "trade_execution"
    )
    assert awaited([started, signal, plan, workflow_completed()]) == "notification"


def test_a_repeated_earlier_event_does_not_take_the_workflow_back() -> None:
    events = [workflow_started(), signal_generated(), rebalance_planned(), signal_generated()]
    state = workflow_state(events)

    assert state is not None
    assert state.awaiting.name == "trade_execution"
    assert state.is_past("portfolio_analysis")
    assert not state.is_past("trade_execution")


def test_the_first_ending_decides_and_a_later_one_cannot_flip_it() -> None:
    completed = workflow_completed()
    state = workflow_state([workflow_started(), completed, workflow_failed()])

    assert state is not None
    assert state.status == "completed"
    assert state.ending == completed
    assert state.finished and is_finished([completed])


def test_a_failed_workflow_is_past_every_step_but_the_notification() -> None:
    state = workflow_state([workflow_started(), workflow_failed()])

    assert state is not None
    assert state.status == "failed"
    assert all(state.is_past(step.failure_step) for step in STEPS[state.kind] if step.failure_step)


def test_the_daily_run_is_the_kind_a_trading_start_records() -> None:
    state = workflow_state([workflow_started()])

    assert state is not None and state.kind is WorkflowKind.DAILY
    assert state.started is not None and state.ending is None and state.status == "running"


def test_a_services_failure_is_recorded_as_the_step_it_runs_and_notify_fails_nothing() -> None:
    assert failure_step_of("strategy") == "signal_generation"
    assert failure_step_of("portfolio") == "portfolio_analysis"
    assert failure_step_of("execution") == "trade_execution"
    assert failure_step_of("notify") is None
    assert failure_step_of("replay") is None


def test_each_step_is_named_with_the_service_that_runs_it() -> None:
    step = step_named("notification")

    assert step is not None and step.service == "notify"
    assert step.follows == ("WorkflowCompleted", "WorkflowFailed")
    assert step_named("no_such_step") is None


@pytest.mark.parametrize(
    ("event_type", "kind", "service"),
    [
        ("WorkflowStarted", WorkflowKind.DAILY, "strategy"),
        ("WorkflowStarted", WorkflowKind.LIQUIDATION, "portfolio"),
        ("WorkflowStarted", WorkflowKind.DRY_RUN, "strategy"),
        ("SignalGenerated", WorkflowKind.DAILY, "portfolio"),
        ("SignalGenerated", WorkflowKind.LIQUIDATION, None),
        ("RebalancePlanned", WorkflowKind.LIQUIDATION, "execution"),
        ("OrderFilled", WorkflowKind.DAILY, None),
    ],
)
def test_one_service_answers_an_event_for_each_kind(
    event_type: str, kind: WorkflowKind, service: str | None
) -> None:
    """The one that fails the workflow for a poisoned copy, though several queues hold it."""
    assert answering_service(event_type, kind) == service
