"""read models: the web dashboard's documents folded from the events (docs/web.md, Read models)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
DOCUMENT = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "read_models",
        sa.Column("projection", sa.String(30), primary_key=True),
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("account_id", sa.String(100), nullable=False),
        sa.Column("workflow_id", sa.String(200), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("status", sa.String(30), nullable=True),
        sa.Column("document", DOCUMENT, nullable=False),
    )
    op.create_index("ix_read_models_at", "read_models", ["projection", "at"])
    op.create_index("ix_read_models_account", "read_models", ["projection", "account_id", "at"])
    op.create_index("ix_read_models_workflow", "read_models", ["projection", "workflow_id"])


def downgrade() -> None:
    op.drop_index("ix_read_models_workflow", table_name="read_models")
    op.drop_index("ix_read_models_account", table_name="read_models")
    op.drop_index("ix_read_models_at", table_name="read_models")
    op.drop_table("read_models")
