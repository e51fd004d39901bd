"""The frozen close snapshot a strategy run works on.

A snapshot is what one strategy run sees: the sessions present in the data and one close per
symbol per session, NaN where the symbol has no bar. Its `content_hash` identifies the data
exactly, so a replay can prove it was fed the same bars; it covers only what the evaluator reads
(sessions and closes) and is the same whichever file format carried them.

Only numpy here: the strategy language's evaluator depends on this module, and reading bars files
(pyarrow) lives in `shared.marketdata.bars_file`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

_HASH_DOMAIN = b"alchemiser.bars.closes/1\n"


class BarDataError(ValueError):
    """Bars that cannot be used; the message names the file, row, symbol or date and the fix."""


@dataclass(frozen=True, eq=False)
class BarSnapshot:
    """Closes aligned on the sessions present in the data (ascending, unique).

    Compared by identity (its arrays have no single truth value); compare `content_hash` instead.
    """

    sessions: NDArray[np.datetime64]
    closes: Mapping[str, NDArray[np.float64]]

    def __post_init__(self) -> None:
        if self.sessions.dtype != np.dtype("datetime64[D]"):
            raise TypeError(f"sessions must be datetime64[D], got {self.sessions.dtype}")
        if self.sessions.size > 1 and not bool(np.all(self.sessions[1:] > self.sessions[:-1])):
            raise BarDataError("sessions must be strictly ascending dates")
        for symbol, series in self.closes.items():
            if series.shape != self.sessions.shape:
                raise BarDataError(
                    f"{symbol}: {series.size} closes for {self.sessions.size} sessions"
                )
            bad = ~(np.isnan(series) | (np.isfinite(series) & (series > 0)))
            if bad.any():
                at = int(np.flatnonzero(bad)[0])
                raise BarDataError(
                    f"close of {symbol} on {self.sessions[at]} is {float(series[at])}; "
                    "every close must be a finite number > 0"
                )

    @classmethod
    def from_closes(
        cls, days: Sequence[date], closes: Mapping[str, Sequence[float]]
    ) -> BarSnapshot:
        """Build a snapshot from plain lists (tests, hand-made data); NaN marks a missing bar."""
        sessions = np.array(days, dtype="datetime64[D]")
        return cls(
            sessions=sessions,
            closes={
                symbol: _frozen(np.array(values, dtype=np.float64))
                for symbol, values in sorted(closes.items())
            },
        )

    @cached_property
    def symbols(self) -> frozenset[str]:
        return frozenset(self.closes)

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 of a canonical byte form: sessions as day numbers, closes per sorted symbol."""
        digest = hashlib.sha256(_HASH_DOMAIN)
        digest.update(np.int64(self.sessions.size).tobytes())
        digest.update(self.sessions.astype("<i8").tobytes())
        for symbol in sorted(self.closes):
            series = self.closes[symbol]
            digest.update(symbol.encode("utf-8") + b"\0")
            digest.update(np.where(np.isnan(series), np.nan, series).astype("<f8").tobytes())
        return digest.hexdigest()

    @property
    def first_session(self) -> date:
        return _as_date(self._non_empty_sessions()[0])

    @property
    def last_session(self) -> date:
        return _as_date(self._non_empty_sessions()[-1])

    def index_of(self, day: date) -> int:
        """Index of the last session on or before `day` (the as-of bar T)."""
        index = int(np.searchsorted(self.sessions, np.datetime64(day, "D"), side="right")) - 1
        if index < 0:
            first = f"they start on {self.first_session}" if self.sessions.size else "none exist"
            raise BarDataError(f"no bars on or before {day}: {first}")
        return index

    def close_on_or_before(self, symbol: str, day: date) -> Decimal | None:
        """The close of `symbol`'s latest bar on or before `day`, as the decimal its float
        spells (the shortest text that reads back as the same float); None without one."""
        series = self.closes.get(symbol)
        if series is None:
            return None
        index = int(np.searchsorted(self.sessions, np.datetime64(day, "D"), side="right")) - 1
        while index >= 0 and math.isnan(series[index]):
            index -= 1
        return None if index < 0 else Decimal(repr(float(series[index])))

    def truncated(self, day: date) -> BarSnapshot:
        """The bars visible as of `day`: sessions up to it, symbols with a bar by then."""
        end = self.index_of(day) + 1
        return _dropping_empty_symbols(
            self.sessions[:end], {s: c[:end] for s, c in self.closes.items()}
        )

    def view(self, symbols: Iterable[str], end: date) -> BarSnapshot:
        """What a run as of `end` sees of `symbols` (the `MarketData` port's answer)."""
        visible = self.truncated(end)
        missing = sorted(set(symbols) - visible.symbols)
        if missing:
            raise BarDataError(f"no bars for {', '.join(missing)} on or before {end}")
        return visible.restricted(symbols)

    def restricted(self, symbols: Iterable[str]) -> BarSnapshot:
        """Only `symbols` (each must be present), on the sessions where one of them has a bar."""
        wanted = sorted(set(symbols))
        missing = [symbol for symbol in wanted if symbol not in self.closes]
        if missing:
            raise BarDataError(f"no bars for {', '.join(missing)}")
        if not wanted:
            return BarSnapshot(sessions=self.sessions[:0], closes={})
        present = np.zeros(self.sessions.shape, dtype=bool)
        for symbol in wanted:
            present |= ~np.isnan(self.closes[symbol])
        return BarSnapshot(
            sessions=self.sessions[present],
            closes={symbol: _frozen(self.closes[symbol][present]) for symbol in wanted},
        )

    def with_provisional_bar(self, day: date, closes: Mapping[str, float]) -> BarSnapshot:
        """These bars plus a provisional session `day` (after the last one) whose closes are
        live prices (docs/strategy-language.md, Provisional bar): a run in the close window decides
        on today's prices."""
        if self.sessions.size and np.datetime64(day, "D") <= self.sessions[-1]:
            raise BarDataError(
                f"a provisional bar for {day} must come after the last session {self.last_session}"
            )
        unknown = sorted(set(closes) - set(self.closes))
        if unknown:
            raise BarDataError(f"live prices for symbols without bars: {', '.join(unknown)}")
        for symbol, price in closes.items():
            if not math.isfinite(price) or price <= 0:
                raise BarDataError(f"live price of {symbol} on {day} is {price!r}; need > 0")
        sessions = np.append(self.sessions, np.datetime64(day, "D"))
        return BarSnapshot(
            sessions=sessions,
            closes={
                symbol: _frozen(np.append(series, closes.get(symbol, np.nan)))
                for symbol, series in self.closes.items()
            },
        )

    def _non_empty_sessions(self) -> NDArray[np.datetime64]:
        if self.sessions.size == 0:
            raise BarDataError("the snapshot holds no sessions")
        return self.sessions


def _dropping_empty_symbols(
    sessions: NDArray[np.datetime64], closes: Mapping[str, NDArray[np.float64]]
) -> BarSnapshot:
    kept = {s: _frozen(c) for s, c in closes.items() if bool(np.any(~np.isnan(c)))}
    return BarSnapshot(sessions=sessions, closes=kept)


def _frozen(values: NDArray[np.float64]) -> NDArray[np.float64]:
    values.flags.writeable = False
    return values


def _as_date(day: np.datetime64) -> date:
    return date.fromisoformat(str(day.astype("datetime64[D]")))
