"""Numbers as the API and the event views show them: to the places of what they are, as plain
decimal strings (docs/operations.md, The HTTP API)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shared.decimal_places import Places, shown, unnamed_decimals, view


@pytest.mark.parametrize(
    ("value", "places", "expected"),
    [
        ("0E+16", Places.MONEY, "0.00"),
        ("0.2000000000000000020000000000", Places.WEIGHT, "0.2"),
        ("0E+2", Places.WEIGHT, "0"),
        ("24750.0000", Places.MONEY, "24750.00"),
        ("100000", Places.MONEY, "100000.00"),
        ("-0.004", Places.MONEY, "0.00"),
        ("0.125", Places.MONEY, "0.12"),
        ("592.100000", Places.PRICE, "592.10"),
        ("0.55615", Places.PRICE, "0.5562"),
        ("41.7799091234", Places.QUANTITY, "41.779909123"),
        ("1E+3", Places.QUANTITY, "1000"),
        ("0.1234567", Places.WEIGHT, "0.123457"),
        ("1E+3", None, "1000"),
        ("1.50", None, "1.5"),
    ],
)
def test_a_value_is_shown_to_its_places(value: str, places: Places | None, expected: str) -> None:
    assert shown(Decimal(value), places) == expected


def test_a_view_names_values_by_field_and_symbol_maps_by_their_name() -> None:
    data = {
        "cash": Decimal("0E+16"),
        "target_allocations": {"SPY": Decimal("0.2000000000000000020000000000")},
        "quote": {"bid": Decimal("7.3"), "bid_size": Decimal("100")},
        "orders": [{"qty": Decimal("1.0000000001"), "attempt": 1}],
        "symbol": "SPY",
    }
    assert view(data) == {
        "cash": "0.00",
        "target_allocations": {"SPY": "0.2"},
        "quote": {"bid": "7.30", "bid_size": "100"},
        "orders": [{"qty": "1", "attempt": 1}],
        "symbol": "SPY",
    }
    assert list(unnamed_decimals(data)) == []


def test_a_decimal_under_no_known_name_is_reported_and_shown_plain() -> None:
    data = {"snapshot": {"mystery": Decimal("1E+2")}}
    assert list(unnamed_decimals(data)) == [".snapshot.mystery"]
    assert view(data) == {"snapshot": {"mystery": "100"}}
