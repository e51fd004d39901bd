"""Daily bars: reading a bars file and the frozen close snapshot the evaluator works on.

A snapshot is what one strategy run sees (dsl.md §3.1): the sessions present in the data and one
close per symbol per session, NaN where the symbol has no bar. Its `content_hash` identifies the
data exactly, so a replay can prove it was fed the same bars (trading.md §1.3); it covers only what
the evaluator reads (sessions and closes) and is the same whichever file format carried them.

Loading is columnar (pyarrow to numpy) because the conformance file alone has 300,000 rows.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from numpy.typing import NDArray

BAR_COLUMNS = ("date", "symbol", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
BAR_SCHEMA = pa.schema(
    [
        ("date", pa.date32()),
        ("symbol", pa.string()),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("volume", pa.float64()),
    ]
)
_HASH_DOMAIN = b"alchemiser.bars.closes/1\n"
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


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
        live prices (dsl.md §3.1): a run in the close window decides on today's prices."""
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


def load_bars(path: Path) -> BarSnapshot:
    """Read a Parquet, `.csv` or `.csv.gz` bars file into a validated snapshot."""
    return snapshot_from_table(read_bars_table(path, columns=("date", "symbol", "close")))


def read_bars_table(path: Path, columns: Sequence[str] = BAR_COLUMNS) -> pa.Table:
    """Read, type and validate a bars file; every one of `BAR_COLUMNS` must be present.

    Only `columns` are materialised. Rows keep file order so errors can name a line.
    """
    if not path.is_file():
        raise BarDataError(f"{path}: no such bars file")
    if _is_csv(path):
        return validated(_read_csv(path, columns), RowLocator(str(path), csv_header_lines=1))
    return validated(_read_parquet(path, columns), RowLocator(str(path)))


@dataclass(frozen=True)
class RowLocator:
    """Names a row of a bars table the way its user can find it: a CSV line or a table row."""

    source: str
    csv_header_lines: int | None = None

    def __call__(self, row: int) -> str:
        if self.csv_header_lines is None:
            return f"{self.source}: row {row + 1}"
        return f"{self.source}:{row + 1 + self.csv_header_lines}"


def validated(table: pa.Table, where: RowLocator) -> pa.Table:
    """Reject missing values, bad closes and duplicate (date, symbol) rows, naming the row."""
    if table.num_rows == 0:
        raise BarDataError(f"{where.source}: no bars (no rows)")
    # Tickers are case-insensitive; strategy files and brokers write them in capitals.
    table = table.set_column(
        table.schema.get_field_index("symbol"),
        "symbol",
        pc.utf8_upper(pc.utf8_trim_whitespace(table.column("symbol"))),
    )
    for name in ("date", "symbol", "close"):
        column = table.column(name)
        if column.null_count:
            row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise BarDataError(f"{where(row)}: column '{name}': missing value; fill it in")
    symbols = table.column("symbol")
    empty = np.flatnonzero(pc.utf8_length(table.column("symbol")).to_numpy() == 0)
    if empty.size:
        raise BarDataError(f"{where(int(empty[0]))}: column 'symbol': empty ticker")
    close = table.column("close").to_numpy()
    bad = np.flatnonzero(~(np.isfinite(close) & (close > 0)))
    if bad.size:
        row = int(bad[0])
        symbol, day = symbols[row].as_py(), table.column("date")[row].as_py()
        raise BarDataError(
            f"{where(row)}: column 'close': close of {symbol} on {day} is {float(close[row])}; "
            "every close must be a finite number > 0 — correct or remove the row"
        )
    duplicate = _Alignment.of(table).first_duplicate()
    if duplicate is not None:
        first, second = duplicate
        day = table.column("date")[second].as_py()
        raise BarDataError(
            f"{where(second)}: duplicate bar for {symbols[second].as_py()} on {day} "
            f"(also at {where(first)}); keep one row per symbol and date"
        )
    return table


def snapshot_from_table(table: pa.Table) -> BarSnapshot:
    """Align a validated bars table (date, symbol, close) on its sessions."""
    alignment = _Alignment.of(table)
    names = alignment.names
    matrix = np.full((len(names), alignment.sessions.size), np.nan)
    matrix[alignment.codes, alignment.day_index] = table.column("close").to_numpy()
    matrix.flags.writeable = False
    order = sorted(range(len(names)), key=names.__getitem__)
    return BarSnapshot(sessions=alignment.sessions, closes={names[i]: matrix[i] for i in order})


