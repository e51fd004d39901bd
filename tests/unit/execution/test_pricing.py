from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.execution.pricing import (
    initial_limit_price,
    is_valid_quote,
    last_trade_limit_price,
    remainder_reference_price,
    remaining_is_negligible,
    repeg_price,
    rest_quote,
)
from shared.trading import Quote, QuoteSource, Side

NOW = datetime(2026, 11, 26, 20, 45, tzinfo=UTC)
BUY, SELL = Side.BUY, Side.SELL


def quote(bid: str, ask: str, sizes: tuple[str, str] = ("100", "100")) -> Quote:
    return Quote(
        symbol="AAA",
        bid=Decimal(bid),
        ask=Decimal(ask),
        bid_size=Decimal(sizes[0]),
        ask_size=Decimal(sizes[1]),
        as_of=NOW,
        source=QuoteSource.REST,
    )


@pytest.mark.parametrize(
    ("the_quote", "qty", "side", "price"),
    [
        (quote("100.00", "100.50"), "10", BUY, "100.01"),
        (quote("100.00", "100.50"), "10", SELL, "100.49"),
        (quote("10.00", "10.01"), "10", BUY, "10.00"),
        (quote("10.00", "10.01"), "10", SELL, "10.01"),
    ],
    ids=[
        "3.6B-rest-buy-one-cent-inside",
        "3.6B-rest-sell-one-cent-inside",
        "3.6B-one-cent-spread-buy-stays-at-bid",
        "3.6B-one-cent-spread-sell-stays-at-ask",
    ],
)
def test_initial_limit_price_vectors_of_the_spec(
    the_quote: Quote, qty: str, side: Side, price: str
) -> None:
    assert initial_limit_price(side, the_quote) == Decimal(price)


def test_rest_price_of_a_mirrored_one_sided_quote_is_that_side() -> None:
    one_sided = rest_quote(quote("0", "20.00", ("0", "5")))

    assert one_sided is not None
    assert (one_sided.bid, one_sided.ask) == (Decimal("20.00"), Decimal("20.00"))
    assert initial_limit_price(BUY, one_sided) == Decimal("20.00")
    assert initial_limit_price(SELL, one_sided) == Decimal("20.00")


def test_rest_quote_with_no_side_is_no_quote() -> None:
    assert rest_quote(quote("0", "0", ("0", "0"))) is None


def test_a_sub_cent_quote_prices_no_limit_above_zero_never_a_cent() -> None:
    assert initial_limit_price(SELL, quote("0.001", "0.004")) == Decimal("0.00")
    assert initial_limit_price(BUY, quote("0.001", "0.004")) == Decimal("0.00")


def test_the_last_trade_prices_a_limit_to_the_cent_when_positive() -> None:
    assert last_trade_limit_price(Decimal("12.345")) == Decimal("12.34")
    assert last_trade_limit_price(Decimal("0.004")) is None


def test_prices_are_quantised_to_cents_half_even() -> None:
    assert initial_limit_price(BUY, quote("10.015", "10.10")) == Decimal("10.02")
    assert initial_limit_price(BUY, quote("10.025", "10.10")) == Decimal("10.04")


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
    ("bid", "ask", "valid"),
    [("0", "0", False), ("10.01", "10.00", False), ("0", "10", True), ("10", "10", True)],
)
def test_quote_validity(bid: str, ask: str, valid: bool) -> None:
    assert is_valid_quote(quote(bid, ask)) is valid


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
