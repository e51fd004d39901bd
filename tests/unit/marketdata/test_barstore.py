"""The bar store: round trips, imports, synthetic labelling and atomic replacement."""

from __future__ import annotations

import multiprocessing
import os
from datetime import date
from pathlib import Path

import pytest

from shared.marketdata.bars import BarDataError, BarSnapshot
from shared.marketdata.barstore import (
    SYNTHETIC_NOTE_FILE,
    BarStore,
    BarStoreMissingError,
)
from tests.unit.marketdata.tables import bars_table

DAYS = [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)]
HEADER = "date,symbol,open,high,low,close,volume\n"


def test_written_bars_load_back_with_a_manifest_describing_them(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    manifest = store.write(
        bars_table(DAYS, {"TLT": [90.0, 91.0, 92.0], "SPY": [100.0, None, 102.0]}),
        synthetic=False,
        source="test",
    )
    snapshot = store.load()
    expected = BarSnapshot.from_closes(
        DAYS, {"SPY": [100.0, float("nan"), 102.0], "TLT": [90.0, 91.0, 92.0]}
    )
    assert snapshot.content_hash == expected.content_hash == manifest.content_hash
    assert manifest.symbols == ("SPY", "TLT")
    assert (manifest.first_session, manifest.last_session) == (DAYS[0], DAYS[-1])
    assert (manifest.rows, manifest.sessions, manifest.synthetic) == (5, 3, False)
    assert store.last_session() == DAYS[-1]
    assert store.manifest() == manifest


def test_a_missing_store_says_how_to_create_one(tmp_path: Path) -> None:
    store = BarStore(tmp_path / "data")
    assert not store.exists()
    assert store.last_session() is None
    with pytest.raises(BarStoreMissingError, match="alchemiser data sample"):
        store.load()


def test_invalid_bars_are_refused_and_the_store_is_unchanged(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    first = store.write(bars_table(DAYS, {"SPY": [1.0, 2.0, 3.0]}), synthetic=False, source="a")
    with pytest.raises(BarDataError, match="close of SPY on 2024-01-03 is -2"):
        store.write(bars_table(DAYS, {"SPY": [1.0, -2.0, 3.0]}), synthetic=False, source="b")
    assert store.load().content_hash == first.content_hash


def test_import_merges_with_stored_bars_and_replaces_the_same_day_and_symbol(
    tmp_path: Path,
) -> None:
    store = BarStore(tmp_path / "data")
    store.write(bars_table(DAYS, {"SPY": [1.0, 2.0, 3.0]}), synthetic=False, source="first")
    csv = tmp_path / "more.csv"
    csv.write_text(
        HEADER + "2024-01-04,SPY,1,1,1,30,5\n2024-01-05,SPY,1,1,1,4,5\n2024-01-05,TLT,1,1,1,9,5\n",
        encoding="utf-8",
    )
    manifest = store.import_csv(csv)
    snapshot = store.load()
    assert snapshot.closes["SPY"].tolist() == [1.0, 2.0, 30.0, 4.0]
    assert snapshot.last_session == date(2024, 1, 5)
    assert manifest.source == "first; import more.csv"
    assert not manifest.synthetic


def test_import_into_a_synthetic_store_replaces_it_instead_of_mixing(tmp_path: Path) -> None:
    store = BarStore(tmp_path / "data")
    store.write(bars_table(DAYS, {"SPY": [1.0, 2.0, 3.0]}), synthetic=True, source="sample")
    assert (store.path / SYNTHETIC_NOTE_FILE).is_file()
    csv = tmp_path / "real.csv"
    csv.write_text(HEADER + "2024-01-05,QQQ,1,1,1,4,5\n", encoding="utf-8")
    manifest = store.import_csv(csv)
    assert manifest.symbols == ("QQQ",)
    assert not manifest.synthetic
    assert not (store.path / SYNTHETIC_NOTE_FILE).exists()


def test_a_bad_import_names_the_line_and_leaves_the_store_alone(tmp_path: Path) -> None:
    store = BarStore(tmp_path / "data")
    kept = store.write(bars_table(DAYS, {"SPY": [1.0, 2.0, 3.0]}), synthetic=False, source="a")
    csv = tmp_path / "bad.csv"
    csv.write_text(HEADER + "2024-01-05,SPY,1,1,1,4,5\n2024-13-01,SPY,1,1,1,4,5\n")
    with pytest.raises(BarDataError, match=r"bad\.csv:3: column 'date'"):
        store.import_csv(csv)
    assert store.manifest() == kept


def test_a_swap_interrupted_by_a_crash_is_repaired_on_next_use(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    manifest = store.write(bars_table(DAYS, {"SPY": [1.0, 2.0, 3.0]}), synthetic=False, source="a")
    os.rename(store.path, tmp_path / ".bars.old-crashed")
    (tmp_path / ".bars.tmp-crashed").mkdir()
    assert store.exists()
    assert store.load().content_hash == manifest.content_hash
    assert sorted(p.name for p in tmp_path.iterdir()) == [".bars.lock", "bars"]


def _rewrite(data_dir: Path, closes: list[float], times: int) -> None:
    store = BarStore(data_dir)
    for _ in range(times):
        store.write(bars_table(DAYS, {"SPY": closes}), synthetic=False, source="writer")


def test_concurrent_writers_never_expose_a_partial_store(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    versions = ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    allowed = {BarSnapshot.from_closes(DAYS, {"SPY": v}).content_hash for v in versions}
    store.write(bars_table(DAYS, {"SPY": versions[0]}), synthetic=False, source="first")
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_rewrite, args=(tmp_path, v, 8)) for v in versions]
    for writer in writers:
        writer.start()
    while any(writer.is_alive() for writer in writers):
        snapshot = store.load()
        assert snapshot.content_hash in allowed
        assert store.manifest().content_hash in allowed
    for writer in writers:
        writer.join()
        assert writer.exitcode == 0
    assert store.load().content_hash in allowed
