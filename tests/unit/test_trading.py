"""The one quote and its mid rule, which planning, execution, replay and the simulated broker
share."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from shared.trading import Quote, QuoteSource

AS_OF = datetime(2026, 11, 26, 20, 45, tzinfo=UTC)


def quote(bid: str, ask: str) -> Quote:
    return Quote(
        symbol="aaa",
        bid=Decimal(bid),
        ask=Decimal(ask),
        bid_size=Decimal(100),
        ask_size=Decimal(100),
        as_of=AS_OF,
        source=QuoteSource.REST,
    )


@pytest.mark.parametrize(
    ("bid", "ask", "mid"),
    [
        ("10.00", "10.02", "10.01"),
        ("0", "12.34", "12.34"),
        ("12.34", "0", "12.34"),
        ("-1", "5", "5"),
        ("0", "0", None),
    ],
    ids=["two-sided", "ask-only", "bid-only", "negative-side-is-unpriced", "no-side"],
)
def test_mid_is_half_way_when_two_sided_else_the_priced_side(
    bid: str, ask: str, mid: str | None
) -> None:
    assert quote(bid, ask).mid() == (Decimal(mid) if mid is not None else None)


def test_a_quote_keeps_the_wire_format_of_the_events() -> None:
    document = quote("10.00", "10.02").model_dump(mode="json")

    assert document == {
        "symbol": "AAA",
        "bid": "10.00",
        "ask": "10.02",
        "bid_size": "100",
        "ask_size": "100",
        "as_of": "2026-11-26T20:45:00Z",
        "source": "rest",
    }
    assert Quote.model_validate(document) == quote("10.00", "10.02")
