"""simulated broker: accounts, positions, orders and fills of the simulated world

Revision ID: 0101
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0101"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DECIMAL = sa.String(40)
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sim_accounts",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("cash", DECIMAL, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "sim_positions",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("symbol", sa.String(16), primary_key=True),
        sa.Column("qty", DECIMAL, nullable=False),
        sa.Column("avg_entry_price", DECIMAL, nullable=False),
        sa.Column("last_price", DECIMAL, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "sim_orders",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.String(36), nullable=False, unique=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("client_order_id", sa.String(128), nullable=False),
        sa.Column("symbol", sa.String(16), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("order_type", sa.String(16), nullable=False),
        sa.Column("qty", DECIMAL, nullable=False),
        sa.Column("limit_price", DECIMAL, nullable=True),
        sa.Column("hold_price", DECIMAL, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("filled_qty", DECIMAL, nullable=False),
        sa.Column("filled_avg_price", DECIMAL, nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("submitted_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("account_id", "client_order_id", name="uq_sim_orders_client_order_id"),
    )
    op.create_index("ix_sim_orders_account_status", "sim_orders", ["account_id", "status"])
    op.create_table(
        "sim_fills",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(16), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("qty", DECIMAL, nullable=False),
        sa.Column("price", DECIMAL, nullable=False),
        sa.Column("filled_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_sim_fills_order_id", "sim_fills", ["order_id"])


def downgrade() -> None:
    op.drop_index("ix_sim_fills_order_id", table_name="sim_fills")
    op.drop_table("sim_fills")
    op.drop_index("ix_sim_orders_account_status", table_name="sim_orders")
    op.drop_table("sim_orders")
    op.drop_table("sim_positions")
    op.drop_table("sim_accounts")
