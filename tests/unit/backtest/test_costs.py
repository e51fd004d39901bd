"""Slippage and Composer's fee model, fill by fill."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.backtest.costs import fill_fees, fill_price
from shared.trading import Side


def test_a_buy_fills_above_the_close_and_a_sell_below_by_the_slippage_unrounded() -> None:
    close = Decimal("123.457")

    assert fill_price(Side.BUY, close, Decimal(1)) == Decimal("123.4693457")
    assert fill_price(Side.SELL, close, Decimal(1)) == Decimal("123.4446543")
    assert fill_price(Side.BUY, close, Decimal(0)) == close


@pytest.mark.parametrize(
    ("quantity", "value", "fees"),
    [
        # SEC 10 000 × 27.80/1e6 = 0.278 → 0.28; TAF 100 × 0.000166 = 0.0166 → 0.02
        ("100", "10000", "0.30"),
        # SEC 0.0000278 → 0.01; TAF 0.000166 → 0.01: each rounded up to the cent on its own
        ("1", "1", "0.02"),
        # TAF 100 000 × 0.000166 = 16.60, capped at 8.30; SEC 1 000 000 → 27.80
        ("100000", "1000000", "36.10"),
        # a fractional fill: TAF 0.5 × 0.000166 = 0.000083 → 0.01
        ("0.5", "50", "0.02"),
    ],
)
def test_a_sell_pays_the_sec_fee_and_the_capped_taf_each_rounded_up_to_the_cent(
    quantity: str, value: str, fees: str
) -> None:
    assert fill_fees(Side.SELL, Decimal(quantity), Decimal(value), "composer") == Decimal(fees)


def test_a_buy_pays_no_fee_and_no_model_charges_nothing() -> None:
    assert fill_fees(Side.BUY, Decimal(100), Decimal(10000), "composer") == 0
    assert fill_fees(Side.SELL, Decimal(100), Decimal(10000), "none") == 0
