"""The simulated broker's state: accounts, positions, orders and fills (created by Alembic
revision 0101_simulated_broker).

Money and quantities are stored as decimal strings: SQLite has no exact decimal type, and a
simulated account must add up to the cent on both backends. Timestamps are stored in UTC.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from shared.trading import Side

DECIMAL_LENGTH = 40


class DecimalText(TypeDecorator[Decimal]):
    """A Decimal kept exactly, as its string form."""

    impl = sa.String(DECIMAL_LENGTH)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """An aware datetime in, an aware UTC datetime out, whatever the backend keeps."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"{value.isoformat()} has no time zone; store aware datetimes only")
        utc = value.astimezone(dt.UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def stored_side(side: Side) -> str:
    """Sides are stored lower-case, as Alpaca words them; `alchemiser broker orders` prints
    the stored word."""
    return side.lower()


def side_of(stored: str) -> Side:
    return Side(stored.upper())


metadata = sa.MetaData()

sim_accounts = sa.Table(
    "sim_accounts",
    metadata,
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("cash", DecimalText, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

sim_positions = sa.Table(
    "sim_positions",
    metadata,
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("symbol", sa.String(16), primary_key=True),
    sa.Column("qty", DecimalText, nullable=False),
    sa.Column("avg_entry_price", DecimalText, nullable=False),
    sa.Column("last_price", DecimalText, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

sim_orders = sa.Table(
    "sim_orders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("order_id", sa.String(36), nullable=False, unique=True),
    sa.Column("account_id", sa.String(64), nullable=False),
    sa.Column("client_order_id", sa.String(128), nullable=False),
    sa.Column("symbol", sa.String(16), nullable=False),
    sa.Column("side", sa.String(8), nullable=False),
    sa.Column("order_type", sa.String(16), nullable=False),
    sa.Column("qty", DecimalText, nullable=False),
    sa.Column("limit_price", DecimalText, nullable=True),
    sa.Column("hold_price", DecimalText, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("filled_qty", DecimalText, nullable=False),
    sa.Column("filled_avg_price", DecimalText, nullable=True),
    sa.Column("reason", sa.String(500), nullable=True),
    sa.Column("submitted_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("account_id", "client_order_id", name="uq_sim_orders_client_order_id"),
    sa.Index("ix_sim_orders_account_status", "account_id", "status"),
)

sim_fills = sa.Table(
    "sim_fills",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("order_id", sa.String(36), nullable=False, index=True),
    sa.Column("account_id", sa.String(64), nullable=False),
    sa.Column("symbol", sa.String(16), nullable=False),
    sa.Column("side", sa.String(8), nullable=False),
    sa.Column("qty", DecimalText, nullable=False),
    sa.Column("price", DecimalText, nullable=False),
    sa.Column("filled_at", UtcDateTime, nullable=False),
)
