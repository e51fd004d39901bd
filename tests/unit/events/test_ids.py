from datetime import date
from decimal import Decimal
from uuid import UUID

import pytest

from shared.events import (
    client_order_id,
    daily_run_key,
    parse_client_order_id,
    plan_id,
    signal_fingerprint,
)

WORKFLOW_ID = "0b9f2a52-3c55-4d8e-9a43-4a3f8f1c2d10"


def test_plan_id_is_a_deterministic_uuid5_per_workflow():
    assert plan_id(WORKFLOW_ID) == plan_id(WORKFLOW_ID)
    assert plan_id(WORKFLOW_ID) != plan_id("another-workflow")
    assert plan_id(WORKFLOW_ID).version == 5
    assert isinstance(plan_id(WORKFLOW_ID), UUID)


def test_client_order_id_has_the_documented_shape():
    assert client_order_id(WORKFLOW_ID, " spy", "SELL", "SELL", 2) == (
        f"alc:{WORKFLOW_ID}:SPY:s:sell:2"
    )


def test_client_order_id_parses_back_to_its_parts():
    key = parse_client_order_id(client_order_id("wf:with:colons", "TQQQ", "BUY", "BUY", 3))
    assert key is not None
    assert (key.workflow_id, key.symbol, key.side, key.phase, key.attempt) == (
        "wf:with:colons",
        "TQQQ",
        "BUY",
        "BUY",
        3,
    )


@pytest.mark.parametrize(
    "foreign", ["manual-123", "alc:", "alc:wf:SPY:x:buy:1", "alc:wf:SPY:b:buy:0"]
)
def test_foreign_or_malformed_ids_do_not_parse(foreign: str):
    assert parse_client_order_id(foreign) is None


def test_client_order_id_refuses_more_than_128_characters():
    with pytest.raises(ValueError, match="128"):
        client_order_id("w" * 120, "SPY", "BUY", "BUY", 1)


def test_client_order_id_refuses_attempt_zero():
    with pytest.raises(ValueError, match="attempt"):
        client_order_id(WORKFLOW_ID, "SPY", "BUY", "BUY", 0)


def test_daily_run_key():
    assert daily_run_key("paper", "default", date(2026, 3, 2)) == "paper:default:2026-03-02"


def test_signal_fingerprint_ignores_order_case_and_decimal_spelling():
    a = signal_fingerprint({"SPY": Decimal("0.50"), "tqqq": Decimal("0.5")})
    b = signal_fingerprint({"TQQQ": 0.5, " spy": Decimal("5E-1")})
    assert a == b
    assert len(a) == 64


def test_signal_fingerprint_changes_with_a_weight():
    assert signal_fingerprint({"SPY": Decimal("0.5"), "QQQ": Decimal("0.5")}) != signal_fingerprint(
        {"SPY": Decimal("0.6"), "QQQ": Decimal("0.4")}
    )


def test_signal_fingerprint_is_stable_across_releases():
    # Pinned: a change here breaks comparison with fingerprints already recorded in stores.
    assert signal_fingerprint({"SPY": Decimal("1")}) == (
        "4e613bb5d5a388ed16ffb9f8f5da9e529259c9e5198b810a072f91d38d0562da"
    )
