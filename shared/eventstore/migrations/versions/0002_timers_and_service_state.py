"""timers and service state: durable waits and per-workflow state of the services

Revision ID: 0002
Revises: 0101
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0101"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
DOCUMENT = sa.JSON().with_variant(JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "timers",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(50), nullable=False),
        sa.Column("workflow_id", sa.String(200), nullable=False),
        sa.Column("chain", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("due_at", TIMESTAMP, nullable=False),
        sa.Column("lease_until", TIMESTAMP, nullable=True),
        sa.Column("payload", DOCUMENT, nullable=False),
    )
    op.create_index("ix_timers_service_due_at", "timers", ["service", "due_at"])
    op.create_index("ix_timers_workflow", "timers", ["service", "workflow_id"])
    op.create_table(
        "service_state",
        sa.Column("service", sa.String(50), primary_key=True),
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("document", DOCUMENT, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("service_state")
    op.drop_index("ix_timers_workflow", table_name="timers")
    op.drop_index("ix_timers_service_due_at", table_name="timers")
    op.drop_table("timers")
