"""Every status Alpaca gives an order, in our five words: which are final and which still open."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shared.broker.models import TERMINAL_STATUSES, OrderStatus, status_of

NOTHING, HALF, ALL = Decimal(0), Decimal(5), Decimal(10)

CASES = [
    ("new", NOTHING, OrderStatus.ACCEPTED),
    ("accepted", NOTHING, OrderStatus.ACCEPTED),
    ("pending_new", NOTHING, OrderStatus.ACCEPTED),
    ("accepted_for_bidding", NOTHING, OrderStatus.ACCEPTED),
    ("partially_filled", HALF, OrderStatus.PARTIALLY_FILLED),
    ("pending_cancel", NOTHING, OrderStatus.ACCEPTED),
    ("pending_cancel", HALF, OrderStatus.PARTIALLY_FILLED),
    ("pending_replace", HALF, OrderStatus.PARTIALLY_FILLED),
    ("done_for_day", HALF, OrderStatus.PARTIALLY_FILLED),
    ("calculated", ALL, OrderStatus.FILLED),
    ("calculated", HALF, OrderStatus.PARTIALLY_FILLED),
    ("stopped", NOTHING, OrderStatus.ACCEPTED),
    ("held", NOTHING, OrderStatus.ACCEPTED),
    ("suspended", NOTHING, OrderStatus.ACCEPTED),
    ("something_new", NOTHING, OrderStatus.ACCEPTED),
    ("filled", ALL, OrderStatus.FILLED),
    ("canceled", HALF, OrderStatus.CANCELED),
    ("cancelled", NOTHING, OrderStatus.CANCELED),
    ("replaced", NOTHING, OrderStatus.CANCELED),
    ("expired", HALF, OrderStatus.REJECTED),
    ("rejected", NOTHING, OrderStatus.REJECTED),
    ("FILLED", ALL, OrderStatus.FILLED),
]
OPEN_WORDS = [
    "new",
    "accepted",
    "pending_new",
    "accepted_for_bidding",
    "partially_filled",
    "pending_cancel",
    "pending_replace",
    "done_for_day",
    "calculated",
    "stopped",
    "held",
    "suspended",
]


@pytest.mark.parametrize(
    ("broker_status", "filled_qty", "ours"),
    CASES,
    ids=[f"{word}-{filled}" for word, filled, _ in CASES],
)
def test_each_alpaca_status_maps_to_ours(
    broker_status: str, filled_qty: Decimal, ours: OrderStatus
) -> None:
    assert status_of(broker_status, filled_qty, ALL) is ours


@pytest.mark.parametrize("broker_status", OPEN_WORDS)
def test_an_open_word_leaves_the_order_working_until_everything_filled(broker_status: str) -> None:
    assert status_of(broker_status, NOTHING, ALL) not in TERMINAL_STATUSES
    assert status_of(broker_status, HALF, ALL) not in TERMINAL_STATUSES
    assert status_of(broker_status, ALL, ALL) is OrderStatus.FILLED
