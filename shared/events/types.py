"""The field types events are built from: the checked boundary types of `shared.fields`
(timestamps, symbols, amounts), given here too so every event module reads its types from one
place, and the ones only events use (weights, actions, order types, failure steps)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, StringConstraints

from shared.fields import Money as Money
from shared.fields import NonNegativeMoney as NonNegativeMoney
from shared.fields import PositiveMoney as PositiveMoney
from shared.fields import Symbol as Symbol
from shared.fields import UtcDatetime as UtcDatetime


def _normalise_symbol(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


Weight = Annotated[Decimal, Field(allow_inf_nan=False, ge=0, le=1)]
"""A fraction of the portfolio in [0, 1], exact so that fingerprints and sums are stable."""

NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

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
