from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.execution.pricing import (
    InsufficientQtyAction,
    after_insufficient_qty,
    choose_quote,
    initial_limit_price,
    is_suspicious,
    is_valid_quote,
    remainder_reference_price,
    remaining_is_negligible,
    repeg_price,
    rest_quote,
)
from shared.trading import Quote, QuoteSource, Side

NOW = datetime(2026, 11, 26, 20, 45, tzinfo=UTC)
BUY, SELL = Side.BUY, Side.SELL


def quote(
    bid: str,
    ask: str,
    sizes: tuple[str, str] = ("100", "100"),
    source: QuoteSource = QuoteSource.REST,
    age_s: float = 0,
) -> Quote:
    return Quote(
        symbol="AAA",
        bid=Decimal(bid),
        ask=Decimal(ask),
        bid_size=Decimal(sizes[0]),
        ask_size=Decimal(sizes[1]),
        as_of=NOW - timedelta(seconds=age_s),
        source=source,
    )


def stream(bid: str, ask: str, sizes: tuple[str, str] = ("100", "100"), age_s: float = 0) -> Quote:
    return quote(bid, ask, sizes, QuoteSource.STREAM, age_s)


@pytest.mark.parametrize(
    ("the_quote", "qty", "side", "price"),
    [
        (stream("150.00", "150.10", ("1000", "1000")), "50", BUY, "150.00"),
        (stream("150.00", "150.10", ("1000", "1000")), "50", SELL, "150.10"),
        (stream("150.00", "150.10", ("100", "100")), "90", BUY, "150.02"),
        (stream("150.00", "150.10", ("100", "100")), "90", SELL, "150.08"),
        (quote("100.00", "100.50"), "10", BUY, "100.01"),
        (quote("100.00", "100.50"), "10", SELL, "100.49"),
        (quote("10.00", "10.01"), "10", BUY, "10.00"),
        (quote("10.00", "10.01"), "10", SELL, "10.01"),
    ],
    ids=[
        "3.6A-deep-book-buy-at-bid",
        "3.6A-deep-book-sell-at-ask",
        "3.6A-large-order-buy-two-ticks-up",
        "3.6A-large-order-sell-two-ticks-down",
        "3.6B-rest-buy-one-cent-inside",
        "3.6B-rest-sell-one-cent-inside",
        "3.6B-one-cent-spread-buy-stays-at-bid",
        "3.6B-one-cent-spread-sell-stays-at-ask",
    ],
)
def test_initial_limit_price_vectors_of_the_spec(
    the_quote: Quote, qty: str, side: Side, price: str
) -> None:
    assert initial_limit_price(side, the_quote, Decimal(qty)) == Decimal(price)


@pytest.mark.parametrize(
    ("sizes", "qty", "buy", "sell"),
    [
        (("100", "100"), "40", "150.01", "150.09"),
        (("100", "200"), "10", "150.00", "150.09"),
        (("300", "100"), "10", "150.01", "150.10"),
    ],
    ids=[
        "medium-order-one-tick",
        "ask-heavy-book-sells-a-tick-lower",
        "bid-heavy-book-buys-higher",
    ],
)
def test_stream_price_follows_size_ratio_and_book_imbalance(
    sizes: tuple[str, str], qty: str, buy: str, sell: str
) -> None:
    the_quote = stream("150.00", "150.10", sizes)

    assert initial_limit_price(BUY, the_quote, Decimal(qty)) == Decimal(buy)
    assert initial_limit_price(SELL, the_quote, Decimal(qty)) == Decimal(sell)


def test_stream_sell_is_never_priced_below_the_buy() -> None:
    locked = stream("10.00", "10.01", ("10", "10"))

    buy = initial_limit_price(BUY, locked, Decimal(100))
    sell = initial_limit_price(SELL, locked, Decimal(100))

    assert buy == Decimal("10.02")
    assert sell == buy


def test_rest_price_of_a_mirrored_one_sided_quote_is_that_side() -> None:
    one_sided = rest_quote(quote("0", "20.00", ("0", "5")))

    assert one_sided is not None
    assert (one_sided.bid, one_sided.ask) == (Decimal("20.00"), Decimal("20.00"))
    assert initial_limit_price(BUY, one_sided, Decimal(1)) == Decimal("20.00")
    assert initial_limit_price(SELL, one_sided, Decimal(1)) == Decimal("20.00")


