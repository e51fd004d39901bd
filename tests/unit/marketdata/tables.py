"""Bars tables for tests: closes in, the store's seven columns out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import pyarrow as pa


def bars_table(days: Sequence[date], closes: Mapping[str, Sequence[float | None]]) -> pa.Table:
    """One row per (day, symbol) with a close; `None` leaves the bar out."""
    rows = [
        (day, symbol, close)
        for symbol, values in closes.items()
        for day, close in zip(days, values, strict=True)
        if close is not None
    ]
    prices = [close for _, _, close in rows]
    return pa.table(
        {
            "date": pa.array([day for day, _, _ in rows], pa.date32()),
            "symbol": [symbol for _, symbol, _ in rows],
            "open": prices,
            "high": prices,
            "low": prices,
            "close": prices,
            "volume": [1000.0] * len(rows),
        }
    )
