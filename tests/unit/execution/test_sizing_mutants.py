"""Pre-flight checks, the broker's minimum and the day-trading buying power at the edges
mutation testing (`make mutation`) found unpinned."""

from __future__ import annotations

from decimal import Decimal

from services.execution.sizing import preflight, spendable_buying_power, under_broker_minimum
from tests.unit.execution.test_sizing import WHOLE_SHARES


def test_one_whole_share_of_a_whole_share_asset_passes_preflight() -> None:
    result = preflight("AAA", Decimal(1), WHOLE_SHARES)

    assert (result.valid, result.qty) == (True, Decimal(1))


def test_a_fraction_of_a_whole_share_asset_is_refused_saying_it_is_not_fractionable() -> None:
    result = preflight("AAA", Decimal("0.7"), WHOLE_SHARES)

    assert result.message == (
        "quantity 0.7 for AAA floors to 0 whole shares and AAA is not fractionable"
    )


def test_a_fraction_worth_exactly_the_minimum_is_not_under_it() -> None:
    assert under_broker_minimum(Decimal("0.01"), Decimal(100)) is False
    assert under_broker_minimum(Decimal("0.01"), Decimal("99.99")) is True


def test_a_fraction_at_a_price_of_zero_is_left_to_the_broker() -> None:
    assert under_broker_minimum(Decimal("0.5"), Decimal(0)) is False


def test_a_day_trading_buying_power_under_a_dollar_still_limits_a_buy() -> None:
    assert spendable_buying_power(Decimal(1000), Decimal("0.50"), False) == Decimal("0.50")
