"""Bounds every limit price keeps, whatever the quote
(docs/trading-rules.md, Limit pricing / Re-pegging)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.execution.pricing import initial_limit_price, repeg_price
from shared.trading import Quote, QuoteSource, Side

NOW = datetime(2026, 11, 26, 20, 45, tzinfo=UTC)
BOUNDED = settings(max_examples=200, deadline=None)


@st.composite
def books(draw: st.DrawFn) -> Quote:
    bid_cents = draw(st.integers(100, 100_000))
    spread_cents = draw(st.integers(0, 500))
    return Quote(
        symbol="AAA",
        bid=Decimal(bid_cents) / 100,
        ask=Decimal(bid_cents + spread_cents) / 100,
        bid_size=Decimal(draw(st.integers(0, 5_000))),
        ask_size=Decimal(draw(st.integers(0, 5_000))),
        as_of=NOW,
        source=draw(st.sampled_from(QuoteSource)),
    )


@BOUNDED
@given(books(), st.integers(1, 10_000).map(Decimal))
def test_initial_limit_price_never_sells_below_the_buy_and_rest_prices_stay_in_the_book(
    book: Quote, qty: Decimal
) -> None:
    buy = initial_limit_price(Side.BUY, book)
    sell = initial_limit_price(Side.SELL, book)

    assert buy is not None and sell is not None
    assert sell >= buy
    if book.source is QuoteSource.REST:
        assert book.bid <= buy <= book.ask
        assert book.bid <= sell <= book.ask
    else:
        assert book.bid - Decimal("0.01") <= buy <= book.bid + Decimal("0.03")
        assert book.ask - Decimal("0.03") <= sell <= max(book.ask + Decimal("0.01"), buy)
    assert buy == buy.quantize(Decimal("0.01")) and sell == sell.quantize(Decimal("0.01"))


@BOUNDED
@given(books(), st.integers(-200, 200), st.booleans())
def test_repeg_crosses_the_spread_by_the_minimum_and_never_repeats_a_price(
    book: Quote, anchor_offset_cents: int, repeat: bool
) -> None:
    buy_anchor = book.bid + Decimal(anchor_offset_cents) / 100
    sell_anchor = book.ask + Decimal(anchor_offset_cents) / 100
    buy_crossing = book.ask + Decimal("0.02")
    sell_crossing = book.bid - Decimal("0.02")
    buy_history = [buy_anchor, buy_crossing] if repeat else [buy_anchor]
    sell_history = [sell_anchor, sell_crossing] if repeat else [sell_anchor]

    buy = repeg_price(Side.BUY, buy_anchor, book, buy_history)
    sell = repeg_price(Side.SELL, sell_anchor, book, sell_history)

    assert buy is not None and buy >= buy_crossing
    assert buy not in buy_history
    if sell is not None:
        assert sell <= sell_crossing or sell == sell_anchor
        assert sell > Decimal("0.01")
