"""event store: events with a gap-free position counter, outbox, inbox

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PAYLOAD = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)

# One round trip per append on PostgreSQL. In a VOLATILE PL/pgSQL function every statement takes
# a fresh snapshot (READ COMMITTED), so the stream version is read after the counter row's lock
# is held and sees every committed append; positions given back on a conflict keep it gap-free.
APPEND_FUNCTION = """
CREATE FUNCTION alchemiser_append(
    p_stream_id text,
    p_expected_version integer,
    p_event_ids uuid[],
    p_event_types text[],
    p_schema_versions integer[],
    p_correlation_ids text[],
    p_causation_ids text[],
    p_account_ids text[],
    p_occurred_at timestamptz[],
    p_sources text[],
    p_payloads text[],
    p_bodies bytea[],
    p_recorded_at timestamptz,
    OUT o_first_position bigint,
    OUT o_stream_version integer
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_count integer := cardinality(p_event_ids);
    v_last bigint;
BEGIN
    UPDATE event_positions SET last_position = last_position + v_count WHERE id = 1
        RETURNING last_position INTO v_last;
    SELECT coalesce(max(e.stream_version), 0) INTO o_stream_version
        FROM events AS e WHERE e.stream_id = p_stream_id;
    IF p_expected_version IS NOT NULL AND o_stream_version <> p_expected_version THEN
        UPDATE event_positions SET last_position = last_position - v_count WHERE id = 1;
        o_first_position := NULL;
        RETURN;
    END IF;
    o_first_position := v_last - v_count + 1;
    INSERT INTO events (position, stream_id, stream_version, event_id, event_type,
                        schema_version, correlation_id, causation_id, account_id, occurred_at,
                        source, payload, recorded_at)
    SELECT o_first_position + i - 1, p_stream_id, o_stream_version + i, p_event_ids[i],
           p_event_types[i], p_schema_versions[i], p_correlation_ids[i], p_causation_ids[i],
           p_account_ids[i], p_occurred_at[i], p_sources[i], p_payloads[i]::jsonb, p_recorded_at
    FROM generate_subscripts(p_event_ids, 1) AS i;
    INSERT INTO outbox (event_id, routing_key, body, created_at)
    SELECT p_event_ids[i], p_event_types[i], p_bodies[i], p_recorded_at
    FROM generate_subscripts(p_event_ids, 1) AS i ORDER BY i;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "event_positions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_position", BIG_ID, nullable=False),
        sa.CheckConstraint("id = 1", name="ck_event_positions_one_row"),
    )
    op.execute("INSERT INTO event_positions (id, last_position) VALUES (1, 0)")
    op.create_table(
        "events",
        sa.Column("position", BIG_ID, primary_key=True, autoincrement=False),
        sa.Column("stream_id", sa.String(200), nullable=False),
        sa.Column("stream_version", sa.Integer, nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("correlation_id", sa.String(200), nullable=False),
        sa.Column("causation_id", sa.String(200)),
        sa.Column("account_id", sa.String(100), nullable=False),
        sa.Column("occurred_at", TIMESTAMP, nullable=False),
        sa.Column("source", sa.String(50), nullable=False),
        sa.Column("payload", PAYLOAD, nullable=False),
        sa.Column("recorded_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("stream_id", "stream_version", name="uq_events_stream_version"),
        sa.UniqueConstraint("event_id", name="uq_events_event_id"),
        sa.CheckConstraint("stream_version >= 1", name="ck_events_stream_version_positive"),
    )
    op.create_index("ix_events_correlation_id", "events", ["correlation_id", "position"])
    op.create_table(
        "outbox",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("routing_key", sa.String(100), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("sent_at", TIMESTAMP),
    )
    op.create_index(
        "ix_outbox_unsent",
        "outbox",
        ["id"],
        postgresql_where=sa.text("sent_at IS NULL"),
        sqlite_where=sa.text("sent_at IS NULL"),
    )
    op.create_table(
        "inbox",
        sa.Column("service", sa.String(50), primary_key=True),
        sa.Column("event_id", sa.Uuid, primary_key=True),
        sa.Column("processed_at", TIMESTAMP, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION alchemiser_append")
    op.drop_table("inbox")
    op.drop_index("ix_outbox_unsent", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_events_correlation_id", table_name="events")
    op.drop_table("events")
    op.drop_table("event_positions")
