"""Reading the simulated broker's stored state: what the broker answers from and what
`alchemiser broker ...` prints, so both add the account up the same way."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.broker.models import OrderStatus, status_of
from shared.broker.simulated.tables import (
    sim_accounts,
    sim_fills,
    sim_orders,
    sim_positions,
    stored_side,
)
from shared.trading import Side

WORKING_STATUSES = ("accepted", "new", "pending_new", "partially_filled", "pending_cancel")
"""The simulated broker's words for an order that can still fill (a pending cancel can still
lose the race to a fill)."""

ORDER_LIST_LIMIT = 500
CENT = Decimal("0.01")


@dataclass(frozen=True)
class AccountState:
    account_id: str
    cash: Decimal
    buy_holds: Decimal
    """What open BUY orders have set aside: remaining qty × the price held at submission, each
    rounded up to the cent."""
    positions_value: Decimal

    @property
    def buying_power(self) -> Decimal:
        return self.cash - self.buy_holds

    @property
    def equity(self) -> Decimal:
        return self.cash + self.positions_value


def market_value(position: Row[tuple[object, ...]], *, to_cent: bool = True) -> Decimal:
    """A position at the last price it was marked at, to the cent as a broker reports it (or
    exactly, as the `close` fill model values it)."""
    value: Decimal = position.qty * position.last_price
    return value.quantize(CENT) if to_cent else value


def order_status(row: Row[tuple[object, ...]]) -> OrderStatus:
    """Our word for a stored order's status."""
    return status_of(row.status, row.filled_qty, row.qty)


async def account_state(
    connection: AsyncConnection, account_id: str, *, values_to_cent: bool = True
) -> AccountState | None:
    cash = await connection.scalar(
        sa.select(sim_accounts.c.cash).where(sim_accounts.c.account_id == account_id)
    )
    if cash is None:
        return None
    buys = await working_orders(connection, account_id, side=Side.BUY)
    positions = await position_rows(connection, account_id)
    return AccountState(
        account_id=account_id,
        cash=cash,
        buy_holds=sum(
            (
                ((row.qty - row.filled_qty) * row.hold_price).quantize(CENT, ROUND_CEILING)
                for row in buys
            ),
            start=Decimal(0),
        ),
        positions_value=sum(
            (market_value(row, to_cent=values_to_cent) for row in positions), start=Decimal(0)
        ),
    )


async def position_rows(
    connection: AsyncConnection, account_id: str | None, symbol: str | None = None
) -> Sequence[Row[tuple[object, ...]]]:
    query = sa.select(sim_positions).order_by(sim_positions.c.account_id, sim_positions.c.symbol)
    if account_id is not None:
        query = query.where(sim_positions.c.account_id == account_id)
    if symbol is not None:
        query = query.where(sim_positions.c.symbol == symbol)
    return (await connection.execute(query)).all()


async def working_orders(
    connection: AsyncConnection,
    account_id: str,
    *,
    side: Side | None = None,
    symbol: str | None = None,
) -> Sequence[Row[tuple[object, ...]]]:
    query = (
        sa.select(sim_orders)
        .where(sim_orders.c.account_id == account_id)
        .where(sim_orders.c.status.in_(WORKING_STATUSES))
        .order_by(sim_orders.c.id)
    )
    if side is not None:
        query = query.where(sim_orders.c.side == stored_side(side))
    if symbol is not None:
        query = query.where(sim_orders.c.symbol == symbol)
    return (await connection.execute(query)).all()


async def orders_of_symbol(
    connection: AsyncConnection, account_id: str, symbol: str, after: datetime
) -> Sequence[Row[tuple[object, ...]]]:
    """The account's orders of `symbol` submitted after `after`, newest first (at most 500, as
    Alpaca lists them)."""
    query = (
        sa.select(sim_orders)
        .where(sim_orders.c.account_id == account_id)
        .where(sim_orders.c.symbol == symbol)
        .where(sim_orders.c.submitted_at > after)
        .order_by(sim_orders.c.id.desc())
        .limit(ORDER_LIST_LIMIT)
    )
    return (await connection.execute(query)).all()


async def bought_since(
    connection: AsyncConnection, account_id: str, symbol: str, since: datetime
) -> bool:
    """Whether `symbol` was bought since `since` (a BUY fill) or a BUY of it is working: a SELL
    now would close a day trade."""
    buy = stored_side(Side.BUY)
    filled = await connection.scalar(
        sa.select(sa.func.count())
        .select_from(sim_fills)
        .where(sim_fills.c.account_id == account_id)
        .where(sim_fills.c.symbol == symbol)
        .where(sim_fills.c.side == buy)
        .where(sim_fills.c.filled_at >= since)
    )
    working = await working_orders(connection, account_id, side=Side.BUY, symbol=symbol)
    return bool(filled) or bool(working)


async def held_for_sale(connection: AsyncConnection, account_id: str, symbol: str) -> Decimal:
    """Shares of `symbol` that open SELL orders still hold (qty − qty_available)."""
    sells = await working_orders(connection, account_id, side=Side.SELL, symbol=symbol)
    return sum((row.qty - row.filled_qty for row in sells), start=Decimal(0))


async def order_rows(
    connection: AsyncConnection,
    *,
    account_id: str | None = None,
    client_order_ids: Collection[str] | None = None,
) -> Sequence[Row[tuple[object, ...]]]:
    """Every order in placement order; with `client_order_ids`, only those (a workflow's, as
    its recorded intents name them)."""
    query = sa.select(sim_orders).order_by(sim_orders.c.id)
    if account_id is not None:
        query = query.where(sim_orders.c.account_id == account_id)
    if client_order_ids is not None:
        query = query.where(sim_orders.c.client_order_id.in_(list(client_order_ids)))
    return (await connection.execute(query)).all()
