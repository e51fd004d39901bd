"""append as one plain statement: drop the PL/pgSQL append function

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence
from importlib import import_module

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The store now sends `shared.eventstore.postgres.APPEND_HANDLED`, one statement with
# data-modifying CTEs, instead of calling `alchemiser_append_handled`: the function paid a
# snapshot and an executor start for each of its five statements.


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION alchemiser_append_handled")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        third = import_module("shared.eventstore.migrations.versions.0003_append_handled")
        op.execute(third.APPEND_HANDLED_FUNCTION)
