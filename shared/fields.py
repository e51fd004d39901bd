"""Checked field types for values that cross a process boundary, so that the same rule (UTC,
upper-case symbols, finite Decimals) applies wherever a timestamp, symbol or amount is read:
in an event, a broker's answer or a quote."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints


def _as_utc(value: datetime) -> datetime:
    # A naive timestamp is read as UTC; aware ones are normalised.
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
"""A timezone-aware UTC timestamp; naive input is taken to be UTC."""

Symbol = Annotated[
    str, StringConstraints(strip_whitespace=True, to_upper=True, min_length=1, max_length=10)
]
"""A ticker, stripped and upper-cased, 1–10 characters."""

Money = Annotated[Decimal, Field(allow_inf_nan=False)]
"""Dollars, prices or quantities: exact, finite, serialised as a JSON string."""

NonNegativeMoney = Annotated[Decimal, Field(allow_inf_nan=False, ge=0)]
PositiveMoney = Annotated[Decimal, Field(allow_inf_nan=False, gt=0)]
