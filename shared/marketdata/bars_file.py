"""Reading a bars file (Parquet, `.csv` or `.csv.gz`) into a validated table or a snapshot.

Loading is columnar (pyarrow to numpy) because the conformance file alone has 300,000 rows.
Every problem is a `BarDataError` naming the file and the row (a CSV line or a table row).
"""

from __future__ import annotations

import csv
import gzip
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from numpy.typing import NDArray

from shared.marketdata.bars import BarDataError, BarSnapshot

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
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


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
