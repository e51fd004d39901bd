"""Reading bars files into snapshots: alignment, validation errors, hashing, as-of views."""

from __future__ import annotations

import gzip
from datetime import date
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from shared.marketdata.bars import BarDataError, BarSnapshot
from shared.marketdata.bars_file import load_bars

CONFORMANCE_BARS = Path(__file__).parents[2] / "conformance" / "data" / "bars-public.parquet"
HEADER = "date,symbol,open,high,low,close,volume\n"


def write_csv(path: Path, rows: str) -> Path:
    path.write_text(HEADER + rows, encoding="utf-8")
    return path


def test_conformance_file_loads_as_200_symbols_on_1500_sessions() -> None:
    snapshot = load_bars(CONFORMANCE_BARS)
    assert len(snapshot.symbols) == 200
    assert snapshot.sessions.size == 1500
    assert snapshot.first_session == date(2019, 1, 2)
    assert snapshot.last_session == date(2024, 10, 1)
    table = pq.read_table(CONFORMANCE_BARS, filters=[("symbol", "=", "AAPL")])
    np.testing.assert_array_equal(snapshot.closes["AAPL"], table.column("close").to_numpy())


def test_missing_bars_are_nan_on_the_union_of_dates(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "bars.csv",
        "2024-01-03,SPY,1,1,1,101,10\n2024-01-02,SPY,1,1,1,100,10\n2024-01-03,TLT,1,1,1,90,10\n",
    )
    snapshot = load_bars(path)
    assert snapshot.sessions.tolist() == [date(2024, 1, 2), date(2024, 1, 3)]
    assert snapshot.closes["SPY"].tolist() == [100.0, 101.0]
    assert np.isnan(snapshot.closes["TLT"][0])
    assert snapshot.closes["TLT"][1] == 90.0


def test_same_bars_hash_the_same_from_parquet_csv_and_gzipped_csv(tmp_path: Path) -> None:
    table = pq.read_table(CONFORMANCE_BARS)
    subset = table.filter(pc.is_in(table.column("symbol"), pa.array(["SPY", "TQQQ", "BIL"])))
    pq.write_table(subset, tmp_path / "bars.parquet")
    frame = subset.to_pylist()
    lines = [HEADER] + [
        f"{r['date']},{r['symbol']},{r['open']!r},{r['high']!r},{r['low']!r},"
        f"{r['close']!r},{r['volume']}\n"
        for r in reversed(frame)
    ]
    (tmp_path / "bars.csv").write_text("".join(lines), encoding="utf-8")
    with gzip.open(tmp_path / "bars.csv.gz", "wt", encoding="utf-8") as handle:
        handle.write("".join(lines))
    hashes = {load_bars(tmp_path / name).content_hash for name in ("bars.parquet", "bars.csv")}
    hashes.add(load_bars(tmp_path / "bars.csv.gz").content_hash)
    assert len(hashes) == 1


def test_content_hash_changes_when_one_close_changes() -> None:
    days = [date(2024, 1, 2), date(2024, 1, 3)]
    first = BarSnapshot.from_closes(days, {"SPY": [100.0, 101.0]})
    second = BarSnapshot.from_closes(days, {"SPY": [100.0, 101.01]})
    assert first.content_hash != second.content_hash
    assert first.content_hash == BarSnapshot.from_closes(days, {"SPY": [100.0, 101.0]}).content_hash


@pytest.mark.parametrize("close", ["-1", "0", "nan", "inf"])
def test_a_close_that_is_not_a_positive_number_names_line_ticker_and_date(
    tmp_path: Path, close: str
) -> None:
    path = write_csv(
        tmp_path / "bars.csv", f"2024-01-02,SPY,1,1,1,100,10\n2024-01-03,SPY,1,1,1,{close},10\n"
    )
    with pytest.raises(
        BarDataError, match=r"bars.csv:3: column 'close': close of SPY on 2024-01-03"
    ):
        load_bars(path)


def test_duplicate_rows_name_the_symbol_date_and_both_lines(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "bars.csv",
        "2024-01-02,SPY,1,1,1,100,10\n2024-01-02,TLT,1,1,1,90,10\n2024-01-02,SPY,1,1,1,100,10\n",
    )
    with pytest.raises(
        BarDataError,
        match=r"bars.csv:4: duplicate bar for SPY on 2024-01-02 \(also at .*bars.csv:2\)",
    ):
        load_bars(path)


