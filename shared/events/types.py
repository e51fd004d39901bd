"""Field types shared by every event, so that the same rule (UTC, upper-case symbols, finite
Decimals) is applied wherever a timestamp, symbol or amount crosses a process boundary."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints


def _as_utc(value: datetime) -> datetime:
    # A naive timestamp is read as UTC (trading spec, conventions); aware ones are normalised.
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _normalise_symbol(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


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
Weight = Annotated[Decimal, Field(allow_inf_nan=False, ge=0, le=1)]
"""A fraction of the portfolio in [0, 1], exact so that fingerprints and sums are stable."""

NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

Side = Literal["BUY", "SELL"]
Action = Literal["BUY", "SELL", "HOLD"]
OrderType = Literal["MARKET", "LIMIT", "STOP", "STOP_LIMIT"]
FailureStep = Literal["signal_generation", "portfolio_analysis", "trade_execution"]


def _unique_symbols(value: Any) -> Any:
    # Two keys that differ only in case or spaces would silently merge into one; refuse instead.
    if not isinstance(value, dict):
        return value
    seen: dict[str, Any] = {}
    for key in value:
        normalised = _normalise_symbol(key)
        if normalised in seen:
            raise ValueError(f"symbol {key!r} appears twice (as {seen[normalised]!r})")
        seen[normalised] = key
    return value


SymbolWeights = Annotated[dict[Symbol, Weight], BeforeValidator(_unique_symbols)]
"""Target weights per symbol; symbols unique after upper-casing."""

SymbolAmounts = Annotated[dict[Symbol, Money], BeforeValidator(_unique_symbols)]
"""Dollars or prices per symbol; symbols unique after upper-casing."""
