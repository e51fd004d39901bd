"""Reading the simulated broker's stored state: what the broker answers from and what
`alchemiser broker ...` prints, so both add the account up the same way."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.broker.models import OrderStatus, status_of
from shared.broker.simulated.tables import sim_accounts, sim_orders, sim_positions, stored_side
from shared.trading import Side

WORKING_STATUSES = ("accepted", "new", "pending_new", "partially_filled", "pending_cancel")
"""The simulated broker's words for an order that can still fill (a pending cancel can still
lose the race to a fill)."""

ORDER_LIST_LIMIT = 500
CENT = Decimal("0.01")


@dataclass(frozen=True)
class StoredOrder:
    """A row of `sim_orders`; `id` is None for an order placed in the broker's open transaction
    and not written yet."""

    id: int | None
    order_id: str
    account_id: str
    client_order_id: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    limit_price: Decimal | None
    hold_price: Decimal
    status: str
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    reason: str | None
    submitted_at: datetime
    updated_at: datetime

    @property
    def working(self) -> bool:
        return self.status in WORKING_STATUSES


@dataclass(frozen=True)
class StoredPosition:
    """A row of `sim_positions`."""

    account_id: str
    symbol: str
    qty: Decimal
    avg_entry_price: Decimal
    last_price: Decimal
    updated_at: datetime


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


def market_value(position: StoredPosition, *, to_cent: bool = True) -> Decimal:
    """A position at the last price it was marked at, to the cent as a broker reports it (or
    exactly, as the `close` fill model values it)."""
    value = position.qty * position.last_price
    return value.quantize(CENT) if to_cent else value


def order_status(row: StoredOrder) -> OrderStatus:
    """Our word for a stored order's status."""
    return status_of(row.status, row.filled_qty, row.qty)


def account_totals(
    account_id: str,
    cash: Decimal,
    orders: Iterable[StoredOrder],
    positions: Iterable[StoredPosition],
    *,
    values_to_cent: bool = True,
) -> AccountState:
    """The account from its cash, its orders (the working BUYs hold buying power) and its
    positions: the broker adds up what it holds in its transaction, the CLI what it read."""
    buy = stored_side(Side.BUY)
    return AccountState(
        account_id=account_id,
        cash=cash,
        buy_holds=sum(
            (
                ((row.qty - row.filled_qty) * row.hold_price).quantize(CENT, ROUND_CEILING)
                for row in orders
                if row.side == buy and row.working
            ),
            start=Decimal(0),
        ),
        positions_value=sum(
            (market_value(row, to_cent=values_to_cent) for row in positions), start=Decimal(0)
        ),
    )


async def account_state(connection: AsyncConnection, account_id: str) -> AccountState | None:
    cash = await connection.scalar(
        sa.select(sim_accounts.c.cash).where(sim_accounts.c.account_id == account_id)
    )
    if cash is None:
        return None
    working = (
        await connection.execute(
            sa.select(sim_orders)
            .where(sim_orders.c.account_id == account_id)
            .where(sim_orders.c.status.in_(WORKING_STATUSES))
        )
    ).all()
    return account_totals(
        account_id,
        cash,
        [StoredOrder(**row._mapping) for row in working],
        await position_rows(connection, account_id),
    )


async def position_rows(
    connection: AsyncConnection, account_id: str | None
) -> list[StoredPosition]:
    query = sa.select(sim_positions).order_by(sim_positions.c.account_id, sim_positions.c.symbol)
    if account_id is not None:
        query = query.where(sim_positions.c.account_id == account_id)
    return [StoredPosition(**row._mapping) for row in await connection.execute(query)]


async def order_rows(
    connection: AsyncConnection,
    *,
    account_id: str | None = None,
    client_order_ids: Collection[str] | None = None,
) -> list[StoredOrder]:
    """Every order in placement order; with `client_order_ids`, only those (a workflow's, as
    its recorded intents name them)."""
    query = sa.select(sim_orders).order_by(sim_orders.c.id)
    if account_id is not None:
        query = query.where(sim_orders.c.account_id == account_id)
    if client_order_ids is not None:
        query = query.where(sim_orders.c.client_order_id.in_(list(client_order_ids)))
    return [StoredOrder(**row._mapping) for row in await connection.execute(query)]
