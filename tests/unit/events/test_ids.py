import hashlib
from datetime import date
from decimal import Decimal
from uuid import UUID

import pytest

from shared.events import (
    CLIENT_ORDER_ID_PREFIX,
    client_order_id,
    daily_run_key,
    plan_id,
    signal_fingerprint,
)
from shared.events.ids import CLIENT_ORDER_ID_LENGTH

WORKFLOW_ID = "0b9f2a52-3c55-4d8e-9a43-4a3f8f1c2d10"


def test_plan_id_is_a_deterministic_uuid5_per_workflow():
    assert plan_id(WORKFLOW_ID) == plan_id(WORKFLOW_ID)
    assert plan_id(WORKFLOW_ID) != plan_id("another-workflow")
    assert plan_id(WORKFLOW_ID).version == 5
    assert isinstance(plan_id(WORKFLOW_ID), UUID)


def test_client_order_id_is_the_prefix_and_a_hash_of_workflow_symbol_side_and_attempt():
    canonical = f'["{WORKFLOW_ID}","SPY","SELL",2]'
    digest = hashlib.sha256(canonical.encode()).hexdigest()

    assert client_order_id(WORKFLOW_ID, " spy", "SELL", 2) == f"alc:{digest[:32]}"
    # pinned: the same order keeps its id across releases
    assert client_order_id(WORKFLOW_ID, "SPY", "SELL", 2) == "alc:25789a5eb4100cb4b5fdfca1e17cd413"


@pytest.mark.parametrize("workflow_id", ["w", WORKFLOW_ID, "w" * 200, "wf:with:colons"])
@pytest.mark.parametrize("symbol", ["A", "BRK.B", "BTC/USD", "ABCDEFGHIJKL"])
def test_client_order_id_fits_in_48_characters_whatever_the_inputs(workflow_id: str, symbol: str):
    value = client_order_id(workflow_id, symbol, "BUY", 10_000)

    assert value.startswith(CLIENT_ORDER_ID_PREFIX)
    assert len(value) == CLIENT_ORDER_ID_LENGTH <= 48


def test_client_order_ids_differ_in_each_input():
    keys = [
        (workflow_id, symbol, side, attempt)
        for workflow_id in ("wf-1", "wf-2", "wf", "wf-1:SPY")
        for symbol in ("SPY", "QQQ", "SPYQ")
        for side in ("BUY", "SELL")
        for attempt in (1, 2, 11)
    ]
    ids = {client_order_id(*key) for key in keys}

    assert len(ids) == len(keys)
    # parts cannot run into each other: a workflow ending in the symbol is another order
    assert client_order_id("wf-1:SPY", "Q", "BUY", 1) != client_order_id("wf-1", "SPY:Q", "BUY", 1)


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (("", "SPY", "BUY", 1), "workflow_id"),
        ((WORKFLOW_ID, " ", "BUY", 1), "symbol"),
        ((WORKFLOW_ID, "SPY", "HOLD", 1), "side"),
        ((WORKFLOW_ID, "SPY", "BUY", 0), "attempt"),
    ],
)
def test_client_order_id_refuses_what_names_no_order(
    arguments: tuple[str, str, str, int], named: str
):
    with pytest.raises(ValueError, match=named):
        client_order_id(*arguments)


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
