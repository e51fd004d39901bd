"""The fault runs' invariant checks find what they are meant to find: a clean run passes, a
doubled intent, a second ending or a failure does not (so a green fault run means something)."""

from __future__ import annotations

from uuid import uuid4

import pytest

from shared.events import Event, OrderRequested, WorkflowCompleted, WorkflowFailed
from tests.chaos.invariants import bindings, consumers_of, event_counts
from tests.unit.events.examples import every_event, order_events, workflow_failed

pytestmark = pytest.mark.chaos


def clean_run() -> list[Event]:
    return [event for event in every_event() if not isinstance(event, WorkflowFailed)]


def again(event: Event) -> Event:
    """The same fact recorded a second time, as a doubled handler or timer would."""
    return event.model_copy(update={"event_id": uuid4()})


def test_a_run_with_each_event_once_breaks_no_count_invariant() -> None:
    assert event_counts(clean_run()) == []


def test_an_order_intent_recorded_twice_for_one_client_order_id_is_reported() -> None:
    intent = order_events()[0]
    assert isinstance(intent, OrderRequested)
    findings = event_counts([*clean_run(), again(intent)])
    assert findings == [f"2 OrderRequested for {intent.client_order_id}"]


def test_a_second_completion_or_any_failure_is_reported() -> None:
    completed = next(e for e in clean_run() if isinstance(e, WorkflowCompleted))
    assert (
        "2 WorkflowCompleted and 0 WorkflowFailed"
        in event_counts([*clean_run(), again(completed)])[0]
    )
    assert (
        "1 WorkflowCompleted and 1 WorkflowFailed"
        in event_counts([*clean_run(), workflow_failed()])[0]
    )


def test_each_event_is_owed_to_the_services_bound_to_it() -> None:
    bound = bindings()
    assert consumers_of("WorkflowStarted", bound) == ["strategy", "portfolio"]  # liquidations
    assert consumers_of("RebalancePlanned", bound) == ["execution"]
    assert consumers_of("OrderFilled", bound) == []
    assert consumers_of("WorkflowCompleted", bound) == ["notify"]
