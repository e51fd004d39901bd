"""`alchemiser data fetch` against the loopback Alpaca server: a full first fetch, incremental
fetches after it, and a symbol whose past was re-adjusted fetched again in full."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from shared.broker.alpaca import AlpacaBroker
from shared.marketdata.barstore import BarStore
from shared.marketdata.fetch import fetch_into_store
from tests.fakes.alpaca import AlpacaLoopback, running_alpaca

DAYS = [dt.date(2024, 11, day) for day in (18, 19, 20, 21, 22, 25, 26)]


@pytest.fixture
def loopback() -> Iterator[AlpacaLoopback]:
    with running_alpaca() as server:
        yield server


def broker(loopback: AlpacaLoopback) -> AlpacaBroker:
    async def no_sleep(delay_s: float) -> None:
        return None

    return AlpacaBroker(
        key_id=SecretStr(loopback.world.key_id),
        secret_key=SecretStr(loopback.world.secret_key),
        sleep=no_sleep,
        base_url_override=loopback.base_url,
    )


def bars(closes: list[float]) -> list[tuple[dt.date, Decimal, Decimal, Decimal, Decimal, int]]:
    return [
        (day, Decimal(str(c)), Decimal(str(c + 1)), Decimal(str(c - 1)), Decimal(str(c)), 1000)
        for day, c in zip(DAYS, closes, strict=False)
    ]


def closes(store: BarStore, symbol: str) -> list[float]:
    snapshot = store.load()
    return [float(c) for c in snapshot.closes[symbol] if c == c]


async def test_a_first_fetch_fills_the_store_and_later_ones_add_the_new_sessions(
    loopback: AlpacaLoopback, tmp_path: Path
) -> None:
    store = BarStore(tmp_path)
    loopback.world.set_daily_bars("SPY", bars([100, 101, 102, 103, 104]))
    loopback.world.set_daily_bars("QQQ", bars([50, 51, 52, 53, 54]))
    first = await fetch_into_store(
        store, broker(loopback), ["SPY", "QQQ"], DAYS[4], start=DAYS[0], source_name="alpaca iex"
    )
    assert first.rows_fetched == 10
    assert store.last_session() == DAYS[4]
    assert not store.manifest().synthetic

    loopback.world.set_daily_bars("SPY", bars([100, 101, 102, 103, 104, 105, 106]))
    loopback.world.set_daily_bars("QQQ", bars([50, 51, 52, 53, 54, 55, 56]))
    second = await fetch_into_store(
        store, broker(loopback), ["SPY", "QQQ"], DAYS[6], start=DAYS[0], source_name="alpaca iex"
    )
    assert second.readjusted == ()
    assert closes(store, "SPY") == [100, 101, 102, 103, 104, 105, 106]
    assert store.last_session() == DAYS[6]


async def test_a_split_that_rewrote_history_refetches_that_symbol_in_full(
    loopback: AlpacaLoopback, tmp_path: Path
) -> None:
    store = BarStore(tmp_path)
    loopback.world.set_daily_bars("SPY", bars([100, 101, 102, 103, 104]))
    loopback.world.set_daily_bars("QQQ", bars([50, 51, 52, 53, 54]))
    await fetch_into_store(
        store, broker(loopback), ["SPY", "QQQ"], DAYS[4], start=DAYS[0], source_name="alpaca iex"
    )
    # A 2-for-1 split of QQQ: the adjusted history is halved.
    loopback.world.set_daily_bars("QQQ", bars([25, 25.5, 26, 26.5, 27, 27.5]))
    loopback.world.set_daily_bars("SPY", bars([100, 101, 102, 103, 104, 105]))
    result = await fetch_into_store(
        store, broker(loopback), ["SPY", "QQQ"], DAYS[5], start=DAYS[0], source_name="alpaca iex"
    )
    assert result.readjusted == ("QQQ",)
    assert closes(store, "QQQ") == [25, 25.5, 26, 26.5, 27, 27.5]
    assert closes(store, "SPY") == [100, 101, 102, 103, 104, 105]
