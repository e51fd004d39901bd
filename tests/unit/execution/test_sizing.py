from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from services.execution.sizing import (
    BELOW_MIN_NOTIONAL,
    NO_PRICE,
    ROUNDS_TO_ZERO,
    AssetInfo,
    PreflightCode,
    SizedOrder,
    SizingOutcome,
    is_liquidation,
    market_buy_shortfall,
    preflight,
    remaining_quantity,
    size_order,
    spendable_buying_power,
)
from shared.trading import Side

FRACTIONABLE = AssetInfo(tradable=True, fractionable=True)
WHOLE_SHARES = AssetInfo(tradable=True, fractionable=False)
MIN_NOTIONAL = Decimal("1.00")


@dataclass(frozen=True)
class SizingCase:
    side: Side
    trade_amount: str
    price: str | None
    asset: AssetInfo | None
    expected: SizedOrder
    liquidation: bool = False
    position_qty: str | None = None
    qty_available: str | None = None


def sized(qty: str) -> SizedOrder:
    return SizedOrder(SizingOutcome.SIZED, Decimal(qty))


def skipped(reason: str) -> SizedOrder:
    return SizedOrder(SizingOutcome.SKIPPED, Decimal(0), reason)


SIZING_CASES = {
    "fractionable-buy-six-decimals-half-even": SizingCase(
        Side.BUY, "100", "3", FRACTIONABLE, sized("33.333333")
    ),
    "half-even-at-the-sixth-decimal": SizingCase(
        Side.BUY, "1.0000025", "1", FRACTIONABLE, sized("1.000002")
    ),
    "8-04-liquidation-sells-the-whole-position-whatever-the-price": SizingCase(
        Side.SELL,
        "-1000",
        None,
        WHOLE_SHARES,
        sized("10"),
        liquidation=True,
        position_qty="10",
        qty_available="10",
    ),
    "8-04-liquidation-without-a-position-rounds-to-zero": SizingCase(
        Side.SELL, "-1000", "100", WHOLE_SHARES, skipped(ROUNDS_TO_ZERO), liquidation=True
    ),
    "8-12-asset-metadata-unavailable-floors-to-whole-shares": SizingCase(
        Side.BUY, "1000", "30", None, sized("33")
    ),
    "8-13-whole-share-asset-floors-a-fractional-quantity": SizingCase(
        Side.SELL, "-250", "100", WHOLE_SHARES, sized("2"), qty_available="10"
    ),
    "8-14-quantity-rounding-to-zero-is-skipped": SizingCase(
        Side.BUY, "99", "100", WHOLE_SHARES, skipped(ROUNDS_TO_ZERO)
    ),
    "8-14-tiny-fractionable-sell-rounding-to-zero-is-skipped": SizingCase(
        Side.SELL, "-0.00001", "100", FRACTIONABLE, skipped(ROUNDS_TO_ZERO)
    ),
    "8-15-fractionable-buy-below-one-dollar-is-skipped": SizingCase(
        Side.BUY, "0.99", "10", FRACTIONABLE, skipped(BELOW_MIN_NOTIONAL)
    ),
    "8-15-fractionable-buy-of-exactly-one-dollar-is-sized": SizingCase(
        Side.BUY, "1.00", "10", FRACTIONABLE, sized("0.1")
    ),
    "8-15-fractionable-buy-without-price-is-skipped": SizingCase(
        Side.BUY, "500", None, FRACTIONABLE, skipped(BELOW_MIN_NOTIONAL)
    ),
    "8-15-sells-are-never-skipped-for-notional": SizingCase(
        Side.SELL, "-0.50", "0.25", FRACTIONABLE, sized("2")
    ),
    "whole-share-buy-without-price-fails-no-price": SizingCase(
        Side.BUY,
        "500",
        None,
        WHOLE_SHARES,
        SizedOrder(SizingOutcome.FAILED, Decimal(0), NO_PRICE),
    ),
    "partial-sell-without-price-fails-no-price": SizingCase(
        Side.SELL,
        "-500",
        None,
        FRACTIONABLE,
        SizedOrder(SizingOutcome.FAILED, Decimal(0), NO_PRICE),
    ),
    "8-43-price-fall-caps-the-sell-at-the-available-quantity": SizingCase(
        Side.SELL, "-1000", "80", WHOLE_SHARES, sized("10"), qty_available="10"
    ),
    "8-43-fractional-cap-is-truncated-never-rounded-up": SizingCase(
        Side.SELL, "-1000", "80", FRACTIONABLE, sized("2.5"), qty_available="2.5000009"
    ),
    "8-43-cap-on-a-whole-share-asset-floors-the-available-quantity": SizingCase(
        Side.SELL, "-1000", "80", WHOLE_SHARES, sized("2"), qty_available="2.7"
    ),
    "liquidation-is-capped-by-shares-held-in-foreign-orders": SizingCase(
        Side.SELL,
        "-1000",
        "100",
        WHOLE_SHARES,
        sized("6"),
        liquidation=True,
        position_qty="10",
        qty_available="6",
    ),
    "liquidation-sells-a-fractional-holding-of-a-whole-share-asset-exactly": SizingCase(
        Side.SELL,
        "-30",
        "100",
        WHOLE_SHARES,
        sized("0.3"),
        liquidation=True,
        position_qty="0.3",
        qty_available="0.3",
    ),
    "liquidation-sells-the-exact-quantity-beyond-six-decimals": SizingCase(
        Side.SELL,
        "-700",
        "100",
        FRACTIONABLE,
        sized("7.2273576"),
        liquidation=True,
        position_qty="7.2273576",
        qty_available="7.2273576",
    ),
    "liquidation-with-the-asset-unknown-is-not-floored": SizingCase(
        Side.SELL,
        "-500",
        "100",
        None,
        sized("5.5"),
        liquidation=True,
        position_qty="5.5",
        qty_available="5.5",
    ),
    "nothing-available-to-sell-is-skipped": SizingCase(
        Side.SELL, "-1000", "100", WHOLE_SHARES, skipped(ROUNDS_TO_ZERO), qty_available="0"
    ),
}


