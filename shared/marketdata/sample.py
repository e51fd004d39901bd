"""The deterministic synthetic sample: plausible daily bars so a fresh checkout runs with no keys.

Every bar is a pure function of its symbol and its date. Random draws are indexed by weekday
number since a fixed epoch and prices are anchored at a fixed date, so a store extended later, or
generated on another machine for another range, holds the same bars on the dates both cover.
Sessions come from the XNYS calendar, imported lazily: it is slow to import.

The bars are labelled synthetic in the store's manifest and in a note beside them.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from shared.marketdata.barstore import BarStore, StoreManifest

SAMPLE_SESSIONS = 1600
SAMPLE_SOURCE = "alchemiser synthetic sample v1 (seeded per symbol; not real prices)"
_EPOCH = np.datetime64("2000-01-03", "D")  # a Monday: weekday number 0
_ANCHOR = np.datetime64("2023-01-03", "D")  # every symbol has its start price on this day
_DAILY_FEE = 0.0001  # leveraged and inverse funds' expense and financing drag per day

# Funds that hold a daily multiple of an underlying's return.
_LEVERAGED: dict[str, tuple[str, float]] = {
    "TQQQ": ("QQQ", 3.0),
    "SQQQ": ("QQQ", -3.0),
    "PSQ": ("QQQ", -1.0),
    "BULZ": ("FNGS", 3.0),
    "FNGU": ("FNGS", 3.0),
    "UPRO": ("SPY", 3.0),
    "SPXL": ("SPY", 3.0),
    "SPYU": ("SPY", 4.0),
    "SPXS": ("SPY", -3.0),
    "SPXU": ("SPY", -3.0),
    "SH": ("SPY", -1.0),
    "DOG": ("SPY", -0.9),
    "URTY": ("IWM", 3.0),
    "SRTY": ("IWM", -3.0),
    "RWM": ("IWM", -1.0),
    "SOXL": ("SOXX", 3.0),
    "SOXS": ("SOXX", -3.0),
    "TECL": ("XLK", 3.0),
    "TECS": ("XLK", -3.0),
    "FAS": ("XLF", 3.0),
    "CURE": ("XLV", 3.0),
    "DRN": ("IYR", 3.0),
    "DRV": ("IYR", -3.0),
    "EDC": ("EEM", 3.0),
    "EDZ": ("EEM", -3.0),
    "YINN": ("FXI", 3.0),
    "YANG": ("FXI", -3.0),
    "ERX": ("XLE", 2.0),
    "NRGU": ("XLE", 3.0),
    "NRGD": ("XLE", -3.0),
    "GUSH": ("XOP", 2.0),
    "LABU": ("XBI", 3.0),
    "LABD": ("XBI", -3.0),
    "NAIL": ("ITB", 3.0),
    "HIBL": ("SPHB", 3.0),
    "HIBS": ("SPHB", -3.0),
    "TMF": ("TLT", 3.0),
    "TMV": ("TLT", -3.0),
    "TYO": ("IEF", -3.0),
    "TBF": ("TLT", -1.0),
    "UCO": ("DBO", 2.0),
    "BOIL": ("UNG", 2.0),
    "KOLD": ("UNG", -2.0),
    "NVDL": ("NVDA", 2.0),
    "NVDS": ("NVDA", -1.5),
    "CONL": ("COIN", 2.0),
    "BITX": ("BITO", 2.0),
    "VXX": ("VIXY", 1.0),
    "UVXY": ("VIXY", 1.5),
    "UVIX": ("VIXY", 2.0),
    "SVXY": ("VIXY", -0.5),
    "SVIX": ("VIXY", -1.0),
}


@dataclass(frozen=True)
class _Profile:
    """How a symbol moves: `r = drift + beta·market + volatility·noise` per weekday."""

    drift: float
    beta: float
    volatility: float


# Cash, bonds and volatility products behave unlike stocks; everything else gets a stock-like
# profile drawn from its seed.
_PROFILES: dict[str, _Profile] = {
    "BIL": _Profile(0.00008, 0.0, 0.0002),
    "SHV": _Profile(0.00008, 0.0, 0.0003),
    "SHY": _Profile(0.0001, -0.02, 0.001),
    "IEI": _Profile(0.0001, -0.05, 0.003),
    "IEF": _Profile(0.0001, -0.08, 0.004),
    "TLT": _Profile(0.0001, -0.2, 0.008),
    "GLD": _Profile(0.0003, 0.05, 0.009),
    "SPY": _Profile(0.0001, 1.0, 0.001),
    "QQQ": _Profile(0.0002, 1.2, 0.004),
    "IWM": _Profile(0.0, 1.1, 0.006),
    "VIXY": _Profile(-0.0012, -2.5, 0.012),
    "VIXM": _Profile(-0.0005, -1.2, 0.008),
}


@dataclass(frozen=True)
class SampleResult:
    """What `ensure_sample` did and what the store holds afterwards."""

    action: Literal["created", "extended", "unchanged"]
    manifest: StoreManifest


def ensure_sample(data_dir: Path, symbols: Collection[str], end_before: datetime) -> SampleResult:
    """Make the store in `data_dir` hold the sample up to the last session closed by `end_before`.

    Creates it when there is none; extends a synthetic store that ends earlier or lacks one of
    `symbols` (the caller knows which: the strategy side reads them from the strategy files). A
    store of imported bars is never touched.
    """
    if end_before.tzinfo is None:
        raise ValueError(f"end_before must be timezone-aware, got {end_before.isoformat()}")
    wanted = frozenset(symbols)
    if not wanted:
        raise ValueError("the sample needs at least one symbol")
    store = BarStore(data_dir)
    with store.locked():
        if not store.exists():
            sessions = sample_sessions(end_before)
            manifest = store.write(
                generate_sample(wanted, sessions), synthetic=True, source=SAMPLE_SOURCE
            )
            return SampleResult("created", manifest)
        current = store.manifest()
        if not current.synthetic:
            return SampleResult("unchanged", current)
        if current.source != SAMPLE_SOURCE:
            # Another generator's bars would not line up with ours: regenerate, never splice.
            everything = wanted | set(current.symbols)
            manifest = store.write(
                generate_sample(everything, sample_sessions(end_before)),
                synthetic=True,
                source=SAMPLE_SOURCE,
            )
            return SampleResult("created", manifest)
        sessions = sample_sessions(end_before, first=current.first_session)
        last = _as_date(sessions[-1]) if sessions.size else current.last_session
        if last <= current.last_session and wanted <= set(current.symbols):
            return SampleResult("unchanged", current)
        if last < current.last_session:
            sessions = sample_sessions(
                _after_close(current.last_session), first=current.first_session
            )
        everything = wanted | set(current.symbols)
        manifest = store.write(
            generate_sample(everything, sessions), synthetic=True, source=SAMPLE_SOURCE
        )
        return SampleResult("extended", manifest)


def sample_sessions(end_before: datetime, first: date | None = None) -> NDArray[np.datetime64]:
    """XNYS sessions whose close is at or before `end_before`: the last `SAMPLE_SESSIONS`, or
    all of them from `first` on."""
    import exchange_calendars

    start = first or (end_before.date() - timedelta(days=SAMPLE_SESSIONS * 3 // 2 + 30))
    with warnings.catch_warnings():
        # exchange_calendars reads `Series.values`, which pandas deprecates; not ours to fix.
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        calendar = exchange_calendars.get_calendar(
            "XNYS", start=start.isoformat(), end=end_before.date().isoformat()
        )
    schedule = calendar.schedule
    closed = schedule.index[schedule["close"] <= end_before]
    sessions = np.array(closed.values.astype("datetime64[D]"))
    return sessions if first else sessions[-SAMPLE_SESSIONS:]


def generate_sample(symbols: Iterable[str], sessions: NDArray[np.datetime64]) -> pa.Table:
    """Bars (the store's seven columns) for every symbol on every session."""
    weekdays = np.busday_count(_EPOCH, sessions)
    if weekdays.size and weekdays.min() < 1:
        raise ValueError(f"the sample starts after {_EPOCH}; got a session on {sessions[0]}")
    anchor = int(np.busday_count(_EPOCH, _ANCHOR))
    span = max(int(weekdays.max()) + 1 if weekdays.size else 0, anchor + 1)
    market = _stream("market", span, 1)[:, 0] * 0.011 + 0.0003
    columns: dict[str, list[NDArray[np.float64]]] = {name: [] for name in _PRICE_NAMES}
    names: list[str] = []
    for symbol in sorted(set(symbols)):
        bars = _bars(symbol, market, weekdays, anchor)
        for name, values in zip(_PRICE_NAMES, bars, strict=True):
            columns[name].append(values)
        names.extend([symbol] * sessions.size)
    count = len(names) // max(sessions.size, 1)
    return pa.table(
        {
            "date": pa.array(np.tile(sessions, count), pa.date32()),
            "symbol": pa.array(names, pa.string()),
            **{
                name: pa.array(np.concatenate(columns[name] or [np.zeros(0)]))
                for name in _PRICE_NAMES
            },
        }
    )


_PRICE_NAMES = ("open", "high", "low", "close", "volume")


def _bars(
    symbol: str, market: NDArray[np.float64], weekdays: NDArray[np.int64], anchor: int
) -> tuple[NDArray[np.float64], ...]:
    returns = _daily_returns(symbol, market)
    log_price = np.cumsum(np.log1p(returns))
    start_price = _seeded(symbol, "price").uniform(15.0, 400.0)
    closes = start_price * np.exp(log_price - log_price[anchor])
    noise = _stream(f"{symbol}:bar", market.size, 4)
    volatility = max(float(np.std(returns[:anchor])), 0.0005)
    close = closes[weekdays]
    opened = closes[weekdays - 1] * (1.0 + 0.25 * volatility * noise[weekdays, 0])
    high = np.maximum(opened, close) * (1.0 + 0.5 * volatility * np.abs(noise[weekdays, 1]))
    low = np.minimum(opened, close) * (1.0 - 0.5 * volatility * np.abs(noise[weekdays, 2]))
    size = _seeded(symbol, "volume").uniform(11.0, 17.0)
    volume = np.round(np.exp(size + 0.3 * noise[weekdays, 3]))
    prices = (np.maximum(np.round(v, 4), 0.0001) for v in (opened, high, low, close))
    return (*prices, volume)


def _daily_returns(symbol: str, market: NDArray[np.float64]) -> NDArray[np.float64]:
    """Simple returns for every weekday since the epoch."""
    if symbol in _LEVERAGED:
        underlying, multiple = _LEVERAGED[symbol]
        levered = multiple * _daily_returns(underlying, market) - _DAILY_FEE
        return np.maximum(levered, -0.9)
    profile = _PROFILES.get(symbol) or _stock_profile(symbol)
    noise = _stream(symbol, market.size, 1)[:, 0]
    returns = profile.drift + profile.beta * (market - 0.0003) + profile.volatility * noise
    return np.maximum(returns, -0.9)


def _stock_profile(symbol: str) -> _Profile:
    draw = _seeded(symbol, "profile")
    return _Profile(
        drift=float(draw.uniform(-0.0002, 0.0008)),
        beta=float(draw.uniform(0.6, 1.6)),
        volatility=float(draw.uniform(0.008, 0.035)),
    )


def _stream(key: str, weekdays: int, width: int) -> NDArray[np.float64]:
    """Standard normals, one row per weekday since the epoch; a longer stream extends a shorter."""
    draws: NDArray[np.float64] = _seeded(key, "stream").standard_normal((weekdays, width))
    return draws


def _seeded(key: str, purpose: str) -> np.random.Generator:
    digest = hashlib.sha256(f"alchemiser-sample/1:{purpose}:{key}".encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))


def _after_close(day: date) -> datetime:
    """A moment after every session of `day` has closed (the latest XNYS close is 21:00 UTC)."""
    return datetime(day.year, day.month, day.day, 23, 59, tzinfo=UTC)


def _as_date(day: np.datetime64) -> date:
    return date.fromisoformat(str(day.astype("datetime64[D]")))
