"""What a `--bars` option names: a bars file or a bar-store directory.

Every command that takes bars accepts both, because users hold bars in either form: a file they
exported or were given, or the installation's store (`ALCHEMISER_DATA_DIR` or its `bars/`, as
docs/operations.md writes `--bars data/bars`). The store's manifest, or the SYNTHETIC-DATA note
beside a bars file, says whether they are the generated sample rather than market history.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.marketdata.bars import BarDataError, BarSnapshot
from shared.marketdata.bars_file import load_bars
from shared.marketdata.barstore import BARS_FILE, MANIFEST_FILE, SYNTHETIC_NOTE_FILE, BarStore


@dataclass(frozen=True)
class BarSource:
    bars: BarSnapshot
    synthetic: bool
    source: Path


def load_bar_source(path: Path) -> BarSource:
    """A bars file (Parquet, `.csv`, `.csv.gz`), or a data directory or its `bars/` folder."""
    if path.is_file():
        return BarSource(load_bars(path), (path.parent / SYNTHETIC_NOTE_FILE).is_file(), path)
    if not path.is_dir():
        raise BarDataError(f"{path}: no such bars file or bar-store directory")
    data_dir = _data_dir(path)
    if data_dir is None:
        raise BarDataError(
            f"{path}: no bar store in this directory (no {BARS_FILE} and {MANIFEST_FILE} in it "
            "or in its bars/); give a bars file, or create a store with `alchemiser data import "
            "FILE.csv` or `alchemiser data sample`"
        )
    return load_store(BarStore(data_dir))


def load_store(store: BarStore) -> BarSource:
    """The installation's bar store, as a bar source."""
    return BarSource(store.load(), store.manifest().synthetic, store.path)


def _data_dir(path: Path) -> Path | None:
    """The data directory of a store given by its own folder or the folder above; None when
    neither holds one (checked before any lock file is made in a stranger's folder)."""
    for folder, data_dir in ((path, path.parent), (path / "bars", path)):
        if (folder / MANIFEST_FILE).is_file() and (folder / BARS_FILE).is_file():
            return data_dir
    return None