def test_rest_quote_with_no_side_is_no_quote() -> None:
    assert rest_quote(quote("0", "0", ("0", "0"))) is None


def test_a_sub_cent_price_is_raised_to_one_cent() -> None:
    assert initial_limit_price(SELL, quote("0.001", "0.004"), Decimal(1)) == Decimal("0.01")


def test_prices_are_quantised_to_cents_half_even() -> None:
    assert initial_limit_price(BUY, quote("10.015", "10.10"), Decimal(1)) == Decimal("10.02")
    assert initial_limit_price(BUY, quote("10.025", "10.10"), Decimal(1)) == Decimal("10.04")


@pytest.mark.parametrize(
    ("side", "anchor", "bid", "ask", "history", "price"),
    [
        (BUY, "100.25", "100.00", "100.50", ["100.25"], "100.52"),
        (SELL, "100.25", "100.00", "100.50", ["100.25"], "99.98"),
        (BUY, "100.25", "100.00", "100.50", ["100.25", "100.52"], "100.54"),
        (SELL, "100.25", "100.00", "100.50", ["100.25", "99.98"], "99.96"),
        (BUY, "99.00", "100.00", "101.00", ["99.00"], "101.02"),
        (BUY, None, "100.00", "100.50", [], "100.52"),
        (SELL, None, "100.00", "100.50", [], "99.98"),
        (BUY, "100.54", "100.00", "100.50", ["100.54", "100.52"], "100.56"),
        (SELL, "0.05", "0.02", "0.04", ["0.05"], "0.05"),
        (SELL, "0.01", "0.02", "0.04", ["0.01"], None),
        (SELL, "0.04", "0.03", "0.05", ["0.04"], None),
    ],
    ids=[
        "3.7-example-buy",
        "3.7-example-sell",
        "buy-duplicate-price-bumped",
        "sell-duplicate-price-bumped",
        "far-anchor-buy-halfway-beats-the-minimum-cross",
        "bump-repeats-until-the-price-is-new",
        "buy-without-anchor",
        "sell-without-anchor",
        "non-positive-falls-back-to-the-anchor",
        "non-positive-with-cent-anchor-stops",
        "one-cent-stops",
    ],
)
def test_repeg_price_vectors(
    side: Side,
    anchor: str | None,
    bid: str,
    ask: str,
    history: list[str],
    price: str | None,
) -> None:
    result = repeg_price(
        side,
        Decimal(anchor) if anchor is not None else None,
        quote(bid, ask),
        [Decimal(p) for p in history],
    )

    assert result == (Decimal(price) if price is not None else None)


@pytest.mark.parametrize(
    ("bid", "ask", "suspicious"),
    [
        ("-0.01", "10", True),
        ("10", "-1", True),
        ("0.005", "10", True),
        ("10", "0.009", True),
        ("10.10", "10.00", True),
        ("9.00", "10.01", True),
        ("9.00", "10.00", False),
        ("10.00", "10.05", False),
        ("0", "10.00", False),
    ],
    ids=[
        "negative-bid",
        "negative-ask",
        "sub-cent-bid",
        "sub-cent-ask",
        "inverted",
        "spread-over-ten-percent",
        "spread-exactly-ten-percent",
        "normal",
        "one-sided",
    ],
)
def test_suspicious_quote_checks(bid: str, ask: str, suspicious: bool) -> None:
    assert is_suspicious(stream(bid, ask)) is suspicious


@pytest.mark.parametrize(
    ("bid", "ask", "valid"),
    [("0", "0", False), ("10.01", "10.00", False), ("0", "10", True), ("10", "10", True)],
)
def test_quote_validity(bid: str, ask: str, valid: bool) -> None:
    assert is_valid_quote(stream(bid, ask)) is valid


def test_rest_quote_is_used_when_no_stream_quote_exists() -> None:
    rest = quote("10.00", "10.02", age_s=1)

    assert choose_quote(None, rest, NOW, max_age_s=5) is rest