@pytest.mark.parametrize("case", list(SIZING_CASES.values()), ids=list(SIZING_CASES.keys()))
def test_sizing_edge_cases_of_the_spec(case: SizingCase) -> None:
    result = size_order(
        side=case.side,
        trade_amount=Decimal(case.trade_amount),
        liquidation=case.liquidation,
        price=Decimal(case.price) if case.price is not None else None,
        position_qty=Decimal(case.position_qty) if case.position_qty is not None else None,
        qty_available=Decimal(case.qty_available) if case.qty_available is not None else None,
        asset=case.asset,
        min_notional_usd=MIN_NOTIONAL,
    )

    assert result == case.expected


@pytest.mark.parametrize(
    ("qty", "asset", "valid", "sent_qty", "code", "asset_unknown"),
    [
        ("2.5", None, True, "2.5", None, True),
        ("3", AssetInfo(tradable=False, fractionable=True), False, "3", "NOT_TRADABLE", False),
        ("3", WHOLE_SHARES, True, "3", None, False),
        ("3.7", WHOLE_SHARES, True, "3", None, False),
        ("0.7", WHOLE_SHARES, False, "0", "ZERO_QUANTITY_AFTER_ROUNDING", False),
        ("0.123456", FRACTIONABLE, True, "0.123456", None, False),
        ("0", FRACTIONABLE, False, "0", "INVALID_QUANTITY", False),
        ("-1", None, False, "-1", "INVALID_QUANTITY", True),
    ],
    ids=[
        "8-12-lookup-failed-allowed-with-warning",
        "8-11-not-tradable",
        "whole-quantity-of-whole-share-asset",
        "fractional-quantity-floored",
        "floor-to-zero",
        "fractionable-positive",
        "fractionable-zero",
        "non-positive-refused-even-when-asset-unknown",
    ],
)
def test_preflight_outcomes_of_the_spec_table(
    qty: str,
    asset: AssetInfo | None,
    valid: bool,
    sent_qty: str,
    code: str | None,
    asset_unknown: bool,
) -> None:
    result = preflight("AAA", Decimal(qty), asset)

    assert result.valid is valid
    assert result.qty == Decimal(sent_qty)
    assert result.code == (PreflightCode(code) if code else None)
    assert result.asset_unknown is asset_unknown
    if not valid:
        assert result.message is not None and "AAA" in result.message


def test_not_tradable_message_names_the_asset() -> None:
    result = preflight("XYZ", Decimal(1), AssetInfo(tradable=False, fractionable=False))

    assert result.message == "asset XYZ is not tradable"


@pytest.mark.parametrize(
    ("requested", "filled_total", "remaining"),
    [("10", "0", "10"), ("10", "3.5", "6.5"), ("10", "10", "0"), ("10", "12", "0")],
    ids=["nothing-filled", "partial", "complete", "over-reported-fill-never-goes-negative"],
)
def test_8_23_remaining_is_requested_less_cumulative_fills(
    requested: str, filled_total: str, remaining: str
) -> None:
    assert remaining_quantity(Decimal(requested), Decimal(filled_total)) == Decimal(remaining)


def test_8_19_market_buy_short_of_buying_power_names_cost_and_available() -> None:
    reason = market_buy_shortfall("AAA", Decimal(10), Decimal("100.005"), Decimal("999.9"))

    assert reason == "insufficient buying power for AAA: estimated cost=$1000.05, available=$999.90"


def test_market_buy_within_buying_power_or_without_price_passes() -> None:
    assert market_buy_shortfall("AAA", Decimal(10), Decimal(100), Decimal(1000)) is None
    assert market_buy_shortfall("AAA", Decimal(10), None, Decimal(0)) is None


def test_only_a_sell_to_a_zero_target_is_a_liquidation() -> None:
    assert is_liquidation(Side.SELL, Decimal(0))
    assert not is_liquidation(Side.SELL, Decimal("0.1"))
    assert not is_liquidation(Side.BUY, Decimal(0))


@pytest.mark.parametrize(
    ("buying_power", "day_trading", "flagged", "spendable"),
    [
        ("5000", None, False, "5000"),  # no day-trading figure reported
        ("5000", "3000", False, "3000"),  # a margin account: the smaller binds
        ("5000", "8000", True, "5000"),
        ("5000", "0", True, "0"),  # a pattern day trader with none left
        ("5000", "0", False, "5000"),  # a cash account reports 0: not a limit
    ],
)
def test_a_buy_spends_the_smaller_of_the_two_buying_powers_on_a_margin_account(
    buying_power: str, day_trading: str | None, flagged: bool, spendable: str
) -> None:
    assert spendable_buying_power(
        Decimal(buying_power), Decimal(day_trading) if day_trading else None, flagged
    ) == Decimal(spendable)
