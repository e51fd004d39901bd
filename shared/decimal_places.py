"""How many decimals a person or a client is shown, by what a number is: money to the cent,
prices to 4 decimals (Alpaca's sub-dollar increment), weights to 6, quantities to 9 (Alpaca's
maximum) — as decimal strings, never `0E+16` or 28 digits, without trailing zeros beyond the
cents of money and prices. The API reference: docs/operations.md, The HTTP API.

The store keeps every value exact; only views round. A value is known by its field name, or, in
a mapping keyed by symbol (`target_allocations`, `live_bars`...), by the mapping's name. A
decimal under no known name is shown exact but without an exponent; a test walks a recorded run
so that none is left unnamed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from enum import IntEnum
from typing import Any


class Places(IntEnum):
    MONEY = 2
    PRICE = 4
    WEIGHT = 6
    QUANTITY = 9


_NAMES: dict[Places, tuple[str, ...]] = {
    Places.MONEY: (
        "cash",
        "equity",
        "buying_power",
        "daytrading_buying_power",
        "portfolio_value",
        "cash_balance",
        "market_value",
        "current_value",
        "target_value",
        "trade_amount",
        "total_trade_value",
        "total_portfolio_value",
        "min_trade_threshold",
        "amount",
        "value",
        "notional",
        "estimated_notional",
        "cost_basis",
        "traded_value",
        "starting_equity",
        "pnl",
        "day_pnl",
        "realised",
        "unrealised",
        "fees",
        "by_strategy",
    ),
    Places.PRICE: (
        "price",
        "limit_price",
        "avg_fill_price",
        "filled_avg_price",
        "fill_price",
        "avg_entry_price",
        "bid",
        "ask",
        "last",
        "mid",
        "live_bars",
    ),
    Places.WEIGHT: (
        "weight",
        "target_weight",
        "current_weight",
        "weight_diff",
        "file_weight",
        "allocation_weight",
        "contribution",
        "allocation",
        "target_allocations",
        "current_values",
        "target_values",
        "deltas",
    ),
    Places.QUANTITY: (
        "qty",
        "filled_qty",
        "requested_qty",
        "shares",
        "bid_size",
        "ask_size",
        "unmatched",
    ),
}
PLACES_BY_NAME: dict[str, Places] = {
    name: places for places, names in _NAMES.items() for name in names
}


_AT_LEAST = {Places.MONEY: 2, Places.PRICE: 2, Places.WEIGHT: 0, Places.QUANTITY: 0}
"""Trailing zeros are dropped down to these places: money and prices always show cents."""


def shown(value: Decimal, places: Places | None) -> str:
    """`value` rounded half-even to `places`, trailing zeros dropped down to cents for money and
    prices and to the integer for weights and quantities; None shows the value exact, in plain
    notation."""
    if places is None:
        return format(value.normalize() if value != 0 else Decimal(0), "f")
    rounded = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    text = format(abs(rounded) if rounded == 0 else rounded, "f")  # never "-0.00"
    whole, _, decimals = text.partition(".")
    decimals = decimals.rstrip("0").ljust(_AT_LEAST[places], "0")
    return f"{whole}.{decimals}" if decimals else whole


def view(data: Any, places: Places | None = None) -> Any:
    """`data` (dicts, lists and scalars) with every Decimal a string shown to its places."""
    if isinstance(data, Decimal):
        return shown(data, places)
    if isinstance(data, Mapping):
        return {key: view(item, _places_of(key, places)) for key, item in data.items()}
    if isinstance(data, list | tuple):
        return [view(item, places) for item in data]
    return data


def unnamed_decimals(data: Any, path: str = "", places: Places | None = None) -> Iterator[str]:
    """The paths of the decimals in `data` that no name gives places to."""
    if isinstance(data, Decimal) and places is None:
        yield path
    elif isinstance(data, Mapping):
        for key, item in data.items():
            yield from unnamed_decimals(item, f"{path}.{key}", _places_of(key, places))
    elif isinstance(data, list | tuple):
        for item in data:
            yield from unnamed_decimals(item, f"{path}[]", places)


def _places_of(key: object, inherited: Places | None) -> Places | None:
    """A known field name decides; any other key (a symbol in a mapping) inherits."""
    return PLACES_BY_NAME.get(key, inherited) if isinstance(key, str) else inherited
