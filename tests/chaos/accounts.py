"""Simulated accounts for fault runs: a fresh account per run, and some that start holding a
symbol the strategies do not want, so the run goes through its SELL phase and settlement."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import cache
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from shared.broker.simulated.tables import sim_accounts, sim_positions
from shared.eventstore.store import SqlEventStore
from tests.e2e.cluster import Cluster

HELD_SYMBOL = "SPY"
"""No bundled strategy wants it: an account holding it sells, settles and then buys."""


@cache
def last_close(data_dir: Path, symbol: str) -> Decimal:
    bars = pq.read_table(data_dir / "bars" / "bars.parquet", columns=["date", "symbol", "close"])
    mine = bars.filter(pc.equal(bars["symbol"], symbol)).sort_by("date")
    if mine.num_rows == 0:
        raise ValueError(f"{symbol} has no bars in {data_dir}; pick a symbol of the sample")
    return Decimal(str(mine["close"][-1].as_py())).quantize(Decimal("0.0001"))


async def open_holding(
    store: SqlEventStore,
    account_id: str,
    *,
    cash: Decimal,
    symbol: str,
    qty: Decimal,
    price: Decimal,
) -> None:
    """The account exists with `cash` and `qty` shares of `symbol` bought at `price`."""
    now = dt.datetime.now(dt.UTC)
    async with store.engine.begin() as connection:
        await connection.execute(
            sim_accounts.insert().values(account_id=account_id, cash=cash, created_at=now)
        )
        await connection.execute(
            sim_positions.insert().values(
                account_id=account_id,
                symbol=symbol,
                qty=qty,
                avg_entry_price=price,
                last_price=price,
                updated_at=now,
            )
        )


async def start_run(cluster: Cluster, account_id: str, *, holding: bool) -> str:
    """A forced run on a fresh simulated account, which starts in cash or, with `holding`,
    with $60,000 and 40 shares of HELD_SYMBOL at its last close; returns the workflow id."""
    assert cluster.store is not None
    if holding:
        await open_holding(
            cluster.store,
            account_id,
            cash=Decimal(60000),
            symbol=HELD_SYMBOL,
            qty=Decimal(40),
            price=last_close(cluster.work_dir / "data", HELD_SYMBOL),
        )
    response = await cluster.trigger({"force": True, "account_id": account_id})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])
