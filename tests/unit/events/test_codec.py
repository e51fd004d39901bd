import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.events import (
    EVENT_TYPES,
    Event,
    EventDecodeError,
    InvalidEventError,
    MalformedEventError,
    OrderEvent,
    OrderFilled,
    SignalGenerated,
    UnknownEventError,
    WorkflowFailed,
    decode,
    encode,
    register_event,
)
from tests.unit.events.examples import (
    every_event,
    notification_sent,
    order_filled,
    signal_generated,
    workflow_failed,
)


def test_every_core_event_type_has_an_example():
    assert {type(event) for event in every_event()} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", every_event(), ids=lambda event: event.event_type)
def test_every_event_type_round_trips_through_bytes(event: Event):
    assert decode(encode(event)) == event


@pytest.mark.parametrize("event", every_event(), ids=lambda event: event.event_type)
def test_decode_accepts_str_and_mapping(event: Event):
    data = encode(event)
    assert decode(data.decode()) == event
    assert decode(json.loads(data)) == event


def test_encoding_is_compact_json_with_decimals_as_strings():
    body = encode(order_filled(Decimal("7.9820"), Decimal("501.13")))
    assert b" " not in body
    document = json.loads(body)
    assert document["filled_qty"] == "7.9820"
    assert document["avg_fill_price"] == "501.13"


money = st.decimals(allow_nan=False, allow_infinity=False, min_value=Decimal("1E-12")).filter(
    lambda value: value > 0
)


@settings(max_examples=200, deadline=None)
@given(qty=money, price=money)
def test_decimals_round_trip_exactly(qty: Decimal, price: Decimal):
    decoded = decode(encode(order_filled(qty, price)))
    assert isinstance(decoded, OrderFilled)
    assert str(decoded.filled_qty) == str(qty)
    assert str(decoded.avg_fill_price) == str(price)


def test_unknown_event_type_names_the_event_id():
    document = json.loads(encode(workflow_failed()))
    document["event_type"] = "PortfolioStateChanged"
    with pytest.raises(UnknownEventError) as error:
        decode(document)
    assert document["event_id"] in str(error.value)
    assert "PortfolioStateChanged" in str(error.value)
    assert error.value.event_id == document["event_id"]


def test_future_schema_version_is_unknown_not_dropped():
    document = json.loads(encode(workflow_failed()))
    document["schema_version"] = 3
    with pytest.raises(UnknownEventError) as error:
        decode(document)
    assert document["event_id"] in str(error.value)
    assert "schema_version 3" in str(error.value)


def test_workflow_failed_v1_is_read_back_as_v2():
    v1 = {
        "event_id": "9d0d3a8e-0c53-4a8f-8e1f-0e8c1f0b9a11",
        "event_type": "WorkflowFailed",
        "schema_version": 1,
        "correlation_id": "wf-1",
        "causation_id": "c-1",
        "account_id": "default",
        "occurred_at": "2026-03-02T20:46:05",
        "source": "portfolio",
        "workflow_type": "trading",
        "failure_reason": "account unreadable",
        "failure_step": "portfolio_analysis",
        "error_details": {"original_event_type": "SignalGenerated", "original_event_id": "s-1"},
    }
    event = decode(json.dumps(v1))
    assert isinstance(event, WorkflowFailed)
    assert event.schema_version == 2
    assert event.deadline_exceeded is False
    assert event.stalled_step is None
    assert event.failure_reason == "account unreadable"
    assert event.occurred_at.utcoffset() is not None


def test_notification_sent_v1_is_read_back_as_v2_without_a_target():
    current = notification_sent()
    document = json.loads(encode(current))
    document["schema_version"] = 1
    del document["target"]
    event = decode(json.dumps(document))
    assert event == current
    assert event.schema_version == 2


def signal_generated_v1(current: Event) -> dict:
    """`current` as the strategy service wrote it in version 1: the never-set fields as null."""
    document = json.loads(encode(current))
    document["schema_version"] = 1
    del document["synthetic_bars"]
    document["consolidated_portfolio"]["constraints"] = None
    for strategy in document["strategies"]:
        for step in strategy["trace"]:
            step["detail"] = None
    return document


def test_signal_generated_v1_is_read_back_as_v4_without_the_never_set_fields():
    current = signal_generated()
    event = decode(json.dumps(signal_generated_v1(current)))
    assert event == current
    assert event.schema_version == 4


def test_signal_generated_v3_is_read_back_as_v4_evaluated_by_its_own_workflow():
    current = signal_generated()
    document = json.loads(encode(current))
    document["schema_version"] = 3
    del document["shared_signal_id"], document["content_hash"]
    event = decode(json.dumps(document))
    assert event == current
    assert isinstance(event, SignalGenerated)
    assert (event.shared_signal_id, event.content_hash) == (None, None)


def test_signal_generated_v2_is_read_back_as_v4_on_market_bars():
    current = signal_generated().model_copy(update={"synthetic_bars": True})
    document = json.loads(encode(current))
    document["schema_version"] = 2
    del document["synthetic_bars"]
    event = decode(json.dumps(document))
    assert isinstance(event, SignalGenerated)
    assert (event.schema_version, event.synthetic_bars) == (4, False)


def test_a_signal_generated_v1_field_that_was_set_is_refused_not_dropped():
    document = signal_generated_v1(signal_generated())
    document["consolidated_portfolio"]["constraints"] = {"max_weight": 0.5}
    with pytest.raises(InvalidEventError, match="constraints"):
        decode(document)


def test_invalid_payload_names_event_id_and_field():
    document = json.loads(encode(order_filled()))
    document["filled_qty"] = "-3"
    with pytest.raises(InvalidEventError) as error:
        decode(document)
    assert document["event_id"] in str(error.value)
    assert "filled_qty" in str(error.value)


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_malformed_documents_raise_decode_errors(data: bytes):
    with pytest.raises(MalformedEventError):
        decode(data)


def test_missing_event_type_is_malformed_and_names_the_event_id():
    document = json.loads(encode(order_filled()))
    del document["event_type"]
    with pytest.raises(EventDecodeError) as error:
        decode(document)
    assert document["event_id"] in str(error.value)


@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_non_finite_amounts_are_rejected(value: str):
    document = json.loads(encode(order_filled()))
    document["avg_fill_price"] = value
    with pytest.raises(InvalidEventError):
        decode(document)


def test_registering_an_event_class_without_pinned_type_is_refused():
    with pytest.raises(ValueError, match="Literal"):
        register_event(OrderEvent)