@dataclass(frozen=True)
class _Alignment:
    """Each row's symbol code and session index, found in linear time (no sort of the rows)."""

    names: list[str]
    codes: NDArray[np.int64]
    sessions: NDArray[np.datetime64]
    day_index: NDArray[np.int64]

    @classmethod
    def of(cls, table: pa.Table) -> _Alignment:
        encoded = pc.dictionary_encode(table.column("symbol")).combine_chunks()
        days = table.column("date").to_numpy().astype("datetime64[D]").astype(np.int64)
        if days.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            return cls([], empty, np.zeros(0, dtype="datetime64[D]"), empty)
        first = int(days.min())
        present = np.zeros(int(days.max()) - first + 1, dtype=bool)
        present[days - first] = True
        day_index = (np.cumsum(present) - 1)[days - first]
        sessions = (np.flatnonzero(present) + first).astype("datetime64[D]")
        codes = encoded.indices.to_numpy().astype(np.int64)
        return cls(encoded.dictionary.to_pylist(), codes, sessions, day_index)

    def first_duplicate(self) -> tuple[int, int] | None:
        """The earliest pair of rows with the same (symbol, date), by the later row."""
        keys = self.codes * self.sessions.size + self.day_index
        counts = np.bincount(keys, minlength=len(self.names) * self.sessions.size)
        if counts.size == 0 or counts.max() <= 1:
            return None
        order = np.argsort(keys, kind="stable")
        repeated = np.flatnonzero(keys[order][1:] == keys[order][:-1])
        pairs = [(int(order[i]), int(order[i + 1])) for i in repeated]
        return min(pairs, key=lambda pair: pair[1])


def _is_csv(path: Path) -> bool:
    return path.name.lower().endswith((".csv", ".csv.gz"))


def _read_parquet(path: Path, columns: Sequence[str]) -> pa.Table:
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as error:
        raise BarDataError(f"{path}: not a readable Parquet file ({error})") from None
    _require_columns(path, schema.names)
    table = pq.read_table(path, columns=list(columns))
    typed = []
    for name in columns:
        target = BAR_SCHEMA.field(name).type
        try:
            typed.append(pc.cast(table.column(name), target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise BarDataError(
                f"{path}: column '{name}' has type {table.column(name).type}, expected {target}"
            ) from None
    return pa.table(typed, names=list(columns))


def _read_csv(path: Path, columns: Sequence[str]) -> pa.Table:
    with _open_text(path) as stream:
        header = next(csv.reader(stream), [])
    _require_columns(path, [name.strip() for name in header])
    types = {name: BAR_SCHEMA.field(name).type for name in columns}
    try:
        return pa_csv.read_csv(
            path,
            convert_options=pa_csv.ConvertOptions(
                column_types=types,
                include_columns=list(columns),
                null_values=[""],
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as error:
        raise _locate_csv_error(path, columns, error) from None


def _require_columns(path: Path, present: Sequence[str]) -> None:
    missing = [name for name in BAR_COLUMNS if name not in present]
    if missing:
        raise BarDataError(
            f"{path}: missing column {', '.join(repr(m) for m in missing)} "
            f"(found {', '.join(present) or 'no header'}); "
            f"a bars file needs the columns {','.join(BAR_COLUMNS)}"
        )


def _locate_csv_error(path: Path, columns: Sequence[str], error: pa.ArrowInvalid) -> BarDataError:
    """Find the first cell pyarrow rejected, by a slow row scan that only runs on failure."""
    with _open_text(path) as stream:
        for line, name, value in _cells(stream, columns):
            problem = _cell_problem(name, value)
            if problem:
                return BarDataError(f"{path}:{line}: column '{name}': {problem}")
    return BarDataError(f"{path}: {error}")


def _cells(stream: IO[str], columns: Sequence[str]) -> Iterator[tuple[int, str, str]]:
    reader = csv.reader(stream)
    header = [name.strip() for name in next(reader)]
    positions = {name: header.index(name) for name in columns}
    for row in reader:
        for name, position in positions.items():
            value = row[position] if position < len(row) else ""
            yield reader.line_num, name, value


def _cell_problem(name: str, value: str) -> str | None:
    if name == "date":
        try:
            if not _ISO_DAY.fullmatch(value):
                raise ValueError(value)
            date.fromisoformat(value)
        except ValueError:
            return f"{value!r} is not a date; write YYYY-MM-DD"
        return None
    if name in PRICE_COLUMNS:
        try:
            number = float(value)
        except ValueError:
            return f"{value!r} is not a number"
        if name == "close" and not (math.isfinite(number) and number > 0):
            return f"close {value!r} must be a finite number > 0"
    return None


def _open_text(path: Path) -> IO[str]:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


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
