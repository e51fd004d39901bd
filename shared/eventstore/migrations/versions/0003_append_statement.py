"""append as one plain statement: drop the PL/pgSQL append function

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence
from importlib import import_module

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The store now sends `shared.eventstore.postgres.APPEND_HANDLED`, one statement with
# data-modifying CTEs that also records the inbox row, instead of calling `alchemiser_append`:
# the function paid a snapshot and an executor start for each of its statements.


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION alchemiser_append")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        first = import_module("shared.eventstore.migrations.versions.0001_event_store")
        op.execute(first.APPEND_FUNCTION)
