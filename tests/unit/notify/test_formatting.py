"""Amounts in a report read the way a statement does (docs/trading-rules.md, Report contents)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from services.notify import formatting


def test_money_has_thousands_separators_and_two_decimals() -> None:
    assert formatting.money(Decimal("1234567.891")) == "$1,234,567.89"
    assert formatting.money(Decimal("0")) == "$0.00"
    assert formatting.money(Decimal("-1250.5")) == "-$1,250.50"


def test_money_rounds_half_cents_up() -> None:
    assert formatting.money(Decimal("0.005")) == "$0.01"


def test_unknown_money_is_a_dash_not_none() -> None:
    assert formatting.money(None) == "—"
    assert formatting.money(Decimal("NaN")) == "—"


def test_signed_money_marks_buys_with_plus() -> None:
    assert formatting.signed_money(Decimal("30000")) == "+$30,000.00"
    assert formatting.signed_money(Decimal("-20000")) == "-$20,000.00"
    assert formatting.signed_money(Decimal("0")) == "$0.00"


def test_quantity_from_one_up_has_two_decimals() -> None:
    assert formatting.quantity(Decimal("400.5")) == "400.50"
    assert formatting.quantity(Decimal("1")) == "1.00"
    assert formatting.quantity(Decimal("12345")) == "12,345.00"


def test_quantity_below_one_keeps_up_to_six_decimals_trimmed() -> None:
    assert formatting.quantity(Decimal("0.123400")) == "0.1234"
    assert formatting.quantity(Decimal("0.1234567")) == "0.123457"
    assert formatting.quantity(Decimal("0.5")) == "0.5"


def test_zero_quantity_is_a_dash() -> None:
    assert formatting.quantity(Decimal(0)) == "—"
    assert formatting.quantity(None) == "—"


def test_percent_has_one_decimal() -> None:
    assert formatting.percent(Decimal("0.6")) == "60.0%"
    assert formatting.percent(Decimal("0.12345")) == "12.3%"
    assert formatting.percent(Decimal("0.00049")) == "0.0%"


def test_indicator_without_a_value_reads_n_a() -> None:
    assert formatting.indicator(float("nan")) == "n/a"
    assert formatting.indicator(float("inf")) == "n/a"
    assert formatting.indicator(71.254) == "71.25"
    assert formatting.indicator(0.01234) == "0.0123"


def test_timestamp_is_utc_to_the_second() -> None:
    moment = datetime(2026, 3, 2, 20, 46, 5, 123, tzinfo=UTC)
    assert formatting.timestamp(moment) == "2026-03-02 20:46:05 UTC"
