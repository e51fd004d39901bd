"""Limit pricing at the edges mutation testing (`make mutation`) found unpinned: quotes under a
dollar and quoted in fractions of a cent, one-sided quotes, a market that moved past the anchor,
and the exact thresholds of the stream-quote rules."""

from __future__ import annotations

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
    usable_quote,
)
from shared.trading import Quote, Side
from tests.unit.execution.test_pricing import BUY, SELL, quote


def sides(the_quote: Quote | None) -> tuple[Decimal, Decimal] | None:
    return (the_quote.bid, the_quote.ask) if the_quote is not None else None


# ---------------------------------------------------------------------- which quote is usable


def test_a_bid_only_quote_is_mirrored_to_its_bid() -> None:
    assert sides(rest_quote(quote("20.00", "0"))) == (Decimal("20.00"), Decimal("20.00"))


def test_a_one_sided_quote_under_a_dollar_is_mirrored_too() -> None:
    assert sides(rest_quote(quote("0.50", "0"))) == (Decimal("0.50"), Decimal("0.50"))
    assert sides(rest_quote(quote("0", "0.50"))) == (Decimal("0.50"), Decimal("0.50"))


def test_a_two_sided_quote_under_a_dollar_is_kept_as_quoted() -> None:
    assert sides(rest_quote(quote("0.40", "0.50"))) == (Decimal("0.40"), Decimal("0.50"))


@pytest.mark.parametrize(
    ("bid", "ask"), [("10.01", "10.00"), ("0.60", "0.50")], ids=["crossed", "crossed-penny-stock"]
)
def test_a_crossed_quote_is_unusable(bid: str, ask: str) -> None:
    assert not is_valid_quote(quote(bid, ask))
    assert usable_quote(quote(bid, ask)) is None


# ---------------------------------------------------------------------- the first limit price


@pytest.mark.parametrize(
    ("side", "bid", "ask", "price"),
    [
        (BUY, "0.5060", "0.5175", "0.51"),
        (SELL, "0.5025", "0.5140", "0.51"),
    ],
    ids=["buy-one-cent-above-the-bid-would-pass-the-mid", "sell-one-cent-below-would-pass-it"],
)
def test_a_sub_penny_quote_is_priced_at_most_to_the_mid(
    side: Side, bid: str, ask: str, price: str
) -> None:
    assert initial_limit_price(side, quote(bid, ask)) == Decimal(price)


@pytest.mark.parametrize(
    ("side", "bid", "ask", "price"),
    [
        (BUY, "0.5020", "0.5100", "0.50"),
        (BUY, "0.5020", "0.5120", "0.50"),
        (SELL, "0.5100", "0.5180", "0.52"),
    ],
    ids=["buy-stays-at-the-bid", "buy-at-exactly-one-cent-wide", "sell-stays-at-the-ask"],
)
def test_a_sub_penny_quote_at_most_a_cent_wide_is_priced_at_the_near_side(
    side: Side, bid: str, ask: str, price: str
) -> None:
    assert initial_limit_price(side, quote(bid, ask)) == Decimal(price)


# ---------------------------------------------------------------------- re-pegs


def test_a_buy_re_pegged_after_the_ask_fell_below_its_limit_goes_half_way_down() -> None:
    price = repeg_price(BUY, Decimal("100.10"), quote("99.90", "100.00"), [Decimal("100.10")])

    assert price == Decimal("100.05")


def test_a_sell_re_pegged_after_the_bid_rose_above_its_limit_goes_half_way_up() -> None:
    price = repeg_price(SELL, Decimal("99.80"), quote("100.00", "100.10"), [Decimal("99.80")])

    assert price == Decimal("99.90")


def test_a_sell_re_peg_under_a_dollar_never_repeats_an_earlier_price() -> None:
    history = [Decimal("0.60"), Decimal("0.48")]

    assert repeg_price(SELL, Decimal("0.60"), quote("0.50", "0.55"), history) == Decimal("0.46")


# ---------------------------------------------------------------------- remainders


def test_a_penny_stock_remainder_is_valued_at_the_side_it_trades_against() -> None:
    assert remainder_reference_price(BUY, quote("0.49", "0.50")) == Decimal("0.50")
    assert remainder_reference_price(SELL, quote("0.49", "0.50")) == Decimal("0.49")


def test_one_whole_share_left_is_still_chased() -> None:
    assert not remaining_is_negligible(Decimal(1), False, Decimal("100.00"), Decimal("1.00"))


def test_a_penny_stock_last_trade_is_a_limit_price_to_the_cent() -> None:
    assert last_trade_limit_price(Decimal("0.504")) == Decimal("0.50")
    assert last_trade_limit_price(Decimal("0.004")) is None