def test_missing_column_is_named_with_the_expected_header(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("date,symbol,close\n2024-01-02,SPY,100\n", encoding="utf-8")
    with pytest.raises(BarDataError, match=r"missing column 'open', 'high', 'low', 'volume'"):
        load_bars(path)


def test_a_bad_date_names_its_line_and_column(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "bars.csv", "2024-01-02,SPY,1,1,1,100,10\n02/01/2024,SPY,1,1,1,100,10\n"
    )
    with pytest.raises(
        BarDataError, match=r"bars.csv:3: column 'date': '02/01/2024' is not a date"
    ):
        load_bars(path)


def test_a_compact_date_is_refused_with_its_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "bars.csv", "20240102,SPY,1,1,1,100,10\n")
    with pytest.raises(BarDataError, match=r"bars.csv:2: column 'date': '20240102' is not a date"):
        load_bars(path)


def test_tickers_are_trimmed_and_upper_cased_and_a_bom_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("\ufeff" + HEADER + "2024-01-02, spy ,1,1,1,100,10\n", encoding="utf-8")
    assert load_bars(path).symbols == frozenset({"SPY"})


def test_a_missing_close_names_its_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "bars.csv", "2024-01-02,SPY,1,1,1,,10\n")
    with pytest.raises(BarDataError, match=r"bars.csv:2: column 'close': missing value"):
        load_bars(path)


def test_parquet_errors_name_the_row(tmp_path: Path) -> None:
    table = pa.table(
        {
            "date": pa.array([date(2024, 1, 2), date(2024, 1, 3)], pa.date32()),
            "symbol": ["SPY", "SPY"],
            "open": [1.0, 1.0],
            "high": [1.0, 1.0],
            "low": [1.0, 1.0],
            "close": [100.0, -3.0],
            "volume": [1, 1],
        }
    )
    pq.write_table(table, tmp_path / "bars.parquet")
    with pytest.raises(BarDataError, match=r"bars.parquet: row 2: column 'close'.* is -3.0"):
        load_bars(tmp_path / "bars.parquet")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(BarDataError, match=r"no-such\.csv: no such bars file"):
        load_bars(tmp_path / "no-such.csv")


SNAPSHOT = BarSnapshot.from_closes(
    [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 5)],
    {"SPY": [100.0, 101.0, 102.0], "NEW": [np.nan, np.nan, 50.0]},
)


def test_index_of_is_the_last_session_on_or_before_the_day() -> None:
    assert SNAPSHOT.index_of(date(2024, 1, 3)) == 1
    assert SNAPSHOT.index_of(date(2024, 1, 4)) == 1
    assert SNAPSHOT.index_of(date(2030, 1, 1)) == 2
    with pytest.raises(
        BarDataError, match="no bars on or before 2024-01-01: they start on 2024-01-02"
    ):
        SNAPSHOT.index_of(date(2024, 1, 1))


def test_the_close_on_or_before_a_day_is_the_decimal_its_float_spells() -> None:
    bars = BarSnapshot.from_closes(
        [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)],
        {"SPY": [470.1234567891, float("nan"), 472.5]},
    )

    assert bars.close_on_or_before("SPY", date(2024, 1, 3)) == Decimal("470.1234567891")
    assert bars.close_on_or_before("SPY", date(2024, 1, 4)) == Decimal("472.5")
    assert bars.close_on_or_before("SPY", date(2024, 1, 1)) is None
    assert bars.close_on_or_before("QQQ", date(2024, 1, 4)) is None


def test_truncated_keeps_sessions_up_to_the_day_and_symbols_with_a_bar_by_then() -> None:
    visible = SNAPSHOT.truncated(date(2024, 1, 4))
    assert visible.last_session == date(2024, 1, 3)
    assert visible.symbols == frozenset({"SPY"})
    expected = BarSnapshot.from_closes(
        [date(2024, 1, 2), date(2024, 1, 3)], {"SPY": [100.0, 101.0]}
    )
    assert visible.content_hash == expected.content_hash


def test_view_names_symbols_without_bars_as_of_the_day() -> None:
    with pytest.raises(BarDataError, match="no bars for NEW, XYZ on or before 2024-01-03"):
        SNAPSHOT.view(["SPY", "NEW", "XYZ"], date(2024, 1, 3))
    assert SNAPSHOT.view(["NEW"], date(2024, 1, 5)).sessions.tolist() == [date(2024, 1, 5)]


def test_snapshot_rejects_a_non_positive_close_naming_ticker_and_date() -> None:
    with pytest.raises(BarDataError, match=r"close of SPY on 2024-01-03 is 0\.0"):
        BarSnapshot.from_closes([date(2024, 1, 2), date(2024, 1, 3)], {"SPY": [1.0, 0.0]})


def test_snapshot_closes_are_read_only() -> None:
    with pytest.raises(ValueError, match="read-only"):
        SNAPSHOT.closes["SPY"][0] = 1.0
