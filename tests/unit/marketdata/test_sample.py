"""The synthetic sample: deterministic, range-independent, plausible, on XNYS sessions."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from shared.marketdata.barstore import SYNTHETIC_NOTE_FILE, BarStore
from shared.marketdata.sample import SAMPLE_SESSIONS, ensure_sample, generate_sample
from tests.unit.marketdata.tables import bars_table

WEEKDAYS = np.arange(
    np.datetime64("2021-03-01"), np.datetime64("2021-09-01"), dtype="datetime64[D]"
)
WEEKDAYS = WEEKDAYS[np.is_busday(WEEKDAYS)]


def closes(table_symbols: list[str], sessions: np.ndarray) -> dict[str, np.ndarray]:
    table = generate_sample(table_symbols, sessions)
    return {
        symbol: table.filter(table.column("symbol").to_numpy(zero_copy_only=False) == symbol)
        .column("close")
        .to_numpy()
        for symbol in table_symbols
    }


def test_the_same_call_yields_the_same_bars() -> None:
    assert generate_sample(["SPY", "TQQQ"], WEEKDAYS).equals(
        generate_sample(["TQQQ", "SPY"], WEEKDAYS)
    )


def test_a_bar_depends_only_on_its_symbol_and_date_not_on_the_range() -> None:
    whole = closes(["SPY", "NVDA"], WEEKDAYS)
    later = closes(["NVDA"], WEEKDAYS[40:])
    np.testing.assert_array_equal(whole["NVDA"][40:], later["NVDA"])


def test_bars_are_plausible_ohlc_with_positive_prices() -> None:
    table = generate_sample(["SPY", "UVXY", "BIL", "XYZ"], WEEKDAYS)
    open_, high, low, close = (table.column(n).to_numpy() for n in ("open", "high", "low", "close"))
    assert (low > 0).all()
    assert (high >= np.maximum(open_, close)).all()
    assert (low <= np.minimum(open_, close)).all()
    daily = np.abs(np.diff(np.log(closes(["SPY"], WEEKDAYS)["SPY"])))
    assert 0.001 < float(np.mean(daily)) < 0.03


def test_leveraged_funds_move_by_a_multiple_of_their_underlying() -> None:
    series = closes(["QQQ", "TQQQ", "SQQQ"], WEEKDAYS)
    underlying = np.diff(series["QQQ"]) / series["QQQ"][:-1]
    for fund, multiple in (("TQQQ", 3.0), ("SQQQ", -3.0)):
        levered = np.diff(series[fund]) / series[fund][:-1]
        np.testing.assert_allclose(levered, multiple * underlying - 0.0001, atol=2e-3)


# 2024-07-03 is an early close (13:00 New York = 17:00 UTC); 2024-07-04 is a holiday.
BEFORE_EARLY_CLOSE = datetime(2024, 7, 3, 16, 59, tzinfo=UTC)
AFTER_HOLIDAY = datetime(2024, 7, 5, 12, 0, tzinfo=UTC)


def test_ensure_sample_creates_a_labelled_store_ending_at_the_last_closed_session(
    tmp_path: Path,
) -> None:
    result = ensure_sample(tmp_path, ["SPY", "TQQQ"], BEFORE_EARLY_CLOSE)
    assert result.action == "created"
    manifest = result.manifest
    assert manifest.synthetic
    assert manifest.last_session == date(2024, 7, 2)
    assert manifest.sessions == SAMPLE_SESSIONS
    assert manifest.symbols == ("SPY", "TQQQ")
    assert "SYNTHETIC" in (tmp_path / "bars" / SYNTHETIC_NOTE_FILE).read_text(encoding="utf-8")
    sessions = BarStore(tmp_path).load().sessions
    assert np.datetime64("2024-06-19") not in sessions  # Juneteenth
    assert ensure_sample(tmp_path, ["SPY"], BEFORE_EARLY_CLOSE).action == "unchanged"

    extended = ensure_sample(tmp_path, ["SPY", "QQQ"], AFTER_HOLIDAY)
    assert extended.action == "extended"
    assert extended.manifest.last_session == date(2024, 7, 3)
    assert extended.manifest.first_session == manifest.first_session
    assert extended.manifest.symbols == ("QQQ", "SPY", "TQQQ")
    after = BarStore(tmp_path).load()
    before_closes = closes(["TQQQ"], sessions)["TQQQ"]
    np.testing.assert_array_equal(after.closes["TQQQ"][: sessions.size], before_closes)


def test_adding_a_symbol_keeps_a_store_that_ends_after_the_requested_end(tmp_path: Path) -> None:
    ensure_sample(tmp_path, ["SPY"], AFTER_HOLIDAY)
    result = ensure_sample(tmp_path, ["QQQ"], datetime(2024, 6, 1, tzinfo=UTC))
    assert result.action == "extended"
    assert result.manifest.symbols == ("QQQ", "SPY")
    assert result.manifest.last_session == date(2024, 7, 3)


def test_a_synthetic_store_from_another_generator_is_regenerated_not_extended(
    tmp_path: Path,
) -> None:
    BarStore(tmp_path).write(
        bars_table([date(2024, 7, 1)], {"OLD": [5.0]}), synthetic=True, source="older generator"
    )
    result = ensure_sample(tmp_path, ["SPY"], AFTER_HOLIDAY)
    assert result.action == "created"
    assert result.manifest.symbols == ("OLD", "SPY")
    assert result.manifest.sessions == SAMPLE_SESSIONS


def test_ensure_sample_never_touches_imported_bars(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    kept = store.write(
        bars_table([date(2020, 1, 2)], {"SPY": [100.0]}), synthetic=False, source="import"
    )
    result = ensure_sample(tmp_path, ["SPY", "QQQ"], AFTER_HOLIDAY)
    assert result.action == "unchanged"
    assert store.manifest() == kept


def test_ensure_sample_needs_an_aware_end() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ensure_sample(Path("unused"), ["SPY"], datetime(2024, 7, 5, 12, 0))
