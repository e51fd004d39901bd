"""What the simulated broker's tests share: a small bar store, settings on a fixed simulated
now, a migrated database, a sleep that records instead of waiting, and the contract's
`BrokerWorld` over the simulated broker's tables."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from shared.broker.order_rules import DayTrading
from shared.broker.simulated import FixedQuote, Scenario, SimulatedBroker, SymbolFill
from shared.broker.simulated.scenario import CancelEnd, SlowCancel, SubmissionFault
from shared.broker.simulated.tables import sim_accounts, sim_orders, sim_positions
from shared.eventstore.migrations import upgrade
from shared.marketdata.bars import BarSnapshot
from shared.settings import Settings, load_settings
from tests.fakes.clock import ControlledClock
from tests.integration.broker.contract import BrokerWorld, Fill
from tests.integration.broker.contract import CancelEnd as ContractCancelEnd
from tests.integration.broker.contract import SubmissionFault as ContractFault
from tests.servers import create_postgres_database, drop_postgres_database

T = TypeVar("T")

OPEN_SIM_NOW = "2024-11-27T15:45:00"
"""The default simulated now of the bars below: the Wednesday before Thanksgiving, 15:45."""
HOLIDAY_SIM_NOW = "2024-11-28T15:45:00"
"""Thanksgiving: the exchange is closed all day."""
SESSIONS = [dt.date(2024, 11, day) for day in (21, 22, 25, 26, 27)]
SPY_CLOSES = [590.0, 595.5, 597.25, 599.0, 600.0]
QQQ_CLOSES = [500.0, 501.0, float("nan"), 503.0, float("nan")]


def bars() -> BarSnapshot:
    return BarSnapshot.from_closes(SESSIONS, {"SPY": SPY_CLOSES, "QQQ": QQQ_CLOSES})


def sim_settings(**overrides: Any) -> Settings:
    return load_settings(**{"sim_now": OPEN_SIM_NOW, **overrides})


async def migrated_sqlite(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'alchemiser.db'}"
    await upgrade(url)
    return url


class RecordedSleep:
    """Stands in for `asyncio.sleep`: remembers each delay and returns at once."""

    def __init__(self) -> None:
        self.delays_s: list[float] = []

    async def __call__(self, delay_s: float) -> None:
        self.delays_s.append(delay_s)


def new_broker(
    database_url: str,
    account_id: str = "default",
    *,
    settings: Settings | None = None,
    scenario: Scenario | None = None,
    sleep: RecordedSleep | None = None,
    clock: ControlledClock | None = None,
) -> SimulatedBroker:
    return SimulatedBroker(
        database_url,
        account_id,
        settings if settings is not None else sim_settings(),
        bars(),
        scenario=scenario,
        sleep=sleep if sleep is not None else RecordedSleep(),
        clock=clock,
    )


def blocking(database_url: str, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run `work` in one committed transaction on a connection of its own, from synchronous
    code inside a running event loop (the contract's world methods are synchronous)."""

    async def run() -> T:
        engine = create_async_engine(database_url, poolclass=NullPool)
        try:
            async with engine.begin() as connection:
                return await work(connection)
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()


def _insert(connection: AsyncConnection) -> Any:
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


_FILLS = {
    Fill.IMMEDIATE: SymbolFill.IMMEDIATE,
    Fill.NEVER: SymbolFill.NEVER,
    Fill.HALF: SymbolFill.HALF,
    Fill.ON_CANCEL: SymbolFill.ON_CANCEL,
}


class SimulatedWorld(BrokerWorld):
    """Seeds the account straight into the simulated broker's tables and the market into its
    scenario."""

    def __init__(
        self,
        database_url: str,
        account_id: str,
        scenario: Scenario,
        clock: ControlledClock | None = None,
    ) -> None:
        self._database_url = database_url
        self._account_id = account_id
        self._scenario = scenario
        self._clock = clock

    def set_cash(self, cash: Decimal) -> None:
        async def write(connection: AsyncConnection) -> None:
            insert = _insert(connection)(sim_accounts).values(
                account_id=self._account_id, cash=cash, created_at=dt.datetime.now(dt.UTC)
            )
            await connection.execute(
                insert.on_conflict_do_update(index_elements=["account_id"], set_={"cash": cash})
            )

        blocking(self._database_url, write)

    def set_position(self, symbol: str, qty: Decimal, avg_entry_price: Decimal) -> None:
        async def write(connection: AsyncConnection) -> None:
            values = {
                "qty": qty,
                "avg_entry_price": avg_entry_price,
                "last_price": avg_entry_price,
                "updated_at": dt.datetime.now(dt.UTC),
            }
            insert = _insert(connection)(sim_positions).values(
                account_id=self._account_id, symbol=symbol, **values
            )
            await connection.execute(
                insert.on_conflict_do_update(
                    index_elements=["account_id", "symbol"],
                    set_={
                        "qty": insert.excluded.qty,
                        "avg_entry_price": insert.excluded.avg_entry_price,
                    },
                )
            )

        self._scenario.listed.add(symbol)
        blocking(self._database_url, write)

    def set_asset(self, symbol: str, *, tradable: bool = True, fractionable: bool = True) -> None:
        self._scenario.listed.add(symbol)
        for flag, symbols in (
            (tradable, self._scenario.non_tradable),
            (fractionable, self._scenario.non_fractionable),
        ):
            if flag:
                symbols.discard(symbol)
            else:
                symbols.add(symbol)

    def set_quote(
        self,
        symbol: str,
        bid: Decimal,
        ask: Decimal,
        *,
        bid_size: Decimal = Decimal(100),
        ask_size: Decimal = Decimal(100),
    ) -> None:
        self._scenario.quotes[symbol] = FixedQuote(bid, ask, bid_size, ask_size)

    def set_trade(self, symbol: str, price: Decimal) -> None:
        self._scenario.trades[symbol] = price

    def set_fill(self, symbol: str, fill: Fill) -> None:
        self._scenario.fills[symbol] = _FILLS[fill]

    def set_cancel(self, symbol: str, pending_s: float, end: ContractCancelEnd) -> None:
        self._scenario.cancels[symbol] = SlowCancel(pending_s, CancelEnd(end.value))

    def set_day_trading(self, standing: DayTrading) -> None:
        self._scenario.day_trading = standing

    def set_now(self, moment: dt.datetime) -> None:
        assert self._clock is not None, "give the world the broker's clock"
        self._clock.set(moment)

    def advance(self, seconds: float) -> None:
        assert self._clock is not None, "give the world the broker's clock"
        self._clock.advance(seconds)

    def fail_next_submissions(self, fault: ContractFault, times: int = 1) -> None:
        self._scenario.fail_next_submissions(SubmissionFault(fault.value), times)

    def submissions(self, client_order_id: str) -> int:
        async def count(connection: AsyncConnection) -> int:
            found = await connection.scalar(
                sa.select(sa.func.count())
                .select_from(sim_orders)
                .where(sim_orders.c.account_id == self._account_id)
                .where(sim_orders.c.client_order_id == client_order_id)
            )
            return int(found or 0)

        return blocking(self._database_url, count)


async def migrated_database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated database of `backend` (`sqlite` file or a fresh one on the real PostgreSQL),
    removed afterwards; for fixtures parametrised over both backends."""
    if backend == "sqlite":
        yield await migrated_sqlite(tmp_path)
        return
    url = await create_postgres_database()
    try:
        await upgrade(url)
        yield url
    finally:
        await drop_postgres_database(url)
