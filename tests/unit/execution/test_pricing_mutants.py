"""Limit pricing at the edges mutation testing (`make mutation`) found unpinned: quotes under a
dollar and quoted in fractions of a cent, one-sided quotes, a market that moved past the anchor,
and the exact thresholds of the stream-quote rules."""

from __future__ import annotations

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
    usable_quote,
)
from shared.trading import Quote, Side
from tests.unit.execution.test_pricing import BUY, NOW, SELL, quote, stream


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
    assert initial_limit_price(side, quote(bid, ask), Decimal(1)) == Decimal(price)


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
    assert initial_limit_price(side, quote(bid, ask), Decimal(1)) == Decimal(price)


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


# ---------------------------------------------------------------------- the optional stream quote


def test_a_stream_quote_exactly_as_old_as_the_age_limit_is_still_used() -> None:
    rest, fresh = quote("10.00", "10.02", age_s=6), stream("10.01", "10.02", age_s=5)

    assert choose_quote(fresh, rest, NOW, max_age_s=5) is fresh


def test_a_stream_quote_as_old_as_the_rest_quote_yields_to_it() -> None:
    rest, same_age = quote("10.00", "10.02", age_s=2), stream("10.01", "10.02", age_s=2)

    assert choose_quote(same_age, rest, NOW, max_age_s=5) is rest


@pytest.mark.parametrize(
    ("bid", "ask", "suspicious"),
    [
        ("0", "0.005", True),
        ("0.0099", "0.01", True),
        ("0.01", "0.011", False),
        ("0.01", "0.01", False),
        ("10.00", "0", False),
        ("0.50", "0.51", False),
        ("0.40", "0.50", True),
        ("10.00", "10.00", False),
    ],
    ids=[
        "ask-only-sub-cent",
        "sub-cent-bid-in-a-narrow-spread",
        "bid-of-exactly-a-cent",
        "locked-at-a-cent",
        "bid-only",
        "sane-penny-stock",
        "penny-stock-spread-over-ten-percent",
        "locked",
    ],
)
def test_suspicious_quote_checks_at_their_thresholds(bid: str, ask: str, suspicious: bool) -> None:
    assert is_suspicious(stream(bid, ask)) is suspicious


@pytest.mark.parametrize(
    ("sizes", "qty", "buy", "sell"),
    [
        (("100", "100"), "80", "150.01", "150.09"),
        (("100", "100"), "30", "150.00", "150.10"),
        (("0", "0"), "1", "150.02", "150.08"),
        (("60", "40"), "1", "150.00", "150.10"),
        (("40", "60"), "1", "150.00", "150.10"),
        (("50", "60"), "1", "150.00", "150.10"),
    ],
    ids=[
        "exactly-80-percent-of-the-size-steps-one-tick",
        "exactly-30-percent-does-not-step",
        "no-displayed-size-counts-as-one-share-and-is-no-imbalance",
        "bid-heavy-by-exactly-20-percent-does-not-step",
        "ask-heavy-by-exactly-20-percent-does-not-step",
        "a-slight-imbalance-does-not-step",
    ],
)
def test_stream_price_steps_at_their_thresholds(
    sizes: tuple[str, str], qty: str, buy: str, sell: str
) -> None:
    the_quote = stream("150.00", "150.10", sizes)

    assert initial_limit_price(BUY, the_quote, Decimal(qty)) == Decimal(buy)
    assert initial_limit_price(SELL, the_quote, Decimal(qty)) == Decimal(sell)


def test_a_one_cent_stream_spread_with_a_heavy_book_never_reaches_the_far_side() -> None:
    bid_heavy = stream("10.00", "10.01", ("300", "100"))
    ask_heavy = stream("10.00", "10.01", ("100", "300"))

    assert initial_limit_price(BUY, bid_heavy, Decimal(1)) == Decimal("10.00")
    assert initial_limit_price(SELL, ask_heavy, Decimal(1)) == Decimal("10.01")


def test_an_available_figure_in_another_refusal_is_not_read_as_insufficient_qty() -> None:
    decision = after_insufficient_qty("insufficient buying power (available: 4)")

    assert decision.action is InsufficientQtyAction.FAIL
    assert decision.qty is None
