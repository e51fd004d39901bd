"""How amounts read in a report (docs/trading-rules.md, Report contents): the owner compares them
with the broker's statement, so money always has two decimals and thousands separators, and nothing
ever prints as `None` or `nan`."""

from __future__ import annotations

import math
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

MISSING = "—"
"""What a report shows where a value is not known (never `None`)."""

_CENT = Decimal("0.01")
_TENTH = Decimal("0.1")
_MICRO = Decimal("0.000001")


def money(value: Decimal | None) -> str:
    """`$12,345.67`; negative amounts as `-$1,234.50`."""
    if value is None or not value.is_finite():
        return MISSING
    rounded = value.quantize(_CENT, rounding=ROUND_HALF_UP)
    sign = "-" if rounded < 0 else ""
    return f"{sign}${abs(rounded):,.2f}"


def signed_money(value: Decimal | None) -> str:
    """A trade amount: `+$4,000.00` buys, `-$1,250.00` sells."""
    if value is None or not value.is_finite():
        return MISSING
    text = money(value)
    return text if text.startswith("-") or value.is_zero() else f"+{text}"


def quantity(value: Decimal | None) -> str:
    """Shares: two decimals from 1 up, else up to six with trailing zeros trimmed; zero (or
    unknown) is a dash (docs/trading-rules.md, Report contents)."""
    if value is None or not value.is_finite() or value.is_zero():
        return MISSING
    if abs(value) >= 1:
        return f"{value.quantize(_CENT, rounding=ROUND_HALF_UP):,.2f}"
    text = f"{value.quantize(_MICRO, rounding=ROUND_HALF_UP):f}".rstrip("0").rstrip(".")
    return text if text not in ("0", "-0") else f"{value:.2E}"


def percent(fraction: Decimal | None) -> str:
    """A weight (a fraction of the portfolio) as a percentage with one decimal: `60.0%`."""
    if fraction is None or not fraction.is_finite():
        return MISSING
    return f"{(fraction * 100).quantize(_TENTH, rounding=ROUND_HALF_UP)}%"


def indicator(value: float) -> str:
    """An indicator value of a decision trace; NaN or infinity (too little history) shows as
    `n/a` rather than a number-like word."""
    if not math.isfinite(value):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.2f}"
    if abs(value) >= 1 or value == 0:
        return f"{value:.2f}"
    return f"{value:.4f}"


def timestamp(moment: datetime) -> str:
    """`YYYY-MM-DD HH:MM:SS UTC` (event timestamps are UTC already)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