def test_a_fresh_newer_stream_quote_replaces_the_rest_quote() -> None:
    rest, fresh = quote("10.00", "10.02", age_s=2), stream("10.01", "10.02", age_s=1)

    assert choose_quote(fresh, rest, NOW, max_age_s=5) is fresh


@pytest.mark.parametrize(
    "bad_stream",
    [stream("10.01", "10.02", age_s=6), stream("10.01", "10.02", age_s=3), stream("0", "0")],
    ids=["older-than-the-age-limit", "older-than-the-rest-quote", "invalid"],
)
def test_rest_quote_wins_over_a_stale_or_invalid_stream_quote(bad_stream: Quote) -> None:
    rest = quote("10.00", "10.02", age_s=2)

    assert choose_quote(bad_stream, rest, NOW, max_age_s=5) is rest


def test_8_27_suspicious_stream_quote_yields_to_a_sane_rest_quote() -> None:
    rest, wide = quote("10.00", "10.02", age_s=2), stream("8.00", "10.00")

    assert choose_quote(wide, rest, NOW, max_age_s=5) is rest


def test_8_27_suspicious_stream_quote_is_kept_when_rest_is_suspicious_too() -> None:
    rest, wide = quote("7.00", "10.00", age_s=2), stream("8.00", "10.00")

    assert choose_quote(wide, rest, NOW, max_age_s=5) is wide


@pytest.mark.parametrize(
    ("remaining", "fractionable", "price", "negligible"),
    [
        ("0.009", True, "100.00", True),
        ("0.00995", True, "100.00", False),
        ("0.01", True, "100.00", False),
        ("0.4", False, "100.00", True),
        ("0.5", False, "100.00", True),
        ("1.5", False, "100.00", False),
        ("0", True, None, True),
        ("0.001", True, None, False),
    ],
    ids=[
        "8-24-fractionable-under-one-dollar",
        "fractionable-rounds-to-one-dollar",
        "fractionable-one-dollar",
        "8-24-whole-share-under-half-a-share",
        "whole-share-half-rounds-to-even-zero",
        "whole-share-one-and-a-half-rounds-to-two",
        "no-price-empty",
        "no-price-unknown-worth-is-chased",
    ],
)
def test_remaining_too_small_rule(
    remaining: str, fractionable: bool, price: str | None, negligible: bool
) -> None:
    result = remaining_is_negligible(
        Decimal(remaining),
        fractionable,
        Decimal(price) if price is not None else None,
        Decimal("1.00"),
    )

    assert result is negligible


def test_remainder_is_valued_at_the_far_side_else_the_mid() -> None:
    book = quote("99.00", "101.00")

    assert remainder_reference_price(BUY, book) == Decimal("101.00")
    assert remainder_reference_price(SELL, book) == Decimal("99.00")
    assert remainder_reference_price(SELL, quote("101.00", "99.00")) == Decimal(100)
    assert remainder_reference_price(SELL, None) is None


@pytest.mark.parametrize(
    ("message", "action", "qty"),
    [
        (
            "insufficient qty available for order (requested: 10, available: 4)",
            InsufficientQtyAction.RETRY,
            "4",
        ),
        (
            '{"code":40310000,"message":"insufficient qty available for order",'
            '"available":"2.5","requested":"10"}',
            InsufficientQtyAction.RETRY,
            "2.5",
        ),
        (
            "insufficient qty available for order (requested: 10, available: 0.01)",
            InsufficientQtyAction.COMPLETE,
            "0.01",
        ),
        (
            "insufficient qty available for order (requested: 10, available: 0)",
            InsufficientQtyAction.COMPLETE,
            "0",
        ),
        ("insufficient qty available for order", InsufficientQtyAction.FAIL, None),
        ("insufficient buying power", InsufficientQtyAction.FAIL, None),
    ],
    ids=[
        "8-25-retry-with-n",
        "json-body",
        "8-25-cent-or-less-is-complete",
        "nothing-left",
        "unparsable",
        "other-error",
    ],
)
def test_insufficient_qty_on_repeg(
    message: str, action: InsufficientQtyAction, qty: str | None
) -> None:
    decision = after_insufficient_qty(message)

    assert decision.action is action
    assert decision.qty == (Decimal(qty) if qty is not None else None)
